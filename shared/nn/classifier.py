"""Sentence classifier: embeddings -> (bi)RNN over packed sequences -> pooled features -> logits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqserve.shared.nn.cells import last_layer_state, make_rnn


@dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    vocab_size: int
    num_classes: int
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    embedding_dim: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.3
    pad_id: int = 0

    def __post_init__(self) -> None:
        if self.vocab_size < 2 or self.num_classes < 2:
            raise ValueError("vocab_size and num_classes must both be >= 2")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def feature_size(self) -> int:
        # Final hidden state and max-pooled outputs, each dirs * hidden wide.
        return 2 * self.hidden_size * (2 if self.bidirectional else 1)


class SentenceClassifier(nn.Module):
    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_id)
        self.rnn = make_rnn(
            config.cell,
            config.embedding_dim,
            config.hidden_size,
            config.num_layers,
            config.bidirectional,
            config.dropout,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.feature_size, config.num_classes)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """tokens [B, T] long (right-padded), lengths [B] long on CPU, all >= 1 -> logits [B, C]."""
        return self.output(self.dropout(self.encode(tokens, lengths)))  # [B, C]

    def encode(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """The sentence encoding the output layer reads: tokens [B, T], lengths [B] -> [B, 2*D*H]."""
        embedded = self.dropout(self.embedding(tokens))  # [B, T, E]
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, h_n = self.rnn(packed)
        # Unpacked to the longest real length, so extra pad columns in `tokens` change nothing.
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True)  # [B, T', D*H]
        final = last_layer_state(h_n, self.config.bidirectional)  # [B, D*H]
        steps = torch.arange(outputs.size(1)).unsqueeze(0)  # [1, T']
        padding = (steps >= lengths.cpu().unsqueeze(1)).to(outputs.device)  # [B, T']
        pooled = outputs.masked_fill(padding.unsqueeze(-1), float("-inf")).amax(dim=1)  # [B, D*H]
        return torch.cat([final, pooled], dim=-1)  # [B, 2*D*H]
