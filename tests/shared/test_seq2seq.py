from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from seqserve.shared.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from seqserve.shared.nn.decoding import greedy_decode
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.nn.seq2seq import Seq2Seq, Seq2SeqConfig

PAD, BOS, EOS = 0, 2, 3
SOURCES = [[5, 6, 7, 8, 9], [10, 11], [12, 6, 13], [7]]
TARGETS = [[4, 5, 6], [7, 8, 9, 10, 11], [12], [13, 4]]


def _config(cell: str = "gru", attention: str = "bahdanau", **kwargs) -> Seq2SeqConfig:
    base = {"src_vocab_size": 14, "tgt_vocab_size": 14, "src_embedding_dim": 12, "tgt_embedding_dim": 10,
            "hidden_size": 16, "dropout": 0.1}
    return Seq2SeqConfig(cell=cell, attention=attention, **(base | kwargs))


def _batch(extra_pad: int = 0) -> tuple[torch.Tensor, ...]:
    """src, src_lengths, tgt_in, tgt_out for SOURCES/TARGETS, with `extra_pad` more pad columns."""
    src, lengths = pad_sequences(SOURCES, PAD)
    tgt_in, _ = pad_sequences([[BOS, *t] for t in TARGETS], PAD)
    tgt_out, _ = pad_sequences([[*t, EOS] for t in TARGETS], PAD)
    widen = lambda t: F.pad(t, (0, extra_pad), value=PAD)  # noqa: E731
    return widen(src), lengths, widen(tgt_in), widen(tgt_out)


def _loss(model: Seq2Seq, src, lengths, tgt_in, tgt_out) -> torch.Tensor:
    logits = model(src, lengths, tgt_in)
    return F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=PAD)


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, True), (2, False)])
def test_output_shapes(cell: str, attention: str, layers: int, bidirectional: bool) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(_config(cell, attention, num_layers=layers, bidirectional=bidirectional))
    src, lengths, tgt_in, _ = _batch()
    assert model(src, lengths, tgt_in).shape == (4, tgt_in.size(1), 14)
    memory, state = model.encode(src, lengths)
    assert memory.outputs.shape == (4, 5, 16) and memory.mask.sum(1).tolist() == lengths.tolist()
    logits, state = model.decode_step(memory, state, tgt_in[:, 0])
    assert logits.shape == (4, 14)
    h = state[0] if cell == "lstm" else state
    assert h.shape == (layers, 4, 16)


@pytest.mark.parametrize(("cell", "attention"), [("gru", "bahdanau"), ("lstm", "luong"), ("rnn", "bahdanau")])
def test_step_by_step_decoding_matches_teacher_forcing(cell: str, attention: str) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(_config(cell, attention, num_layers=2)).eval()
    src, lengths, tgt_in, _ = _batch()
    with torch.no_grad():
        forced = model(src, lengths, tgt_in)
        memory, state = model.encode(src, lengths)
        steps = []
        for t in range(tgt_in.size(1)):
            logits, state = model.decode_step(memory, state, tgt_in[:, t])
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), forced, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("cell", "attention"), [("gru", "bahdanau"), ("lstm", "luong")])
def test_hypotheses_grouped_per_sentence_equal_a_memory_copy_per_hypothesis(cell: str, attention: str) -> None:
    # Beam search keeps one memory row per sentence and K state rows per sentence.
    torch.manual_seed(0)
    model = Seq2Seq(_config(cell, attention, num_layers=2)).eval()
    src, lengths, tgt_in, _ = _batch()
    beams = 3
    expand = torch.arange(src.size(0)).repeat_interleave(beams)
    with torch.no_grad():
        memory, state = model.encode(src, lengths)
        state = tuple(s.index_select(1, expand) for s in state) if cell == "lstm" else state.index_select(1, expand)
        tokens = torch.randint(4, 14, (src.size(0) * beams,))
        grouped, _ = model.decode_step(memory, state, tokens)
        copied, _ = model.decode_step(memory.index_select(expand), state, tokens)
        short = tuple(s[:, :-1] for s in state) if cell == "lstm" else state[:, :-1]
        with pytest.raises(ValueError, match="do not divide"):
            model.decode_step(memory, short, tokens[:-1])
    assert grouped.shape == (src.size(0) * beams, 14)
    torch.testing.assert_close(grouped, copied, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_padding_changes_neither_logits_nor_loss(attention: str) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(_config("lstm", attention)).eval()
    tight, padded = _batch(), _batch(extra_pad=4)
    with torch.no_grad():
        a = model(*tight[:3])
        b = model(*padded[:3])
        torch.testing.assert_close(b[:, : a.size(1)], a, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(_loss(model, *padded), _loss(model, *tight), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(("cell", "attention"), [("gru", "bahdanau"), ("lstm", "luong"), ("rnn", "luong")])
def test_overfits_a_tiny_batch_and_greedy_reproduces_it(cell: str, attention: str) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(_config(cell, attention, hidden_size=32, dropout=0.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    batch = _batch()
    for _ in range(120):
        loss = _loss(model, *batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    assert greedy_decode(model, batch[0], batch[1], max_len=10) == TARGETS


@pytest.mark.parametrize("tie", [False, True])
def test_save_load_gives_identical_outputs(tmp_path: Path, tie: bool) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(_config("lstm", "bahdanau", tie_embeddings=tie)).eval()
    payload = {
        "format": CHECKPOINT_FORMAT, "task": "translate", "model_config": dataclasses.asdict(model.config),
        "state_dict": model.state_dict(),
    }
    sha256, _ = save_checkpoint(tmp_path / "model.pt", payload)
    loaded = load_checkpoint(tmp_path / "model.pt", sha256)
    restored = Seq2Seq(Seq2SeqConfig(**loaded["model_config"])).eval()
    restored.load_state_dict(loaded["state_dict"])
    src, lengths, tgt_in, _ = _batch()
    with torch.no_grad():
        assert torch.equal(restored(src, lengths, tgt_in), model(src, lengths, tgt_in))
    assert (restored.generator.weight is restored.tgt_embedding.weight) == tie


@pytest.mark.parametrize(
    "bad",
    [{"attention": "dot"}, {"cell": "transformer"}, {"hidden_size": 15}, {"eos_id": 0},
     {"bos_id": 99}, {"dropout": 1.0}, {"tgt_vocab_size": 1}],
)
def test_bad_configs_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        _config(**bad)
