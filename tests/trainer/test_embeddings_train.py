"""The embeddings task end to end through the training service (real Postgres), and
classifier/tagger initialisation from a registered embeddings version."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from seqserve.services.trainer.service import train_and_register
from seqserve.shared.checkpoint import load_checkpoint
from seqserve.shared.db.session import session_scope
from seqserve.shared.registry import repository as repo
from seqserve.shared.registry.schemas import ModelRead
from seqserve.shared.training.presets import OverrideError, resolve_config
from tests.conftest import TINY_EMBEDDINGS

CLASSIFY = {"max_train_examples": 300, "epochs": 1, "embedding_dim": 16, "hidden_size": 16}


@pytest.fixture()
def vectors(db: str) -> Any:
    return train_and_register("embeddings", "quick", TINY_EMBEDDINGS, model_name="tiny-vectors", progress=False)


def _model(name: str) -> ModelRead:
    with session_scope() as session:
        model = repo.get_model(session, name)
        assert model is not None
        return ModelRead.from_row(model)


def test_training_registers_a_promoted_version_with_its_summary(vectors: Any) -> None:
    assert vectors.version == 1 and vectors.promoted
    read = _model("tiny-vectors")
    assert read.task == "embeddings" and read.kinds == ["embed", "similar"]
    [version] = read.versions
    assert version.primary_metric == "ws353_spearman" and -1.0 <= version.metrics["ws353_spearman"] <= 1.0
    payload = load_checkpoint(vectors.checkpoint_path, version.sha256)
    assert version.embeddings is not None
    assert version.embeddings.vocab_size == len(payload["vocab"]) and version.embeddings.dim == 16
    assert version.embeddings.subwords
    neighbours = version.embeddings.probe_neighbours
    assert neighbours and all(len(pairs) == 5 for pairs in neighbours.values())


def test_pretrained_initialisation_copies_shared_words_and_records_lineage(vectors: Any) -> None:
    overrides = CLASSIFY | {"pretrained": "tiny-vectors", "freeze_pretrained": True}
    report = train_and_register("classify", "quick", overrides, model_name="tiny-init", progress=False)
    source = load_checkpoint(vectors.checkpoint_path, None)
    trained = load_checkpoint(report.checkpoint_path, None)
    src_vocab, src_matrix = source["vocab"], source["state_dict"]["embedding.weight"]
    matrix = trained["state_dict"]["embedding.weight"]
    shared = [w for w in trained["vocab"][2:] if w in set(src_vocab)]
    assert len(shared) > 100
    rows = src_matrix[2:]
    shift, scale = rows.mean(dim=0), (rows - rows.mean(dim=0)).std()
    for word in shared[:200]:  # frozen: still the pretrained vectors (standardised)
        expected = (src_matrix[src_vocab.index(word)] - shift) / scale
        assert torch.allclose(matrix[trained["vocab"].index(word)], expected, atol=1e-6)
    assert trained["train_config"]["pretrained_version"] == "tiny-vectors:1"
    assert report.metrics["pretrained_copied"] == len(shared)
    [version] = _model("tiny-init").versions
    assert version.pretrained_from == "tiny-vectors:1" and version.embeddings is None


def test_pretrained_dimension_must_match(vectors: Any) -> None:
    with pytest.raises(ValueError, match="embedding_dim: 32 differs from tiny-vectors:1's dim 16"):
        train_and_register("classify", "quick", CLASSIFY | {"embedding_dim": 32, "pretrained": "tiny-vectors:1"},
                           progress=False)


@pytest.mark.parametrize(("task", "overrides", "key"), [
    ("classify", {"pretrained": "not a ref!"}, "pretrained"),
    ("tag", {"pretrained": "x@"}, "pretrained"),
    ("tag", {"freeze_pretrained": "yes"}, "freeze_pretrained"),
    ("embeddings", {"dim": 0}, "dim"),
    ("embeddings", {"corpus": "sst2"}, "corpus"),
])
def test_overrides_are_validated_by_the_tasks_config(task: str, overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(OverrideError) as caught:
        resolve_config(task, "quick", overrides)
    assert caught.value.key == key


def test_pretrained_refs_resolve_to_valid_forms() -> None:
    for ref in ("wiki-ptb-fasttext", "wiki-ptb-fasttext:3", "wiki-ptb-fasttext@staging"):
        assert resolve_config("tag", "quick", {"pretrained": ref})["pretrained"] == ref


def test_the_tagger_starts_from_the_vectors_too(vectors: Any) -> None:
    overrides = {"max_train_examples": 200, "epochs": 1, "embedding_dim": 16, "char_embedding_dim": 8,
                 "char_hidden_size": 8, "hidden_size": 16, "pretrained": "tiny-vectors@production"}
    report = train_and_register("tag", "quick", overrides, model_name="tiny-tag-init", progress=False)
    trained = load_checkpoint(report.checkpoint_path, None)
    assert trained["train_config"]["pretrained_version"] == "tiny-vectors:1"
    # Every word has a vector: from the vocabulary, else from its subwords.
    assert report.metrics["pretrained_coverage"] == 1.0 and report.metrics["pretrained_subword"] > 0
    [version] = _model("tiny-tag-init").versions
    assert version.pretrained_from == "tiny-vectors:1"
