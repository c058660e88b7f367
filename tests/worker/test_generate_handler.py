from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from seqserve.services.worker.handlers import generate as generate_module
from seqserve.services.worker.handlers.generate import LanguageModelHandler
from seqserve.shared.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from seqserve.shared.nn.language_model import EOS, LanguageModelConfig, RNNLanguageModel
from seqserve.shared.text.vocab import Vocab
from tests.worker.stage_metrics import one_more, stage_counts

WORDS = ["the", "a", "market", "stock", "price", "rose", "fell", "N", "%", "of", "in", "and", "to", "said", "shares",
         "company"]
PROMPTS = ["The stock price rose 5 %", "", "shares of the company fell", "zebra", "in"]
GREEDY = {"temperature": 0.0, "max_tokens": 6}


@pytest.fixture(scope="module")
def payload() -> dict:
    torch.manual_seed(0)
    vocab = Vocab([Vocab.PAD, Vocab.UNK, EOS, *WORDS])
    config = LanguageModelConfig(vocab_size=len(vocab), embedding_dim=16, hidden_size=16, dropout=0.3)
    model = RNNLanguageModel(config)
    with torch.no_grad():  # a peakier, less uniform model than the initialisation
        model.decoder.bias.normal_(0, 2)
    return {
        "format": CHECKPOINT_FORMAT, "task": "generate", "model_config": dataclasses.asdict(config),
        "vocab": vocab.to_list(), "state_dict": model.state_dict(), "metrics": {},
        "data_fingerprint": "", "train_config": {},
    }


@pytest.fixture(scope="module")
def handler(payload: dict) -> LanguageModelHandler:
    return LanguageModelHandler.from_checkpoint(payload, torch.device("cpu"))


def _ids(handler: LanguageModelHandler, words: list[str]) -> list[int]:
    return handler.vocab.encode(words)


def _direct_logprobs(handler: LanguageModelHandler, words: list[str]) -> list[float]:
    """log P(w_i | <eos> w_<i) for words + <eos>, one unpadded sequence through the model."""
    ids = [handler.eos_id, *_ids(handler, words), handler.eos_id]
    with torch.inference_mode():
        logits, _ = handler.model(torch.tensor([ids[:-1]]))
        logprobs = torch.log_softmax(logits[0], dim=-1)
    return [logprobs[step, target].item() for step, target in enumerate(ids[1:])]


def _direct_greedy(handler: LanguageModelHandler, words: list[str], steps: int) -> list[str]:
    """Argmax stepping one token at a time, for a single prompt."""
    ids = [handler.eos_id, *_ids(handler, words)]
    out: list[int] = []
    with torch.inference_mode():
        logits, state = handler.model(torch.tensor([ids]))
        for _ in range(steps):
            out.append(int(logits[0, -1].argmax()))
            logits, state = handler.model(torch.tensor([[out[-1]]]), state)
    return handler.vocab.decode(out)


def test_prompts_map_to_the_vocabulary(handler: LanguageModelHandler) -> None:
    assert handler.words("The stock price rose 5 %") == ["the", "stock", "price", "rose", "N", "%"]
    # PTB has no punctuation: it is dropped, not turned into <unk>.
    assert handler.words("Zebras, 1,000 of them...") == ["<unk>", "N", "of", "<unk>"]
    assert handler.words("%") == ["%"]


def test_score_is_the_sum_of_token_logprobs_and_matches_the_model(handler: LanguageModelHandler) -> None:
    results = handler.run(PROMPTS, {}, kind="score")
    assert len(results) == len(PROMPTS)
    for text, result in zip(PROMPTS, results, strict=True):
        words = handler.words(text)
        assert result["tokens"] == [*words, EOS]
        assert len(result["token_logprobs"]) == len(words) + 1
        assert result["token_logprobs"] == pytest.approx(_direct_logprobs(handler, words), abs=1e-5)
        assert result["logprob"] == pytest.approx(sum(result["token_logprobs"]), abs=1e-9)
        mean = result["logprob"] / len(result["token_logprobs"])
        assert result["perplexity"] == pytest.approx(math.exp(-mean))
        assert all(lp < 0 for lp in result["token_logprobs"])
    assert set(handler.stage_seconds) == {"preprocess", "infer", "postprocess"}


def test_greedy_is_deterministic_and_equals_argmax_stepping(handler: LanguageModelHandler) -> None:
    first = handler.run(PROMPTS, GREEDY)
    assert handler.run(PROMPTS, GREEDY) == first
    for text, result in zip(PROMPTS, first, strict=True):
        words = handler.words(text)
        assert result["prompt_tokens"] == words
        assert result["tokens"] == _direct_greedy(handler, words, 6)
        # One sentence per line: <eos> becomes a line break, the other words stay in order.
        assert result["continuation"].split() == [t for t in result["tokens"] if t != EOS]
        assert result["continuation"].count("\n") == result["tokens"].count(EOS)


