from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from seqserve.shared.nn.cells import make_rnn
from seqserve.shared.nn.classifier import ClassifierConfig, SentenceClassifier
from seqserve.shared.nn.padding import pad_sequences

VOCAB = 40


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lengths = [7, 3, 1, 5]
    seqs = [torch.randint(2, VOCAB, (n,), generator=gen).tolist() for n in lengths]
    return pad_sequences(seqs, pad_id=0)


def _model(**kwargs: object) -> SentenceClassifier:
    torch.manual_seed(0)
    fields = {"vocab_size": VOCAB, "num_classes": 3, "embedding_dim": 16, "hidden_size": 12} | kwargs
    return SentenceClassifier(ClassifierConfig(**fields))  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_output_shape_for_every_cell(cell: str, bidirectional: bool, num_layers: int) -> None:
    model = _model(cell=cell, bidirectional=bidirectional, num_layers=num_layers).eval()
    tokens, lengths = _batch()
    logits = model(tokens, lengths)
    assert logits.shape == (4, 3)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_extra_padding_does_not_change_logits(cell: str) -> None:
    model = _model(cell=cell).eval()
    tokens, lengths = _batch()
    padded = torch.cat([tokens, torch.zeros(4, 6, dtype=torch.long)], dim=1)
    assert torch.equal(model(tokens, lengths), model(padded, lengths))


def test_row_order_does_not_change_logits() -> None:
    model = _model().eval()
    tokens, lengths = _batch()
    perm = torch.tensor([2, 0, 3, 1])
    assert torch.allclose(model(tokens, lengths)[perm], model(tokens[perm], lengths[perm]), atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_overfits_a_tiny_batch(cell: str) -> None:
    torch.manual_seed(0)
    seqs = [torch.randint(2, VOCAB, (n,)).tolist() for n in (3, 5, 8, 2, 6, 4, 7, 1)]
    tokens, lengths = pad_sequences(seqs, pad_id=0)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    model = _model(cell=cell, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = F.cross_entropy(model(tokens, lengths), labels)
        if loss.item() < 0.02:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert loss.item() < 0.02
    assert torch.equal(model(tokens, lengths).argmax(-1), labels)


def test_config_is_frozen_and_validated() -> None:
    config = ClassifierConfig(vocab_size=10, num_classes=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.hidden_size = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        ClassifierConfig(vocab_size=10, num_classes=2, dropout=1.0)
    assert ClassifierConfig(**dataclasses.asdict(config)) == config


def test_make_rnn_rejects_unknown_cell() -> None:
    with pytest.raises(ValueError, match="unknown cell"):
        make_rnn("transformer", 4, 4)  # type: ignore[arg-type]


def test_pad_sequences_refuses_empty_rows() -> None:
    with pytest.raises(ValueError):
        pad_sequences([[3], []], pad_id=0)
