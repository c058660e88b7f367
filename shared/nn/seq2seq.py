"""Attentional encoder-decoder: packed (bi)RNN encoder -> attention over its outputs -> RNN decoder.

Two attention variants, a config field like the cell type:
- "bahdanau" (additive, Bahdanau et al., 2015): the previous decoder state queries the source and
  the context is part of the decoder RNN's input, so teacher forcing steps one token at a time.
- "luong" (general/bilinear, Luong et al., 2015, without input feeding): the decoder RNN runs
  over the target first and its outputs query the source, so teacher forcing is one RNN call
  over the whole target (several times faster on a CPU).
Both read out logits from [decoder output; context; previous-token embedding] (a deep output).

Decoding (seqserve.shared.nn.decoding) encodes once and then calls `decode_step`; `forward` is the same
decoder code over a whole teacher-forced target, so the two agree step for step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqserve.shared.nn.cells import CELLS, last_layer_state, make_rnn

# The decoder RNN's state: h [L, B, H], or (h, c) for an LSTM.
DecoderState = Tensor | tuple[Tensor, Tensor]
ATTENTIONS = ("bahdanau", "luong")


@dataclass(frozen=True, kw_only=True)
class Seq2SeqConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    cell: Literal["rnn", "lstm", "gru"] = "gru"
    src_embedding_dim: int = 256
    tgt_embedding_dim: int = 256  # also the readout width, so the output layer can be tied
    hidden_size: int = 512  # decoder state and encoder output width (split across directions)
    num_layers: int = 1  # of both encoder and decoder
    bidirectional: bool = True  # the encoder
    dropout: float = 0.3
    attention: Literal["bahdanau", "luong"] = "bahdanau"
    tie_embeddings: bool = False  # output layer shares the target embedding matrix
    pad_id: int = 0
    bos_id: int = 2
    eos_id: int = 3

    def __post_init__(self) -> None:
        if min(self.src_vocab_size, self.tgt_vocab_size) < 2:
            raise ValueError("src_vocab_size and tgt_vocab_size must both be >= 2")
        if self.cell not in CELLS or self.attention not in ATTENTIONS:
            raise ValueError(f"bad cell {self.cell!r} or attention {self.attention!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.bidirectional and self.hidden_size % 2:
            raise ValueError(f"a bidirectional encoder needs an even hidden_size, got {self.hidden_size}")
        specials = {self.pad_id, self.bos_id, self.eos_id}
        if len(specials) != 3 or not all(0 <= i < self.tgt_vocab_size for i in specials):
            raise ValueError("pad/bos/eos ids must be distinct target vocabulary ids")

    @property
    def encoder_size(self) -> int:
        """Encoder state per direction; directions concatenated give hidden_size (as in OpenNMT)."""
        return self.hidden_size // 2 if self.bidirectional else self.hidden_size


@dataclass(frozen=True)
class EncoderMemory:
    """What the decoder attends to, computed once per source batch."""

    outputs: Tensor  # [B, S, H] encoder outputs (S = longest real source length)
    keys: Tensor  # [B, S, A] outputs projected for the attention score, precomputed once
    mask: Tensor  # [B, S] bool, True at real source tokens

    def index_select(self, index: Tensor) -> EncoderMemory:
        """Rows `index` of the batch (beam search drops the sentences it is done with)."""
        return EncoderMemory(self.outputs.index_select(0, index), self.keys.index_select(0, index),
                             self.mask.index_select(0, index))


def select_state(state: DecoderState, index: Tensor) -> DecoderState:
    """Rows `index` of the batch dimension (dim 1) of a decoder state."""
    if isinstance(state, tuple):
        return state[0].index_select(1, index), state[1].index_select(1, index)
    return state.index_select(1, index)


class Seq2Seq(nn.Module):
    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.src_embedding = nn.Embedding(c.src_vocab_size, c.src_embedding_dim, padding_idx=c.pad_id)
        self.tgt_embedding = nn.Embedding(c.tgt_vocab_size, c.tgt_embedding_dim, padding_idx=c.pad_id)
        self.encoder = make_rnn(c.cell, c.src_embedding_dim, c.encoder_size, c.num_layers, c.bidirectional, c.dropout)
        # Final encoder state -> initial decoder state of every layer (h, and c for an LSTM).
        parts = c.num_layers * (2 if c.cell == "lstm" else 1)
        self.bridge = nn.Linear(c.hidden_size, parts * c.hidden_size)
        rnn_input = c.tgt_embedding_dim + (c.hidden_size if c.attention == "bahdanau" else 0)
        self.decoder = make_rnn(c.cell, rnn_input, c.hidden_size, c.num_layers, False, c.dropout)
        self.key_proj = nn.Linear(c.hidden_size, c.hidden_size, bias=False)
        if c.attention == "bahdanau":
            self.query_proj = nn.Linear(c.hidden_size, c.hidden_size)
            self.score = nn.Linear(c.hidden_size, 1, bias=False)
        self.readout = nn.Linear(2 * c.hidden_size + c.tgt_embedding_dim, c.tgt_embedding_dim)
        self.generator = nn.Linear(c.tgt_embedding_dim, c.tgt_vocab_size)
        if c.tie_embeddings:
            self.generator.weight = self.tgt_embedding.weight
        self.dropout = nn.Dropout(c.dropout)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """src [B, S] (right-padded), src_lengths [B] on CPU, tgt_in [B, T] (bos + target) -> logits [B, T, V]."""
        memory, state = self.encode(src, src_lengths)
        logits, _ = self.decode(memory, state, tgt_in)
        return logits

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[EncoderMemory, DecoderState]:
        """src [B, S], src_lengths [B] (all >= 1) -> the memory and the initial decoder state."""
        embedded = self.dropout(self.src_embedding(src))  # [B, S, E]
        packed = pack_padded_sequence(embedded, src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, h_n = self.encoder(packed)
        # Unpacked to the longest real length: extra pad columns in `src` change nothing.
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True)  # [B, S', H]
        outputs = self.dropout(outputs)
        steps = torch.arange(outputs.size(1), device=outputs.device)
        mask = steps.unsqueeze(0) < src_lengths.to(outputs.device).unsqueeze(1)  # [B, S']
        memory = EncoderMemory(outputs, self.key_proj(outputs), mask)
        final = last_layer_state(h_n, self.config.bidirectional)  # [B, H]
        return memory, self._initial_state(final)

    def _initial_state(self, final: Tensor) -> DecoderState:
        c = self.config
        bridged = torch.tanh(self.bridge(final))  # [B, parts * H]
        layers = bridged.view(final.size(0), -1, c.hidden_size).transpose(0, 1).contiguous()  # [parts, B, H]
        if c.cell == "lstm":
            return layers[: c.num_layers].contiguous(), layers[c.num_layers :].contiguous()
        return layers

    def decode_step(
        self, memory: EncoderMemory, state: DecoderState, prev_tokens: Tensor
    ) -> tuple[Tensor, DecoderState]:
        """prev_tokens [B * G] -> logits [B * G, V] for the next token, and the new state.

        The memory holds B sentences and the state B * G hypotheses, rows b*G .. b*G+G-1 for
        sentence b (beam search: G is the beam size; otherwise 1). Returns fresh logits."""
        logits, state = self.decode(memory, state, prev_tokens.unsqueeze(1))
        return logits.squeeze(1), state

    def decode(
        self, memory: EncoderMemory, state: DecoderState, tgt_in: Tensor
    ) -> tuple[Tensor, DecoderState]:
        """tgt_in [B * G, T] -> logits [B * G, T, V] and the state after the last step
        (G hypotheses per memory sentence, as in `decode_step`)."""
        embedded = self.dropout(self.tgt_embedding(tgt_in))  # [B, T, E]
        if self.config.attention == "luong":
            outputs, state = self.decoder(embedded, state)  # [B, T, H]
            contexts = self._attend(outputs, memory)  # [B, T, H]
        else:
            outputs, contexts, state = self._bahdanau_steps(embedded, memory, state)
        features = torch.cat([outputs, contexts, embedded], dim=-1)  # [B, T, 2H + E]
        hidden = self.dropout(torch.tanh(self.readout(features)))  # [B, T, E]
        return self.generator(hidden), state  # [B, T, V]

    def _bahdanau_steps(
        self, embedded: Tensor, memory: EncoderMemory, state: DecoderState
    ) -> tuple[Tensor, Tensor, DecoderState]:
        """embedded [B, T, E] -> decoder outputs [B, T, H], contexts [B, T, H], final state."""
        outputs, contexts = [], []
        for t in range(embedded.size(1)):
            top = state[0][-1] if isinstance(state, tuple) else state[-1]  # [B, H]
            context = self._attend(top.unsqueeze(1), memory)  # [B, 1, H]
            step_input = torch.cat([embedded[:, t : t + 1], context], dim=-1)  # [B, 1, E + H]
            output, state = self.decoder(step_input, state)  # [B, 1, H]
            outputs.append(output)
            contexts.append(context)
        return torch.cat(outputs, dim=1), torch.cat(contexts, dim=1), state

    def _attend(self, queries: Tensor, memory: EncoderMemory) -> Tensor:
        """queries [B * G, T, H] -> contexts [B * G, T, H]; padded source positions get zero weight.

        The G hypotheses of a sentence query its memory row together ([B, G * T, H]): beam
        search neither copies the memory per beam nor runs G one-row matrix products."""
        rows, steps, width = queries.shape
        batch = memory.outputs.size(0)
        group = rows // batch
        if group * batch != rows:
            raise ValueError(f"{rows} query rows do not divide into the memory's {batch} sentences")
        grouped = queries.reshape(batch, group * steps, width)
        if self.config.attention == "luong":
            scores = grouped @ memory.keys.transpose(1, 2)  # [B, G*T, S]
        else:
            hidden = torch.tanh(memory.keys.unsqueeze(1) + self.query_proj(grouped).unsqueeze(2))  # [B, G*T, S, A]
            scores = self.score(hidden).squeeze(-1)  # [B, G*T, S]
        scores = scores.masked_fill(~memory.mask.unsqueeze(1), float("-inf"))
        contexts = torch.softmax(scores, dim=-1) @ memory.outputs  # [B, G*T, H]
        return contexts.view(rows, steps, -1)
