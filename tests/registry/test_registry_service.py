"""Registry behaviour against the real Postgres."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from seqserve.shared.db.session import session_scope
from seqserve.shared.registry.refs import parse_model_ref
from seqserve.shared.registry.service import (
    NewVersion,
    RegistryError,
    move_alias,
    promote_if_better,
    register_version,
    resolve,
)


def _new(accuracy: float, name: str = "m") -> NewVersion:
    return NewVersion(
        model_name=name, task="classify", checkpoint_uri="/nowhere/model.pt", sha256="0" * 64,
        size_bytes=1, metrics={"accuracy": accuracy}, primary_metric="accuracy", dataset_fingerprint="f" * 64,
    )


def _register(accuracy: float, margin: float = 0.0) -> tuple[int, bool]:
    with session_scope() as session:
        version = register_version(session, _new(accuracy))
        decision = promote_if_better(session, version, margin)
        return version.version, decision.promoted


def test_versions_are_monotonic_under_concurrent_registration(db: str) -> None:
    _register(0.5)  # create the model row first; concurrent creation of a new name is a separate race
    with ThreadPoolExecutor(max_workers=6) as pool:
        numbers = list(pool.map(lambda _: _register(0.1)[0], range(12)))
    assert sorted(numbers) == list(range(2, 14))


def test_gate_promotes_better_and_refuses_worse(db: str) -> None:
    assert _register(0.80) == (1, True)
    assert _register(0.79) == (2, False)
    assert _register(0.805, margin=0.01) == (3, False)
    assert _register(0.82, margin=0.01) == (4, True)
    with session_scope() as session:
        assert resolve(session, parse_model_ref("m")).version == 4
        refused = resolve(session, parse_model_ref("m:2"))
        assert refused.promotion_note.startswith("not promoted: accuracy=0.7900 vs production v1")


def test_resolve_names_what_is_missing(db: str) -> None:
    _register(0.5)
    with session_scope() as session:
        with pytest.raises(RegistryError, match="model 'nope' is not registered"):
            resolve(session, parse_model_ref("nope"))
        with pytest.raises(RegistryError, match="has no version 9"):
            resolve(session, parse_model_ref("m:9"))
        with pytest.raises(RegistryError, match="has no alias 'staging'"):
            resolve(session, parse_model_ref("m@staging"))


def test_move_alias_rolls_back(db: str) -> None:
    _register(0.5)
    _register(0.6)
    with session_scope() as session:
        move_alias(session, "m", "production", 1)
    with session_scope() as session:
        assert resolve(session, parse_model_ref("m")).version == 1


def test_concurrent_alias_moves_are_atomic(db: str) -> None:
    for accuracy in (0.1, 0.2, 0.3, 0.4):
        _register(accuracy)

    def move(number: int) -> int:
        with session_scope() as session:
            move_alias(session, "m", "staging", number)  # first moves race to create the alias
        with session_scope() as session:
            return resolve(session, parse_model_ref("m@staging")).version

    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(move, [1, 2, 3, 4] * 6))
    assert set(seen) <= {1, 2, 3, 4}
    with session_scope() as session:
        final = resolve(session, parse_model_ref("m@staging")).version
        assert final in {1, 2, 3, 4}
        assert resolve(session, parse_model_ref("m")).version == 4  # production untouched
