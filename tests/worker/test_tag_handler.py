from __future__ import annotations

import dataclasses

import pytest
import torch

from seqserve.services.worker.handlers.tag import TagHandler, tag_tokens
from seqserve.shared.checkpoint import CHECKPOINT_FORMAT
from seqserve.shared.config import Settings
from seqserve.shared.jobs.params import TagParams
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.nn.tagger import SequenceTagger, TaggerConfig, TokenEncoder, pad_characters
from seqserve.shared.text.vocab import Vocab
from tests.worker.stage_metrics import one_more, stage_counts

TAGS = ["DET", "NOUN", "PUNCT", "VERB"]
TEXTS = ["The cat sleeps.", "", 'Dogs can\'t read "War and Peace" today!', "?", "the CAT"]


@pytest.fixture()
def payload() -> dict:
    torch.manual_seed(0)
    tokens = [tag_tokens(text) for text in TEXTS[:2]]
    encoder = TokenEncoder(
        Vocab.build([[t.lower() for t in ts] for ts in tokens]),
        Vocab.build([list(t) for ts in tokens for t in ts]),
        True,
        6,
    )
    config = TaggerConfig(
        vocab_size=len(encoder.words),
        num_tags=len(TAGS),
        char_vocab_size=len(encoder.chars),
        embedding_dim=8,
        char_embedding_dim=4,
        char_hidden_size=4,
        hidden_size=8,
    )
    return {
        "format": CHECKPOINT_FORMAT,
        "task": "tag",
        "model_config": dataclasses.asdict(config),
        **encoder.to_payload(),
        "tags": TAGS,
        "state_dict": SequenceTagger(config).state_dict(),
        "metrics": {},
        "data_fingerprint": "",
        "train_config": {},
    }


def _direct(payload: dict, text: str) -> torch.Tensor:
    """Probabilities [T, K] from the model run on this one text by hand."""
    model = SequenceTagger(TaggerConfig(**payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    word_ids, char_ids = TokenEncoder.from_payload(payload).encode(tag_tokens(text))
    words, lengths = pad_sequences([word_ids], pad_id=0)
    with torch.inference_mode():
        return torch.softmax(model.eval()(words, pad_characters([char_ids], pad_id=0), lengths), dim=-1)[
            0
        ]


def test_results_come_back_in_input_order_and_match_the_model(payload: dict) -> None:
    handler = TagHandler.from_checkpoint(payload, torch.device("cpu"))
    before = stage_counts("tag")
    results = handler.run(TEXTS, {})
    assert stage_counts("tag") == one_more(before)
    assert len(results) == len(TEXTS)
    for text, result in zip(TEXTS, results, strict=True):
        assert result["tokens"] == tag_tokens(text)
        assert len(result["tags"]) == len(result["probabilities"]) == len(result["tokens"])
        if not result["tokens"]:
            continue
        best, ids = _direct(payload, text).max(dim=-1)
        assert result["tags"] == [TAGS[i] for i in ids.tolist()]
        assert result["probabilities"] == pytest.approx(best.tolist(), abs=1e-6)
    assert results[1] == {"tokens": [], "tags": [], "probabilities": []}
    assert set(handler.stage_seconds) == {"preprocess", "infer", "postprocess"}


def test_batching_does_not_change_results(payload: dict) -> None:
    handler = TagHandler.from_checkpoint(payload, torch.device("cpu"))
    one_by_one = [handler.run([text], {})[0] for text in TEXTS]
    # Several forward passes per run.
    handler = TagHandler.from_checkpoint(payload, torch.device("cpu"), Settings(cpu_chunk_rows={"tag": 2}))
    batched = handler.run(TEXTS * 3, {})
    for a, b in zip(batched, one_by_one * 3, strict=True):
        assert a["tags"] == b["tags"]
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)


def test_the_chunk_knob_changes_passes_not_outputs(payload: dict) -> None:
    texts = TEXTS * 14  # 70 inputs, 56 with tokens: several passes at 1 and 7 rows
    results, passes = {}, {}
    for rows in (1, 7, 64):
        handler = TagHandler.from_checkpoint(payload, "cpu", Settings(cpu_chunk_rows={"tag": rows}))
        passes[rows] = len(handler.preprocess(texts, TagParams()).batches)
        results[rows] = handler.run(texts, {})
    assert passes == {1: 56, 7: 8, 64: 1}
    for rows in (7, 64):  # equal up to float rounding (summation order follows the rows per pass)
        for a, b in zip(results[rows], results[1], strict=True):
            assert a["tokens"] == b["tokens"] and a["tags"] == b["tags"]
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)


def test_tokens_keep_case_and_plain_quotes() -> None:
    assert tag_tokens(TEXTS[2]) == [
        "Dogs",
        "ca",
        "n't",
        "read",
        '"',
        "War",
        "and",
        "Peace",
        '"',
        "today",
        "!",
    ]


def test_bad_params_kind_and_task_are_rejected(payload: dict) -> None:
    handler = TagHandler.from_checkpoint(payload, torch.device("cpu"))
    with pytest.raises(ValueError, match="top_k"):
        handler.run(["fine"], {"top_k": 2})
    with pytest.raises(ValueError, match="'classify'"):
        handler.run(["fine"], {}, kind="classify")
    assert handler.run([], {}) == []
    with pytest.raises(ValueError, match="not 'tag'"):
        TagHandler.from_checkpoint({**payload, "task": "classify"}, torch.device("cpu"))
    with pytest.raises(ValueError, match="4 tags but the checkpoint lists 3"):
        TagHandler.from_checkpoint({**payload, "tags": TAGS[:3]}, torch.device("cpu"))
