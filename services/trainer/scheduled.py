"""A scheduled retraining run (beat's retrain_schedule): fold the model's feedback into its
data, skip the run when the data is what the latest version was trained on, else train,
register and gate as any run. Every outcome is a run row and an audit event."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path
from typing import Any

from seqserve.services.trainer.classify import LABELS
from seqserve.services.trainer.datasets import GLUE_HEADER
from seqserve.services.trainer.service import execute_unless_unchanged
from seqserve.shared.audit import repository as audit
from seqserve.shared.config import get_settings
from seqserve.shared.db.session import session_scope
from seqserve.shared.feedback import repository as feedback_repo
from seqserve.shared.registry import repository as registry_repo
from seqserve.shared.text.corpus_tokens import to_corpus_tokens
from seqserve.shared.training import DEFAULT_MODEL_NAMES
from seqserve.shared.training import repository as runs_repo
from seqserve.shared.training.presets import resolve_config

# Tasks whose trainer reads a feedback file (FeedbackMix in shared/training/configs.py), by
# the job kind whose corrections it folds in.
FEEDBACK_KINDS = {"classify": "classify", "tag": "tag", "translate": "translate"}


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _classify_rows(rows: list[Any]) -> str:
    # The GLUE TSV the classifier reads; whitespace runs (tabs, newlines) become one space.
    lines = [GLUE_HEADER] + [f"{_one_line(row.input_text)}\t{LABELS.index(row.correction['label'])}"
                             for row in rows if row.correction.get("label") in LABELS]
    return "\n".join(lines) + "\n"


def _tag_rows(rows: list[Any]) -> str:
    # CoNLL-U with the corrected tag in the UPOS column (the tagger reads it from there,
    # whichever column it was trained on); the tokens are the ones the job answered for.
    blocks = []
    for row in rows:
        pairs = zip(row.correction.get("tokens", []), row.correction.get("tags", []), strict=True)
        lines = [f"{i}\t{form}\t_\t{tag}\t_\t_\t_\t_\t_\t_" for i, (form, tag) in enumerate(pairs, start=1)
                 if form.strip() == form and form]
        if lines:
            blocks.append("\n".join(lines) + "\n\n")
    return "".join(blocks)


def _translate_rows(rows: list[Any]) -> str:
    # Both sides spelled as the Multi30k tok/ files (lowercased, Moses escapes), a tab between.
    lines = [f"{' '.join(source)}\t{' '.join(target)}\n" for row in rows
             if (source := to_corpus_tokens(row.input_text)) and (target := to_corpus_tokens(row.correction["translation"]))]
    return "".join(lines)


# Per task: the feedback file's text from the rows (oldest first) and its suffix.
_FORMATS = {"classify": (_classify_rows, "tsv"), "tag": (_tag_rows, "conllu"), "translate": (_translate_rows, "pairs.tsv")}


def write_feedback(task: str, model_name: str, limit: int) -> Path | None:
    """The model's feedback as the task's training file, named by its content (the same
    corrections give the same file, hence the same fingerprint); None without any."""
    kind = FEEDBACK_KINDS.get(task)
    if kind is None:
        return None
    with session_scope() as session:
        rows = list(feedback_repo.for_model(session, model_name, kind, limit))
    if not rows:
        return None
    render, suffix = _FORMATS[task]
    text = render(rows)
    if not text.strip():
        return None
    settings = get_settings()
    assert settings.artifact_dir is not None
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = settings.artifact_dir / "models" / model_name / "feedback" / f"{digest}.{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path.resolve()


def run_scheduled(task: str, preset: str, model_name: str | None, overrides: dict[str, Any] | None
                  ) -> dict[str, Any]:
    """One scheduled run; returns what happened (the Celery task's result)."""
    name = model_name or DEFAULT_MODEL_NAMES[task]
    overrides = dict(overrides or {})
    if task in FEEDBACK_KINDS:
        limit = resolve_config(task, preset, overrides)["feedback_max_examples"]
        feedback = write_feedback(task, name, limit)
        if feedback is not None:
            overrides["feedback_file"] = str(feedback)
    with session_scope() as session:
        run = runs_repo.create(session, task, preset, name, overrides)
        audit.record(session, "beat", audit.Action.training_started, str(run.id),
                     {"task": task, "preset": preset, "model_name": name, "scheduled": True})
        latest = registry_repo.latest_version(session, name)
        unchanged = latest.dataset_fingerprint if latest is not None else None
        run_id: uuid.UUID = run.id
    report = execute_unless_unchanged(run_id, False, unchanged)
    if report is None:  # skipped (no new data) or cancelled: the run row says which
        with session_scope() as session:
            ended = runs_repo.get(session, run_id)
            status = ended.status if ended is not None else "absent"
        return {"run_id": str(run_id), "skipped": status == "skipped", "status": status}
    return {"run_id": str(run_id), "version": report.version, "promoted": report.promoted}
