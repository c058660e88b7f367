"""The worker's live drift side for the kinds beyond classify: a tagger's tag shares and a
language model's `score` log-probs, observed by the process's DriftMonitor against the
reference the tiny training run recorded, move on out-of-domain input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
import torch

from seqserve.services.trainer.corpora import read_token_stream
from seqserve.services.trainer.generate import train_language_model
from seqserve.services.trainer.tag import train_tagger
from seqserve.services.worker.drift import DriftMonitor
from seqserve.services.worker.handlers.generate import LanguageModelHandler
from seqserve.services.worker.handlers.tag import TagHandler
from seqserve.services.worker.model_cache import VersionInfo
from seqserve.shared import drift
from seqserve.shared.checkpoint import load_checkpoint
from seqserve.shared.db.models import ModelVersion
from seqserve.shared.db.session import session_scope
from seqserve.shared.nn.language_model import EOS
from seqserve.shared.training.data_files import lm_corpus_path
from tests.conftest import REDIS_URL, register_outcome
from tests.trainer.test_generate_train import TINY as LM_TINY
from tests.trainer.test_tag_train import TINY as TAG_TINY

CPU = torch.device("cpu")
FOREIGN = ["Съешь же ещё этих мягких французских булок, да выпей чаю 1234 !!"] * 100


def _registered(name: str, task: str, outcome: Any) -> VersionInfo:
    register_outcome(name, task, outcome)
    with session_scope() as session:
        row = session.query(ModelVersion).filter(ModelVersion.model.has(name=name)).one()
        return VersionInfo(row.id, name, row.version, row.checkpoint_uri, row.sha256)


def _live_scores(version: VersionInfo, kind: str, handler: Any, inputs: list[str]) -> dict[str, float]:
    """A fresh process's monitor serving `inputs` as one batch; the scores it published."""
    client = redis.Redis.from_url(REDIS_URL)
    DriftMonitor(redis=client).observe(version, kind, handler, inputs, handler.run(inputs, {}, kind=kind))
    published = drift.read_live(client, version.version_id)
    assert published is not None
    return published["scores"]


def test_tag_shares_and_chars_move_on_out_of_domain_text(db: str, data_dir: Path, tmp_path: Path) -> None:
    outcome = train_tagger(data_dir, tmp_path / "tag.pt", "quick", TAG_TINY, CPU, progress=False)
    version = _registered("ewt-drift", "tag", outcome)
    handler = TagHandler.from_checkpoint(load_checkpoint(outcome.checkpoint_path, outcome.sha256), CPU)
    dev = ["The cat sat on the mat , and then it slept for an hour .", "I would like to book a table for two ."] * 50

    near, far = (_live_scores(version, "tag", handler, texts) for texts in (dev, FOREIGN))
    assert set(near) == {"lengths", "chars", "predictions"}
    assert near["chars"] < 0.25 < far["chars"], (near, far)
    # A one-epoch tagger's shares shift less than its inputs do (0.05 -> 0.16 here, seeded).
    assert far["predictions"] > 2 * near["predictions"], (near, far)


def test_score_logprob_moves_on_out_of_domain_text(db: str, data_dir: Path, tmp_path: Path) -> None:
    outcome = train_language_model(data_dir, tmp_path / "lm.pt", "quick", LM_TINY, CPU, progress=False)
    version = _registered("ptb-drift", "generate", outcome)
    payload = load_checkpoint(outcome.checkpoint_path, outcome.sha256)
    handler = LanguageModelHandler.from_checkpoint(payload, CPU)
    stream = read_token_stream(lm_corpus_path(data_dir, "ptb", "valid"))
    dev = " ".join(stream[:3000]).split(f" {EOS}")[:100]
    # Out of domain for a language model: the vocabulary's rarest words, in no order anyone writes.
    rare = payload["vocab"][-1000:]
    salad = [" ".join(rare[i : i + 20]) for i in range(0, 1000, 20)]

    near, far = (_live_scores(version, "score", handler, texts) for texts in (dev, salad))
    assert abs(near["logprob"]) < 0.25 < far["logprob"], (near, far)
