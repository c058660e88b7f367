"""Registry logic: resolve references, register versions, promote through the gate."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from seqserve.shared.audit import repository as audit
from seqserve.shared.db.models import ModelVersion
from seqserve.shared.registry import repository as repo
from seqserve.shared.registry.refs import DEFAULT_ALIAS, ModelRef
from seqserve.shared.rollouts.state import remember_previous

# Metrics where a smaller value is the better model.
LOWER_IS_BETTER = frozenset({"perplexity", "loss"})


class RegistryError(LookupError):
    """A reference that names nothing in the registry."""


@dataclass(frozen=True)
class NewVersion:
    """Everything a trainer knows about a checkpoint it wants registered."""

    model_name: str
    task: str
    checkpoint_uri: str
    sha256: str
    size_bytes: int
    metrics: dict[str, Any]
    primary_metric: str
    dataset_fingerprint: str
    architecture: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""
    training_run_id: uuid.UUID | None = None
    drift_reference: dict[str, Any] | None = None


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str


def resolve(session: Session, ref: ModelRef) -> ModelVersion:
    """The version a reference points at, or RegistryError saying what is missing."""
    model = repo.get_model(session, ref.name)
    if model is None:
        raise RegistryError(f"model '{ref.name}' is not registered")
    if ref.version is not None:
        version = repo.get_version(session, model.id, ref.version)
        if version is None:
            raise RegistryError(f"model '{ref.name}' has no version {ref.version}")
        return version
    alias = repo.get_alias(session, model.id, ref.alias or DEFAULT_ALIAS)
    if alias is None:
        raise RegistryError(f"model '{ref.name}' has no alias '{ref.alias}'")
    return alias.version


def register_version(session: Session, new: NewVersion) -> ModelVersion:
    """Add the next version of a model (numbers are monotonic under concurrent callers)."""
    model = repo.get_or_create_model(session, new.model_name, new.task)
    if model.task != new.task:
        raise ValueError(f"model '{model.name}' is a {model.task} model, not {new.task}")
    repo.lock_model(session, model.id)
    version = ModelVersion(
        model_id=model.id,
        version=repo.next_version_number(session, model.id),
        architecture=new.architecture,
        train_config=new.train_config,
        checkpoint_uri=new.checkpoint_uri,
        sha256=new.sha256,
        size_bytes=new.size_bytes,
        metrics=new.metrics,
        primary_metric=new.primary_metric,
        dataset_fingerprint=new.dataset_fingerprint,
        code_version=new.code_version,
        artifacts=new.artifacts,
        training_run_id=new.training_run_id,
        drift_reference=new.drift_reference,
    )
    return repo.add_version(session, version)


def gate(candidate: ModelVersion, current: ModelVersion | None, margin: float) -> GateDecision:
    """Promote only a version whose primary dev metric beats production by `margin`."""
    metric = candidate.primary_metric
    score = float(candidate.metrics[metric])
    if current is None:
        return GateDecision(True, f"first version: no production to beat ({metric}={score:.4f})")
    baseline = float(current.metrics.get(metric, float("-inf")))
    higher_is_better = metric not in LOWER_IS_BETTER
    gain = score - baseline if higher_is_better else baseline - score
    verdict = gain >= margin if current.id != candidate.id else True
    comparison = f"{metric}={score:.4f} vs production v{current.version} {baseline:.4f}, margin {margin}"
    return GateDecision(verdict, ("promoted: " if verdict else "not promoted: ") + comparison)


def promote_if_better(session: Session, version: ModelVersion, margin: float, alias: str = DEFAULT_ALIAS) -> GateDecision:
    """Run the gate and move `alias` to `version` when it passes; record the reason."""
    repo.lock_model(session, version.model_id)
    current_alias = repo.get_alias(session, version.model_id, alias)
    decision = gate(version, current_alias.version if current_alias else None, margin)
    if decision.promoted:
        remember_previous(session, version.model_id, alias)
        repo.set_alias(session, version.model_id, alias, version.id)
        previous = current_alias.version.version if current_alias else None
        _audit_move(session, "gate", version, alias, previous, decision.reason)
    version.promotion_note = decision.reason
    session.flush()
    return decision


def _audit_move(session: Session, actor: str, version: ModelVersion, alias: str, previous: int | None,
                reason: str) -> None:
    audit.record(session, actor, audit.Action.alias_moved, f"{version.model.name}@{alias}",
                 {"from": previous, "to": version.version, "reason": reason})


def move_alias(session: Session, model_name: str, alias: str, number: int, actor: str = "operator",
               reason: str = "") -> ModelVersion:
    """Point an alias at a version unconditionally (operator promote / roll back), audited."""
    model = repo.get_model(session, model_name)
    if model is None:
        raise RegistryError(f"model '{model_name}' is not registered")
    version = repo.get_version(session, model.id, number)
    if version is None:
        raise RegistryError(f"model '{model_name}' has no version {number}")
    current = repo.get_alias(session, model.id, alias)
    previous = current.version.version if current else None
    remember_previous(session, model.id, alias)
    repo.set_alias(session, model.id, alias, version.id)
    _audit_move(session, actor, version, alias, previous, reason)
    return version
