from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqserve.shared.nn.decoding import beam_search, beam_search_scored, greedy_decode
from seqserve.shared.nn.padding import pad_sequences
from seqserve.shared.nn.seq2seq import EncoderMemory, Seq2Seq, Seq2SeqConfig

PAD, UNK, BOS, EOS = 0, 1, 2, 3
VOCAB = 16


def _reverse_task(count: int, seed: int) -> list[tuple[list[int], list[int]]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        src = [rng.randrange(4, VOCAB) for _ in range(rng.randint(1, 7))]
        pairs.append((src, src[::-1]))
    return pairs


@contextmanager
def _one_thread() -> Iterator[None]:
    # Tiny matrices gain nothing from a second thread, and on a busy machine its waits cost 10x.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["bahdanau", "luong"])
def model(request: pytest.FixtureRequest) -> Seq2Seq:
    """A small model trained briefly to reverse sequences: confident but not perfect."""
    with _one_thread():
        return _trained_model(request.param)


def _trained_model(attention: str) -> Seq2Seq:
    torch.manual_seed(0)
    config = Seq2SeqConfig(
        src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, src_embedding_dim=16, tgt_embedding_dim=16,
        hidden_size=32, dropout=0.0, attention=attention, cell="gru",
    )
    model = Seq2Seq(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    pairs = _reverse_task(64, seed=1)
    src, lengths = pad_sequences([s for s, _ in pairs], PAD)
    tgt_in, _ = pad_sequences([[BOS, *t] for _, t in pairs], PAD)
    tgt_out, _ = pad_sequences([[*t, EOS] for _, t in pairs], PAD)
    for _ in range(80):
        loss = F.cross_entropy(model(src, lengths, tgt_in).flatten(0, 1), tgt_out.flatten(), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def _test_sources() -> list[list[int]]:
    """8 training sources, then 4 unseen ones."""
    return [s for s, _ in _reverse_task(64, seed=1)[:8] + _reverse_task(4, seed=7)]


def _test_batch() -> tuple[Tensor, Tensor]:
    return pad_sequences(_test_sources(), PAD)


def _one_by_one(decode, src: Tensor, lengths: Tensor) -> list[list[int]]:
    return [decode(src[i : i + 1, : int(lengths[i])], lengths[i : i + 1])[0] for i in range(src.size(0))]


def test_greedy_output_is_clean_and_capped(model: Seq2Seq) -> None:
    src, lengths = _test_batch()
    outputs = greedy_decode(model, src, lengths, max_len=12)
    assert len(outputs) == src.size(0)
    assert all(len(o) <= 12 and not {PAD, BOS, EOS} & set(o) for o in outputs)
    assert all(len(o) <= 2 for o in greedy_decode(model, src, lengths, max_len=2))
    # Trained-ish: most training sentences already come out reversed.
    expected = [s[::-1] for s in _test_sources()]
    assert sum(o == e for o, e in zip(outputs[:8], expected[:8], strict=True)) >= 6


def test_beam_size_one_equals_greedy(model: Seq2Seq) -> None:
    src, lengths = _test_batch()
    assert beam_search(model, src, lengths, 1, 12, 1.0) == greedy_decode(model, src, lengths, 12)
    assert beam_search(model, src, lengths, 1, 12, 0.0) == greedy_decode(model, src, lengths, 12)


@pytest.mark.parametrize(("beam_size", "alpha"), [(3, 1.0), (5, 0.6)])
def test_batched_beam_search_equals_one_sentence_at_a_time(model: Seq2Seq, beam_size: int, alpha: float) -> None:
    src, lengths = _test_batch()
    batched = beam_search_scored(model, src, lengths, beam_size, 12, alpha)
    alone = _one_by_one(lambda s, n: beam_search_scored(model, s, n, beam_size, 12, alpha), src, lengths)
    assert [h.tokens for h in batched] == [h.tokens for h in alone]
    assert [h.score for h in batched] == pytest.approx([h.score for h in alone], abs=1e-5)
    assert all(not {PAD, BOS, EOS} & set(h.tokens) and h.score <= 0 for h in batched)


def test_done_sentences_leave_the_batch(model: Seq2Seq, monkeypatch: pytest.MonkeyPatch) -> None:
    # Reversal outputs are as long as their sources (1-7 tokens): short ones finish early.
    src, lengths = _test_batch()
    rows: list[int] = []
    decode_step = model.decode_step

    def recording(memory: EncoderMemory, state: Tensor, prev_tokens: Tensor) -> tuple[Tensor, Tensor]:
        rows.append(prev_tokens.numel())
        return decode_step(memory, state, prev_tokens)

    monkeypatch.setattr(model, "decode_step", recording)
    beam_search(model, src, lengths, 3, 12, 1.0)
    assert rows[0] == 3 * src.size(0)
    assert rows == sorted(rows, reverse=True) and rows[-1] < rows[0]
    assert all(count % 3 == 0 for count in rows)


def test_greedy_drops_finished_sentences(model: Seq2Seq, monkeypatch: pytest.MonkeyPatch) -> None:
    src, lengths = _test_batch()
    rows: list[int] = []
    decode_step = model.decode_step

    def recording(memory: EncoderMemory, state: Tensor, prev_tokens: Tensor) -> tuple[Tensor, Tensor]:
        assert memory.outputs.size(0) == prev_tokens.numel()  # memory rows leave with their sentences
        rows.append(prev_tokens.numel())
        return decode_step(memory, state, prev_tokens)

    monkeypatch.setattr(model, "decode_step", recording)
    greedy_decode(model, src, lengths, 12)
    assert rows[0] == src.size(0)
    assert rows == sorted(rows, reverse=True) and rows[-1] < rows[0]


def test_batched_greedy_equals_one_sentence_at_a_time(model: Seq2Seq) -> None:
    src, lengths = _test_batch()
    alone = _one_by_one(lambda s, n: greedy_decode(model, s, n, 12), src, lengths)
    assert greedy_decode(model, src, lengths, 12) == alone


def test_decoding_leaves_training_mode_alone(model: Seq2Seq) -> None:
    src, lengths = _test_batch()
    model.train()
    try:
        greedy_decode(model, src, lengths, 5)
        beam_search(model, src, lengths, 2, 5)
        assert model.training
    finally:
        model.eval()


class _TableModel(nn.Module):
    """A fake decoder whose next-token distribution depends only on the previous token."""

    def __init__(self, table: dict[int, dict[int, float]]) -> None:
        super().__init__()
        self.config = Seq2SeqConfig(src_vocab_size=6, tgt_vocab_size=6, hidden_size=2)
        self.log_probs = torch.full((6, 6), -1e9)
        for prev, row in table.items():
            for token, p in row.items():
                self.log_probs[prev, token] = math.log(p)

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[EncoderMemory, Tensor]:
        memory = torch.zeros(src.size(0), 1, 1)
        mask = torch.ones(src.size(0), 1, dtype=torch.bool)
        return EncoderMemory(memory, memory, mask), torch.zeros(1, src.size(0), 1)

    def decode_step(self, memory: EncoderMemory, state: Tensor, prev_tokens: Tensor) -> tuple[Tensor, Tensor]:
        return self.log_probs[prev_tokens], state


# From bos: stop at once (p .45) or say 4 (p .55); after 4: stop (p .7) or say 5 (p .3); after 5: stop.
# Summed log-probs favour [] (-0.80 vs -0.95 for [4]); per token, [4] wins (-0.48 vs -0.80 and -0.60).
_STOP_OR_GO = {BOS: {EOS: 0.45, 4: 0.55}, 4: {EOS: 0.7, 5: 0.3}, 5: {EOS: 1.0}}


@pytest.mark.parametrize(("alpha", "expected"), [(0.0, []), (1.0, [4])])
def test_length_penalty_normalises_scores(alpha: float, expected: list[int]) -> None:
    model = _TableModel(_STOP_OR_GO)
    src, lengths = torch.tensor([[4]]), torch.tensor([1])
    [best] = beam_search_scored(model, src, lengths, beam_size=3, max_len=5, length_penalty=alpha)
    assert best.tokens == expected
    log_p = math.log(0.45) if alpha == 0 else (math.log(0.55) + math.log(0.7)) / 2
    assert best.score == pytest.approx(log_p, abs=1e-6)
    assert greedy_decode(model, src, lengths, 5) == [[4]]


def test_hypotheses_without_eos_stop_at_max_len() -> None:
    model = _TableModel({BOS: {4: 1.0}, 4: {4: 0.9, EOS: 0.1}})
    src, lengths = torch.tensor([[4], [5]]), torch.tensor([1, 1])
    assert greedy_decode(model, src, lengths, 3) == [[4, 4, 4], [4, 4, 4]]
    assert beam_search(model, src, lengths, 2, 3, 1.0) == [[4, 4, 4], [4, 4, 4]]
    # With a long enough budget the stop wins: 4 then eos beats any run of 4s.
    assert beam_search(model, src, lengths, 2, 30, 0.0) == [[4], [4]]