def test_batching_does_not_change_greedy_or_scores(handler: LanguageModelHandler) -> None:
    batched = handler.run(PROMPTS, GREEDY)
    assert batched == [handler.run([text], GREEDY)[0] for text in PROMPTS]
    scores = handler.run(PROMPTS, {}, kind="score")
    for text, score in zip(PROMPTS, scores, strict=True):
        alone = handler.run([text], {}, kind="score")[0]
        assert score["token_logprobs"] == pytest.approx(alone["token_logprobs"], abs=1e-5)


def test_scoring_in_many_small_passes_changes_nothing(
    handler: LanguageModelHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = handler.run(PROMPTS, {}, kind="score")
    monkeypatch.setattr(generate_module, "_SCORE_LOGITS_PER_PASS", 1)  # one row per pass
    for one_pass, many in zip(whole, handler.run(PROMPTS, {}, kind="score"), strict=True):
        assert many["tokens"] == one_pass["tokens"]
        assert many["token_logprobs"] == pytest.approx(one_pass["token_logprobs"], abs=1e-5)


def test_same_seed_same_sample_and_top_k_one_is_greedy(handler: LanguageModelHandler) -> None:
    sampled = {"temperature": 1.5, "max_tokens": 12, "seed": 42}
    first = handler.run(PROMPTS, sampled)
    assert handler.run(PROMPTS, sampled) == first
    others = [handler.run(PROMPTS, sampled | {"seed": seed}) for seed in (1, 2, 3)]
    assert any(other != first for other in others)
    greedy = handler.run(PROMPTS, GREEDY | {"max_tokens": 12})
    assert handler.run(PROMPTS, sampled | {"top_k": 1}) == greedy
    assert all(len(result["tokens"]) == 12 for result in first)
    assert all(Vocab.PAD not in result["tokens"] for result in first)


def test_next_words_are_the_distribution_after_the_prompt(handler: LanguageModelHandler) -> None:
    result = handler.run(["the stock"], GREEDY | {"next_word_top_k": 5})[0]
    ids = [handler.eos_id, *_ids(handler, ["the", "stock"])]
    with torch.inference_mode():
        probabilities = torch.softmax(handler.model(torch.tensor([ids]))[0][0, -1], dim=-1)
    top = torch.topk(probabilities, 5)
    assert [w["word"] for w in result["next_words"]] == handler.vocab.decode(top.indices.tolist())
    assert [w["probability"] for w in result["next_words"]] == pytest.approx(top.values.tolist(), abs=1e-6)
    assert result["tokens"][0] == result["next_words"][0]["word"]  # greedy takes the likeliest
    assert "next_words" not in handler.run(["the stock"], GREEDY)[0]


def test_each_kind_observes_its_own_stages(handler: LanguageModelHandler) -> None:
    generate, score = stage_counts("generate"), stage_counts("score")
    handler.run(PROMPTS, GREEDY)
    assert (stage_counts("generate"), stage_counts("score")) == (one_more(generate), score)
    handler.run(PROMPTS, {}, kind="score")
    assert (stage_counts("generate"), stage_counts("score")) == (one_more(generate), one_more(score))


def test_bad_kind_and_params_are_rejected(handler: LanguageModelHandler) -> None:
    with pytest.raises(ValueError, match="unknown kind 'translate'"):
        handler.run(["x"], {}, kind="translate")
    with pytest.raises(ValueError, match="beam_size"):
        handler.run(["x"], {"beam_size": 2})
    with pytest.raises(ValueError, match="temperature"):
        handler.run(["x"], {"temperature": 1.0}, kind="score")
    assert handler.run([], {}) == []


def test_checkpoint_round_trip_and_task_check(payload: dict, tmp_path: Path) -> None:
    sha256, _ = save_checkpoint(tmp_path / "lm.pt", payload)
    loaded = LanguageModelHandler.from_checkpoint(load_checkpoint(tmp_path / "lm.pt", sha256), torch.device("cpu"))
    original = LanguageModelHandler.from_checkpoint(payload, torch.device("cpu"))
    assert loaded.run(PROMPTS, {}, kind="score") == original.run(PROMPTS, {}, kind="score")
    with pytest.raises(ValueError, match="checkpoint task is 'classify'"):
        LanguageModelHandler.from_checkpoint({**payload, "task": "classify"}, torch.device("cpu"))
    no_eos = {**payload, "vocab": [w if w != EOS else "<s>" for w in payload["vocab"]]}
    with pytest.raises(ValueError, match="<eos>"):
        LanguageModelHandler.from_checkpoint(no_eos, torch.device("cpu"))
