"""What a `model_not_found` answer suggests instead: the registered models that serve the
kind asked for, with their aliases, and the command that trains one."""

from __future__ import annotations

from sqlalchemy.orm import Session

from seqserve.shared.db.models import Model
from seqserve.shared.registry import repository as repo
from seqserve.shared.tasks import JOB_KINDS, kinds_for_task, task_names


def _describe(model: Model) -> str:
    aliases = sorted((alias.alias, alias.version.version) for alias in model.aliases)
    if aliases:
        return f"{model.name} ({', '.join(f'@{alias} = v{number}' for alias, number in aliases)})"
    return f"{model.name} (versions {', '.join(str(v.version) for v in model.versions)}; no alias)"


def serving_hint(session: Session, kind: str | None) -> str:
    """One sentence for an error message; `kind` None: every registered model."""
    models = [m for m in repo.list_models(session) if kind is None or kind in kinds_for_task(m.task)]
    listed = "; ".join(_describe(model) for model in models) or "none"
    task = JOB_KINDS[kind][0] if kind in JOB_KINDS else "|".join(task_names())
    serving = f" serving {kind}" if kind is not None else ""
    return f"registered models{serving}: {listed}; train one with `seqserve train --task {task} --preset quick`"


def not_found_message(session: Session, error: str, kind: str | None) -> str:
    return f"{error}; {serving_hint(session, kind)}"
