"""Tiny tag, generate and translate models trained once per session on slices of their corpora,
for the kinds, batch, client, CLI and streaming tests: a plugin of tests/conftest.py (never import the
fixtures into a test module: each import would build its own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from seqserve.services.trainer.service import trainers
from seqserve.shared.db.session import session_scope
from seqserve.shared.registry.service import NewVersion, promote_if_better, register_version
from tests.conftest import DATA_DIR

TINY_TAGGER = {"max_train_examples": 300, "epochs": 1, "embedding_dim": 16, "char_embedding_dim": 8,
               "char_hidden_size": 8, "hidden_size": 16}
TINY_LM = {"max_train_tokens": 20_000, "epochs": 1, "embedding_dim": 32, "hidden_size": 32}
TINY_TRANSLATOR = {"max_train_examples": 300, "epochs": 1, "src_embedding_dim": 16, "tgt_embedding_dim": 16,
                   "hidden_size": 32, "beam_size": 1, "max_decode_len": 30}


def register(name: str, task: str, outcome: Any) -> str:
    with session_scope() as session:
        version = register_version(session, NewVersion(
            model_name=name, task=task, checkpoint_uri=str(outcome.checkpoint_path), sha256=outcome.sha256,
            size_bytes=outcome.size_bytes, metrics=outcome.metrics, primary_metric=outcome.primary_metric,
            dataset_fingerprint=outcome.data_fingerprint,
        ))
        promote_if_better(session, version, 0.0)
    return name


@pytest.fixture(scope="session")
def tiny_tagger(session_tmp: Path) -> Any:
    return trainers()["tag"](data_dir=DATA_DIR, out_path=session_tmp / "tiny-tagger" / "model.pt",
                             preset="quick", overrides=TINY_TAGGER, progress=False)


@pytest.fixture(scope="session")
def tiny_lm(session_tmp: Path) -> Any:
    return trainers()["generate"](data_dir=DATA_DIR, out_path=session_tmp / "client-lm" / "model.pt",
                                  preset="quick", overrides=TINY_LM, progress=False)


@pytest.fixture(scope="session")
def tiny_translator(session_tmp: Path) -> Any:
    return trainers()["translate"](data_dir=DATA_DIR, out_path=session_tmp / "client-mt" / "model.pt",
                                   preset="quick", overrides=TINY_TRANSLATOR, progress=False)


@pytest.fixture()
def lm(db: str, tiny_lm: Any) -> str:
    """The tiny language model registered as `tiny-lm` with its production alias."""
    return register("tiny-lm", "generate", tiny_lm)


@pytest.fixture()
def translator(db: str, tiny_translator: Any) -> str:
    return register("tiny-mt", "translate", tiny_translator)
