from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from seqserve.shared.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from seqserve.shared.nn.language_model import LanguageModelConfig, RNNLanguageModel, detach_state

VOCAB = 30


def _model(**kwargs: object) -> RNNLanguageModel:
    torch.manual_seed(0)
    fields = {"vocab_size": VOCAB, "embedding_dim": 12, "hidden_size": 12, "num_layers": 2} | kwargs
    return RNNLanguageModel(LanguageModelConfig(**fields))  # type: ignore[arg-type]


def _tokens(batch: int = 3, steps: int = 7, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, VOCAB, (batch, steps), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_output_and_state_shapes_for_every_cell(cell: str, num_layers: int) -> None:
    model = _model(cell=cell, num_layers=num_layers).eval()
    logits, state = model(_tokens())
    assert logits.shape == (3, 7, VOCAB)
    h = state[0] if cell == "lstm" else state
    assert isinstance(state, tuple) == (cell == "lstm")
    assert h.shape == (num_layers, 3, 12)
    assert torch.isfinite(logits[..., 1:]).all()


def test_pad_id_is_never_predicted_and_its_embedding_is_zero() -> None:
    model = _model(pad_id=0).eval()
    logits, _ = model(_tokens())
    assert torch.isneginf(logits[..., 0]).all()
    assert torch.equal(model.embedding.weight[0], torch.zeros(12))
    assert torch.isfinite(_model(pad_id=None).eval()(_tokens())[0]).all()


@pytest.mark.parametrize(("embedding_dim", "projected"), [(12, False), (8, True)])
def test_tied_weights_share_one_matrix(embedding_dim: int, projected: bool) -> None:
    model = _model(embedding_dim=embedding_dim, tie_weights=True)
    assert model.decoder.weight is model.embedding.weight
    assert (model.projection is not None) == projected
    untied = _model(tie_weights=False)
    assert untied.decoder.weight is not untied.embedding.weight
    assert untied.decoder.weight.shape == (VOCAB, 12)
    assert model(_tokens())[0].shape == (3, 7, VOCAB)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_carried_state_equals_one_long_pass(cell: str) -> None:
    model = _model(cell=cell).eval()
    tokens = _tokens(steps=10)
    whole, _ = model(tokens)
    first, state = model(tokens[:, :4])
    second, _ = model(tokens[:, 4:], detach_state(state))
    assert torch.allclose(torch.cat([first, second], dim=1), whole, atol=1e-5)


def test_lengths_make_padding_irrelevant() -> None:
    model = _model(cell="lstm").eval()
    tokens = _tokens(steps=6)
    lengths = torch.tensor([6, 2, 4])
    padded = tokens.clone()
    padded[1, 2:] = 0
    padded[2, 4:] = 0
    logits, (h, c) = model(padded, None, lengths)
    for row, n in enumerate(lengths.tolist()):
        alone, (h_row, c_row) = model(tokens[row : row + 1, :n])
        assert torch.allclose(logits[row, :n], alone[0], atol=1e-5)
        assert torch.allclose(h[:, row], h_row[:, 0], atol=1e-5)
        assert torch.allclose(c[:, row], c_row[:, 0], atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_overfits_a_tiny_batch(cell: str) -> None:
    tokens = _tokens(batch=4, steps=9, seed=1)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    model = _model(cell=cell, dropout=0.0, hidden_size=32, embedding_dim=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(150):
        logits, _ = model(inputs)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert loss.item() < 0.05
    assert torch.equal(model(inputs)[0].argmax(-1), targets)


def test_save_load_gives_identical_outputs(tmp_path: Path) -> None:
    model = _model(embedding_dim=8, dropout=0.3).eval()
    payload = {
        "format": CHECKPOINT_FORMAT, "task": "generate", "model_config": dataclasses.asdict(model.config),
        "vocab": [], "state_dict": model.state_dict(), "metrics": {}, "data_fingerprint": "",
        "train_config": {},
    }
    sha256, _ = save_checkpoint(tmp_path / "lm.pt", payload)
    loaded = load_checkpoint(tmp_path / "lm.pt", sha256)
    restored = RNNLanguageModel(LanguageModelConfig(**loaded["model_config"]))
    restored.load_state_dict(loaded["state_dict"])
    restored.eval()
    assert restored.decoder.weight is restored.embedding.weight
    tokens = _tokens()
    assert torch.equal(model(tokens)[0], restored(tokens)[0])


def test_config_is_frozen_and_validated() -> None:
    config = LanguageModelConfig(vocab_size=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.hidden_size = 3  # type: ignore[misc]
    assert LanguageModelConfig(**dataclasses.asdict(config)) == config
    for bad in ({"dropout": 1.0}, {"cell": "transformer"}, {"pad_id": 10}, {"num_layers": 0}):
        with pytest.raises(ValueError):
            LanguageModelConfig(vocab_size=10, **bad)  # type: ignore[arg-type]
