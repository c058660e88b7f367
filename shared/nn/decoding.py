"""Batched greedy and beam-search decoding for `seqserve.shared.nn.seq2seq.Seq2Seq`.

Every sentence of a batch is decoded together: greedy keeps [B] hypotheses, beam search
[B * K] in one tensor (rows b*K .. b*K+K-1 belong to sentence b). Outputs hold neither bos nor
eos. Hypotheses stop at eos; `max_len` caps the tokens generated (eos included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from seqserve.shared.nn.evaluation import evaluating
from seqserve.shared.nn.seq2seq import Seq2Seq, select_state


@dataclass(frozen=True)
class Hypothesis:
    tokens: list[int]  # without bos/eos
    score: float  # sum of token log-probabilities (eos included) / generated length ** alpha


def _next_log_probs(logits: Tensor, model: Seq2Seq) -> Tensor:
    """logits [N, V] (consumed: overwritten in place) -> log-probabilities [N, V] over the
    tokens a decoder may emit."""
    # pad and bos are inputs, never outputs: an undertrained model must not produce them.
    logits = logits.float()
    logits[:, model.config.pad_id] = float("-inf")
    logits[:, model.config.bos_id] = float("-inf")
    return torch.log_softmax(logits, dim=-1)


def greedy_decode(model: Seq2Seq, src: Tensor, src_lengths: Tensor, max_len: int) -> list[list[int]]:
    """The likeliest token at every step, for every sentence in the batch: B token-id lists.

    A sentence that emits eos leaves the batch (its memory and state rows are dropped), so the
    batch costs what its unfinished sentences cost."""
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    eos = model.config.eos_id
    outputs: list[list[int]] = [[] for _ in range(src.size(0))]
    with evaluating(model):
        memory, state = model.encode(src, src_lengths)
        prev = torch.full((src.size(0),), model.config.bos_id, dtype=torch.long, device=src.device)
        active = list(range(src.size(0)))  # input index of each row still decoding
        for _ in range(max_len):
            logits, state = model.decode_step(memory, state, prev)
            prev = _next_log_probs(logits, model).argmax(-1)  # [A]
            tokens = prev.tolist()
            for sentence, token in zip(active, tokens, strict=True):
                if token != eos:
                    outputs[sentence].append(token)
            if eos in tokens:
                rows = [row for row, token in enumerate(tokens) if token != eos]
                if not rows:
                    break
                active = [active[row] for row in rows]
                keep = torch.tensor(rows, dtype=torch.long, device=prev.device)
                memory, state, prev = memory.index_select(keep), select_state(state, keep), prev.index_select(0, keep)
    return outputs


def beam_search(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, beam_size: int, max_len: int, length_penalty: float = 1.0
) -> list[list[int]]:
    """The best beam-search hypothesis of every sentence in the batch: B token-id lists."""
    return [h.tokens for h in beam_search_scored(model, src, src_lengths, beam_size, max_len, length_penalty)]


def beam_search_scored(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, beam_size: int, max_len: int, length_penalty: float = 1.0
) -> list[Hypothesis]:
    """Beam search over the whole batch at once; the best hypothesis per sentence.

    Hypotheses rank by score / length ** length_penalty (length counts eos). As in fairseq, an
    eos among a sentence's top-K candidates finishes a hypothesis and the K best candidates that
    are not eos stay in the beam. As in Hugging Face's default, a sentence is done once it has K
    finished hypotheses and its best alive one, stopped now, would not beat the worst of them.
    """
    if beam_size < 1 or max_len < 1:
        raise ValueError(f"beam_size and max_len must be >= 1, got {beam_size}, {max_len}")
    with evaluating(model):
        search = _BeamSearch(model, src, src_lengths, beam_size, length_penalty)
        for step in range(1, max_len + 1):
            if search.advance(step):
                break
        return search.best()


class _BeamSearch:
    """Beam state for the sentences still being decoded.

    A sentence that is done leaves the batch: its rows of the memory, state, scores and history
    are dropped, so one long or looping sentence does not keep the whole batch computing (a
    batch costs what its alive sentences cost). `active[i]` is the input index of position i.
    """

    def __init__(self, model: Seq2Seq, src: Tensor, src_lengths: Tensor, beam_size: int, alpha: float) -> None:
        self.model, self.k, self.alpha = model, beam_size, alpha
        batch, device = src.size(0), src.device
        # The memory keeps one row per sentence (the K beams of a sentence attend to it together);
        # the decoder state has one row per hypothesis.
        self.memory, state = model.encode(src, src_lengths)
        expand = torch.arange(batch, device=device).repeat_interleave(beam_size)  # [B*K]
        self.state = select_state(state, expand)
        # Only beam 0 is alive at first; K copies of the same start would fill the beam with duplicates.
        self.scores = torch.full((batch, beam_size), float("-inf"), device=device)
        self.scores[:, 0] = 0.0  # [A, K] summed log-probabilities
        self.prev = torch.full((batch * beam_size,), model.config.bos_id, dtype=torch.long, device=device)
        self.history = torch.empty((batch * beam_size, 0), dtype=torch.long, device=device)
        self.active = list(range(batch))  # input index of each alive position
        self.finished: list[list[Hypothesis]] = [[] for _ in range(batch)]  # K best, best first

    def advance(self, step: int) -> bool:
        """Extend every alive beam by one token; True once every sentence is done."""
        k, eos, alive = self.k, self.model.config.eos_id, len(self.active)
        logits, self.state = self.model.decode_step(self.memory, self.state, self.prev)
        log_probs = _next_log_probs(logits, self.model)  # [A*K, V]
        vocab = log_probs.size(1)
        candidates = log_probs.add_(self.scores.view(-1, 1)).view(alive, k * vocab)
        top_scores, top_index = candidates.topk(min(2 * k, k * vocab), dim=1)  # [A, 2K]
        origin, token = top_index // vocab, top_index % vocab  # beam within sentence, token id
        is_eos = token == eos
        self._finish(top_scores[:, :k], origin[:, :k], is_eos[:, :k], step)
        # Each beam offers one eos at most, so 2K candidates always hold K that are not eos.
        rank = torch.arange(top_scores.size(1), device=token.device).expand_as(token)
        keep = rank.masked_fill(is_eos, rank.size(1)).topk(k, dim=1, largest=False).indices  # [A, K]
        rows = (torch.arange(alive, device=token.device).unsqueeze(1) * k + origin.gather(1, keep)).view(-1)
        self.scores = top_scores.gather(1, keep)
        self.prev = token.gather(1, keep).view(-1)
        self.history = torch.cat([self.history.index_select(0, rows), self.prev.unsqueeze(1)], dim=1)
        self.state = select_state(self.state, rows)
        return self._drop_done(step)

    def _drop_done(self, step: int) -> bool:
        """Remove sentences whose alive hypotheses, stopped now, would not enter their K best."""
        best_alive = (self.scores[:, 0] / step**self.alpha).tolist()  # beams are kept best first
        staying = [
            position for position, sentence in enumerate(self.active)
            if len(done := self.finished[sentence]) < self.k or done[-1].score < best_alive[position]
        ]
        if len(staying) < len(self.active):
            self.active = [self.active[position] for position in staying]
            positions = torch.tensor(staying, dtype=torch.long, device=self.scores.device)
            rows = (positions.unsqueeze(1) * self.k + torch.arange(self.k, device=positions.device)).view(-1)
            self.memory, self.state = self.memory.index_select(positions), select_state(self.state, rows)
            self.scores, self.prev = self.scores.index_select(0, positions), self.prev.index_select(0, rows)
            self.history = self.history.index_select(0, rows)
        return not self.active

    def _finish(self, scores: Tensor, origin: Tensor, is_eos: Tensor, step: int) -> None:
        """Record eos candidates [A, K] as finished hypotheses of their sentences."""
        hits = is_eos.nonzero().tolist()
        if not hits:
            return
        # Read once as lists: a tensor element read per hit costs more than the step's torch ops
        # (and most steps have no eos, so the finiteness test waits for one).
        score_rows, origin_rows = scores.tolist(), origin.tolist()
        for position, rank in hits:
            if not math.isfinite(score_rows[position][rank]):
                continue  # an eos offered by a beam that was never alive
            sentence = self.active[position]
            row = position * self.k + origin_rows[position][rank]
            score = score_rows[position][rank] / step**self.alpha
            done = [*self.finished[sentence], Hypothesis(self.history[row].tolist(), score)]
            self.finished[sentence] = sorted(done, key=lambda h: -h.score)[: self.k]  # best first

    def best(self) -> list[Hypothesis]:
        """Best hypothesis per sentence; one still alive also offers its beams, cut off at max_len."""
        pools = [list(done) for done in self.finished]
        length = max(self.history.size(1), 1)
        for position, sentence in enumerate(self.active):
            for beam in range(self.k):
                score = float(self.scores[position, beam])
                if score > float("-inf"):
                    row = self.history[position * self.k + beam].tolist()
                    pools[sentence].append(Hypothesis(row, score / length**self.alpha))
        return [max(pool, key=lambda h: h.score) for pool in pools]
