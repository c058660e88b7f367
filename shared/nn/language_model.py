"""Word-level recurrent language model: embeddings -> RNN stack -> (projection) -> tied softmax.

Regularised the Zaremba et al. (2014) way: dropout on the embeddings, between the recurrent
layers and on the top layer's outputs, never on the recurrent connections. Weight tying
(Press & Wolf, 2017; Inan et al., 2017) shares the embedding matrix with the output layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqserve.shared.nn.cells import CELLS, make_rnn

# The sentence boundary the corpora append to every line; it also opens a scored sentence.
EOS = "<eos>"
# An LSTM carries (h, c); a GRU or vanilla RNN carries h alone. Each is [layers, B, H].
RecurrentState = Tensor | tuple[Tensor, Tensor]


@dataclass(frozen=True, kw_only=True)
class LanguageModelConfig:
    vocab_size: int
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    embedding_dim: int = 200
    hidden_size: int = 200
    num_layers: int = 2
    dropout: float = 0.5
    # Tying with embedding_dim != hidden_size inserts a hidden -> embedding projection.
    tie_weights: bool = True
    # An input-only id (batch padding): its embedding stays zero and it is never predicted.
    pad_id: int | None = 0

    def __post_init__(self) -> None:
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2, got {self.vocab_size}")
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; expected one of {sorted(CELLS)}")
        if min(self.embedding_dim, self.hidden_size, self.num_layers) < 1:
            raise ValueError("embedding_dim, hidden_size and num_layers must all be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.pad_id is not None and not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id {self.pad_id} is outside the vocabulary")

    @property
    def output_dim(self) -> int:
        """Width of the features the softmax layer reads."""
        return self.embedding_dim if self.tie_weights else self.hidden_size


class RNNLanguageModel(nn.Module):
    def __init__(self, config: LanguageModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_id)
        self.rnn = make_rnn(
            config.cell, config.embedding_dim, config.hidden_size, config.num_layers, False, config.dropout
        )
        self.dropout = nn.Dropout(config.dropout)
        needs_projection = config.tie_weights and config.hidden_size != config.embedding_dim
        self.projection = nn.Linear(config.hidden_size, config.embedding_dim) if needs_projection else None
        self.decoder = nn.Linear(config.output_dim, config.vocab_size)
        self._init_weights()
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight

    def _init_weights(self) -> None:
        # Small uniform embeddings (the PyTorch word_language_model / Zaremba range): the
        # default N(0, 1) makes the tied softmax start out very peaked.
        with torch.no_grad():
            self.embedding.weight.uniform_(-0.1, 0.1)
            if self.config.pad_id is not None:
                self.embedding.weight[self.config.pad_id].zero_()
            if not self.config.tie_weights:
                self.decoder.weight.uniform_(-0.1, 0.1)
            self.decoder.bias.zero_()

    def forward(
        self, tokens: Tensor, state: RecurrentState | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, RecurrentState]:
        """tokens [B, T] long, state from a previous call (or None for zeros), optional lengths
        [B] (CPU) for right-padded rows -> (logits [B, T, V], state after each row's last token).
        """
        features, state = self.encode(tokens, state, lengths)
        return self.decode(features), state

    def encode(
        self, tokens: Tensor, state: RecurrentState | None = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, RecurrentState]:
        """The softmax layer's inputs [B, T, output_dim] and the new state, without the softmax.

        With `lengths`, rows are packed so each row's state stops at its own last token;
        features at padded positions are then meaningless and must be ignored.
        """
        embedded = self.dropout(self.embedding(tokens))  # [B, T, E]
        if lengths is None:
            outputs, state = self.rnn(embedded, state)  # [B, T, H]
        else:
            packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_out, state = self.rnn(packed, state)
            outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=tokens.size(1))
        features = self.dropout(outputs)
        if self.projection is not None:
            features = self.projection(features)  # [B, T, E]
        return features, state

    def decode(self, features: Tensor) -> Tensor:
        """features [..., output_dim] -> logits [..., V]; the pad id gets -inf."""
        logits = self.decoder(features)
        if self.config.pad_id is not None:
            logits[..., self.config.pad_id] = float("-inf")
        return logits


def detach_state(state: RecurrentState) -> RecurrentState:
    """Cut the graph at a BPTT window boundary while keeping the values."""
    if isinstance(state, tuple):
        return (state[0].detach(), state[1].detach())
    return state.detach()

