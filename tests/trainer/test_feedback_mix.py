"""Feedback folded into the tagger's and the translator's training data: the scheduled run's feedback file (written
from job_feedback rows) changes the next run's data and its dataset fingerprint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from seqserve.services.trainer.conllu import read_conllu
from seqserve.services.trainer.parallel import read_pair_lines
from seqserve.services.trainer.scheduled import write_feedback
from seqserve.services.trainer.tag import train_tagger
from seqserve.services.trainer.translate import train_translator
from seqserve.shared.checkpoint import load_checkpoint
from seqserve.shared.db.models import Job, JobStatus, ModelVersion
from seqserve.shared.db.session import session_scope
from seqserve.shared.feedback.models import JobFeedback
from tests.conftest import register_outcome
from tests.trainer.test_tag_train import TINY as TAG_TINY
from tests.trainer.test_translate_train import TINY as TRANSLATE_TINY

CPU = torch.device("cpu")


def _feedback(model_name: str, kind: str, inputs: list[str], corrections: list[dict[str, Any]]) -> None:
    """A succeeded job of the model's latest version and one correction per input, as the API stores them."""
    with session_scope() as session:
        version = session.query(ModelVersion).filter(ModelVersion.model.has(name=model_name)).one()
        job = Job(kind=kind, model_name=model_name, model_ref=model_name, model_version_id=version.id,
                  inputs=inputs, status=JobStatus.succeeded.value, result=[{} for _ in inputs])
        session.add(job)
        session.flush()
        session.add_all(JobFeedback(job_id=job.id, team="admin", model_name=model_name, kind=kind, input_index=i,
                                    input_text=text, correction=correction)
                        for i, (text, correction) in enumerate(zip(inputs, corrections, strict=True)))


def test_tag_feedback_changes_the_next_runs_data_and_fingerprint(db: str, data_dir: Path, tmp_path: Path) -> None:
    first = train_tagger(data_dir, tmp_path / "v1" / "model.pt", "quick", TAG_TINY, CPU, progress=False)
    register_outcome("ewt-tags", "tag", first)
    assert write_feedback("tag", "ewt-tags", 100) is None  # no feedback yet: the run takes the plain data
    tokens = ["Zorblax", "glimmers", "quietly"]
    _feedback("ewt-tags", "tag", ["Zorblax glimmers quietly"],
              [{"tokens": tokens, "tags": ["PROPN", "VERB", "ADV"]}])

    path = write_feedback("tag", "ewt-tags", 100)
    assert path is not None and path.suffix == ".conllu"
    assert read_conllu(path, "upos") == [(tokens, ["PROPN", "VERB", "ADV"])]
    assert write_feedback("tag", "ewt-tags", 100) == path  # same corrections, same file
    second = train_tagger(data_dir, tmp_path / "v2" / "model.pt", "quick",
                          TAG_TINY | {"feedback_file": str(path), "feedback_repeat": 2}, CPU, progress=False)
    assert second.data_fingerprint != first.data_fingerprint
    vocab = load_checkpoint(second.checkpoint_path, second.sha256)["vocab"]
    assert "zorblax" in vocab and "zorblax" not in load_checkpoint(first.checkpoint_path, first.sha256)["vocab"]


def test_translate_feedback_changes_the_next_runs_data_and_fingerprint(db: str, data_dir: Path,
                                                                      tmp_path: Path) -> None:
    first = train_translator(data_dir, tmp_path / "v1" / "model.pt", "quick", TRANSLATE_TINY, CPU, progress=False)
    register_outcome("m30k", "translate", first)
    sources = ["The zorblax isn't sleeping.", "A zorblax runs."]
    _feedback("m30k", "translate", sources, [{"translation": "Der Zorblax schnorpelt nicht."},
                                             {"translation": "Ein Zorblax rennt."}])

    path = write_feedback("translate", "m30k", 100)
    assert path is not None and path.name.endswith(".pairs.tsv")
    assert read_pair_lines(path) == [
        (["the", "zorblax", "isn", "&apos;t", "sleeping", "."], ["der", "zorblax", "schnorpelt", "nicht", "."]),
        (["a", "zorblax", "runs", "."], ["ein", "zorblax", "rennt", "."]),
    ]
    overrides = TRANSLATE_TINY | {"feedback_file": str(path), "min_freq": 1}
    second = train_translator(data_dir, tmp_path / "v2" / "model.pt", "quick", overrides, CPU, progress=False)
    assert second.data_fingerprint != first.data_fingerprint
    payload = load_checkpoint(second.checkpoint_path, second.sha256)
    assert "zorblax" in payload["src_vocab"] and "zorblax" in payload["tgt_vocab"]
    # Only the newest `feedback_max_examples` corrections are mixed in.
    third = train_translator(data_dir, tmp_path / "v3" / "model.pt", "quick",
                             overrides | {"feedback_max_examples": 1, "feedback_repeat": 1}, CPU, progress=False)
    tgt = load_checkpoint(third.checkpoint_path, third.sha256)["tgt_vocab"]
    assert "rennt" in tgt and "schnorpelt" not in tgt
