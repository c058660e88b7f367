"""`embed` and `similar` (services/worker/handlers/vectors.py) over the embeddings model and
over the embedding tables of task models."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from seqserve.services.worker.handlers import ClassifyHandler, EmbeddingsHandler, build_handler
from seqserve.services.worker.handlers.generate import LanguageModelHandler
from seqserve.shared.checkpoint import CHECKPOINT_FORMAT, load_checkpoint
from seqserve.shared.nn.word_vectors import WordVectors, WordVectorsConfig
from seqserve.shared.text.vocab import Vocab


@pytest.fixture(scope="module")
def payload(tiny_embeddings: Any) -> dict[str, Any]:
    return load_checkpoint(tiny_embeddings.checkpoint_path, tiny_embeddings.sha256)


@pytest.fixture()
def handler(payload: dict[str, Any]) -> EmbeddingsHandler:
    built = build_handler(payload, "cpu")
    assert isinstance(built, EmbeddingsHandler)
    return built


def _word2vec_handler() -> EmbeddingsHandler:
    torch.manual_seed(0)
    vocab = Vocab(["<pad>", "<unk>", "mice", "rats", "horses"])
    model = WordVectors(WordVectorsConfig(vocab_size=len(vocab), dim=4))
    return EmbeddingsHandler(model, vocab, "cpu")


def test_neighbours_sorted_and_the_word_itself_first_at_cosine_one_when_asked(handler: EmbeddingsHandler) -> None:
    [with_self] = handler.run(["the"], {"k": 5, "include_self": True}, kind="similar")
    [without] = handler.run(["the"], {"k": 5}, kind="similar")
    assert with_self["neighbours"][0]["word"] == "the"
    assert with_self["neighbours"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert with_self["neighbours"][1:] == without["neighbours"][:4]
    assert all(n["word"] != "the" for n in without["neighbours"]) and len(without["neighbours"]) == 5
    scores = [n["score"] for n in without["neighbours"]]
    assert scores == sorted(scores, reverse=True)
    assert not {"<pad>", "<unk>"} & {n["word"] for n in without["neighbours"]}


def test_served_vectors_equal_the_checkpoints(handler: EmbeddingsHandler, payload: dict[str, Any]) -> None:
    vocab, matrix = payload["vocab"], payload["state_dict"]["embedding.weight"]
    words = vocab[2:7]
    results = handler.run(words, {}, kind="embed")
    for word, result in zip(words, results, strict=True):
        assert result["source"] == "vocab" and result["dim"] == matrix.size(1)
        assert torch.equal(torch.tensor(result["vector"]), matrix[vocab.index(word)])


def test_embed_normalises_and_pools_sentences(handler: EmbeddingsHandler, payload: dict[str, Any]) -> None:
    [word] = handler.run(["the"], {"normalize": True}, kind="embed")
    assert torch.tensor(word["vector"]).norm().item() == pytest.approx(1.0, abs=1e-5)
    [sentence] = handler.run(["the year of the"], {"level": "sentence"}, kind="embed")
    vocab, matrix = payload["vocab"], payload["state_dict"]["embedding.weight"]
    expected = matrix[[vocab.index(w) for w in ("the", "year", "of", "the")]].mean(dim=0)
    assert torch.allclose(torch.tensor(sentence["vector"]), expected, atol=1e-6)
    assert sentence["unknown"] == [] and sentence["tokens"] == ["the", "year", "of", "the"]


def test_unknown_words_get_subword_vectors_from_fasttext(handler: EmbeddingsHandler) -> None:
    [vector] = handler.run(["qzxmousetrap"], {}, kind="embed")
    [similar] = handler.run(["qzxmousetrap"], {"k": 3}, kind="similar")
    assert vector["source"] == "subwords" and len(vector["vector"]) == vector["dim"]
    assert similar["sources"] == ["subwords"] and len(similar["neighbours"]) == 3


def test_unknown_words_are_a_per_input_error_without_subwords() -> None:
    handler = _word2vec_handler()
    known, unknown = handler.run(["mice", "zebras"], {"k": 2}, kind="similar")
    assert [n["word"] for n in known["neighbours"]] and "error" not in known
    assert unknown["sources"] == ["unknown"] and "'zebras' is not in the model's vocabulary" in unknown["error"]


def test_similarity_and_analogy_modes() -> None:
    handler = _word2vec_handler()
    [pair] = handler.run(["mice rats"], {"mode": "similarity"}, kind="similar")
    unit = torch.nn.functional.normalize(handler.model.embedding.weight[2:4].detach(), dim=-1)
    assert pair["similarity"] == pytest.approx(float(unit[0] @ unit[1]), abs=1e-6)
    [analogy] = handler.run(["mice rats horses"], {"mode": "analogy", "k": 5}, kind="similar")
    assert analogy["neighbours"] == []  # every other word is one of the three
    with pytest.raises(ValueError, match=r"inputs\[0\].*2 word"):
        handler.run(["mice"], {"mode": "similarity"}, kind="similar")


@pytest.mark.parametrize(("params", "field"), [({"k": 0}, "k"), ({"k": 101}, "k"), ({"mode": "x"}, "mode"),
                                               ({"top": 3}, "top")])
def test_bad_params_name_the_field(handler: EmbeddingsHandler, params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        handler.run(["the"], params, kind="similar")


@pytest.mark.parametrize("inputs", [[""], ["the", "   "]])
def test_an_empty_word_names_the_input(handler: EmbeddingsHandler, inputs: list[str]) -> None:
    with pytest.raises(ValueError, match=rf"inputs\[{len(inputs) - 1}\]"):
        handler.run(inputs, {}, kind="embed")


def test_classifier_serves_its_table_and_its_encoder(tiny_classifier: Any) -> None:
    payload = load_checkpoint(tiny_classifier.checkpoint_path, tiny_classifier.sha256)
    handler = build_handler(payload, "cpu")
    assert isinstance(handler, ClassifyHandler)
    vocab, matrix = payload["vocab"], payload["state_dict"]["embedding.weight"]
    [film] = handler.run(["film"], {}, kind="embed")
    assert torch.equal(torch.tensor(film["vector"]), matrix[vocab.index("film")])
    texts = ["a great film", "dull and long , but not bad"]
    encoded = handler.run(texts, {"level": "sentence", "pooling": "encoder"}, kind="embed")
    assert [r["dim"] for r in encoded] == [handler.model.config.feature_size] * 2
    alone = handler.run(texts[1:], {"level": "sentence", "pooling": "encoder"}, kind="embed")
    assert torch.allclose(torch.tensor(alone[0]["vector"]), torch.tensor(encoded[1]["vector"]), atol=1e-5)
    [similar] = handler.run(["film"], {"k": 3}, kind="similar")
    assert len(similar["neighbours"]) == 3


def test_encoder_pooling_needs_a_sentence_encoder() -> None:
    from seqserve.shared.nn.language_model import LanguageModelConfig, RNNLanguageModel

    vocab = Vocab(["<pad>", "<unk>", "<eos>", "the", "cat"])
    model = RNNLanguageModel(LanguageModelConfig(vocab_size=len(vocab), embedding_dim=8, hidden_size=8))
    handler = LanguageModelHandler(model, vocab, "cpu")
    [cat] = handler.run(["cat"], {}, kind="embed")
    assert torch.equal(torch.tensor(cat["vector"]), model.embedding.weight[4].detach())
    with pytest.raises(ValueError, match="pooling"):
        handler.run(["the cat"], {"level": "sentence", "pooling": "encoder"}, kind="embed")


def test_a_model_without_an_embedding_table_is_refused(tiny_classifier: Any) -> None:
    class Tableless(ClassifyHandler):
        def word_table(self) -> None:  # type: ignore[override]
            return None

    payload = load_checkpoint(tiny_classifier.checkpoint_path, tiny_classifier.sha256)
    handler = Tableless.from_checkpoint(payload, "cpu")
    with pytest.raises(ValueError, match="model: a classify model has no word embedding table"):
        handler.run(["film"], {}, kind="similar")


def test_embeddings_checkpoints_are_self_describing(payload: dict[str, Any]) -> None:
    assert payload["format"] == CHECKPOINT_FORMAT and payload["task"] == "embeddings"
    config = WordVectorsConfig(**payload["model_config"])
    assert config.bucket == 2000 and config.vocab_size == len(payload["vocab"])
    assert payload["state_dict"]["ngrams.weight"].shape == (2000, config.dim)
    assert payload["data_fingerprint"] and set(payload["metrics"]) >= {"ws353_spearman", "probe_neighbours"}
    assert dataclasses.asdict(config) == payload["model_config"]
