"""Sequence tagger: word embeddings + character features -> (bi)RNN over packed sequences -> tag logits.

The character encoder is a BiRNN of the configured cell over each word's characters; its
final states give every word a representation built from its spelling, so rare and unseen
words (whose word embedding is <unk>) still carry suffix, prefix and capitalisation evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqserve.shared.nn.cells import last_layer_state, make_rnn
from seqserve.shared.nn.padding import pad_nested
from seqserve.shared.text.vocab import Vocab


@dataclass(frozen=True, kw_only=True)
class TaggerConfig:
    vocab_size: int
    num_tags: int
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
    embedding_dim: int = 100
    char_vocab_size: int = 2
    char_embedding_dim: int = 50
    char_hidden_size: int = 50  # per direction; 0 disables character features
    hidden_size: int = 200
    num_layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.33
    pad_id: int = 0
    char_pad_id: int = 0

    def __post_init__(self) -> None:
        if self.vocab_size < 2 or self.num_tags < 2:
            raise ValueError("vocab_size and num_tags must both be >= 2")
        if self.char_hidden_size < 0:
            raise ValueError(f"char_hidden_size must be >= 0, got {self.char_hidden_size}")
        if self.char_hidden_size > 0 and self.char_vocab_size < 3:
            raise ValueError("character features need a char vocabulary beyond <pad> and <unk>")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def token_feature_size(self) -> int:
        # Word embedding plus the char BiRNN's two final states.
        return self.embedding_dim + 2 * self.char_hidden_size

    @property
    def output_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)


class CharEncoder(nn.Module):
    """Each word's characters -> the char BiRNN's final states, directions concatenated."""

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.pad_id = config.char_pad_id
        self.embedding = nn.Embedding(
            config.char_vocab_size, config.char_embedding_dim, padding_idx=self.pad_id
        )
        self.rnn = make_rnn(
            config.cell, config.char_embedding_dim, config.char_hidden_size, bidirectional=True
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, chars: Tensor) -> Tensor:
        """chars [N, C] long, every row holding >= 1 character -> features [N, 2*Hc]."""
        # Words repeat a lot within a batch ("the", ","): encode each distinct spelling once.
        unique, inverse = torch.unique(chars, dim=0, return_inverse=True)  # [U, C], [N]
        lengths = (unique != self.pad_id).sum(dim=1).cpu()  # [U]
        embedded = self.dropout(self.embedding(unique))  # [U, C, Ec]
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        _, h_n = self.rnn(packed)
        return last_layer_state(h_n, bidirectional=True)[inverse]  # [N, 2*Hc]


class SequenceTagger(nn.Module):
    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=config.pad_id)
        self.chars = CharEncoder(config) if config.char_hidden_size > 0 else None
        self.rnn = make_rnn(
            config.cell,
            config.token_feature_size,
            config.hidden_size,
            config.num_layers,
            config.bidirectional,
            config.dropout,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.output_size, config.num_tags)

    def forward(self, words: Tensor, chars: Tensor, lengths: Tensor) -> Tensor:
        """words [B, T] long (right-padded), chars [B, T, C] long, lengths [B] CPU -> logits [B, T, K].

        Padded positions get logits too (the output layer applied to zeros); losses and
        predictions must ignore them (see `tagging_loss`).
        """
        return self.output(self.dropout(self.encode(words, chars, lengths)))  # [B, T, K]

    def encode(self, words: Tensor, chars: Tensor, lengths: Tensor) -> Tensor:
        """The BiRNN's per-token outputs the output layer reads: [B, T, D*H] (zeros at padding)."""
        features = self.embedding(words)  # [B, T, E]
        if self.chars is not None:
            real = token_mask(lengths, words.size(1)).to(words.device)  # [B, T]
            char_features = features.new_zeros(*words.shape, 2 * self.config.char_hidden_size)
            char_features[real] = self.chars(chars[real])  # [N, 2*Hc] into [B, T, 2*Hc]
            features = torch.cat([features, char_features], dim=-1)  # [B, T, E + 2*Hc]
        packed = pack_padded_sequence(
            self.dropout(features), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        packed_out, _ = self.rnn(packed)
        # total_length keeps the input's T, so logits line up with `words` however it is padded.
        outputs, _ = pad_packed_sequence(
            packed_out, batch_first=True, total_length=words.size(1)
        )  # [B, T, D*H]
        return outputs


def token_mask(lengths: Tensor, max_len: int) -> Tensor:
    """[B, T] bool, True at real (non-padding) positions; on the CPU like `lengths`."""
    return torch.arange(max_len).unsqueeze(0) < lengths.cpu().unsqueeze(1)


def tagging_loss(logits: Tensor, tags: Tensor, lengths: Tensor) -> Tensor:
    """Cross-entropy averaged over real tokens: logits [B, T, K], tags [B, T], lengths [B] -> scalar."""
    real = token_mask(lengths, tags.size(1)).to(tags.device)  # [B, T]
    return F.cross_entropy(logits[real], tags[real])


def pad_characters(words: Sequence[Sequence[Sequence[int]]], pad_id: int) -> Tensor:
    """Per sentence, per word, char ids -> [B, T, C] long, right-padded in both T and C."""
    return pad_nested(words, pad_id)


@dataclass(frozen=True)
class TokenEncoder:
    """Tokens -> (word ids, per-word char ids). Training and serving both go through this,
    so a checkpoint's inputs are encoded the same way wherever it runs."""

    words: Vocab
    chars: Vocab
    lowercase_words: bool = True  # word embeddings see "the" and "The" as one; chars keep case
    max_word_chars: int = 30

    def __post_init__(self) -> None:
        if self.max_word_chars < 2:
            raise ValueError(f"max_word_chars must be >= 2, got {self.max_word_chars}")

    def encode(self, tokens: Sequence[str]) -> tuple[list[int], list[list[int]]]:
        """One sentence's tokens -> ([T] word ids, [T][<= max_word_chars] char ids)."""
        forms = [t.lower() for t in tokens] if self.lowercase_words else list(tokens)
        return self.words.encode(forms), [self.chars.encode(self.clip(t)) for t in tokens]

    def clip(self, token: str) -> str:
        # Long tokens are URLs and the like; their start (case) and end (suffix) carry the
        # evidence, and clipping bounds the char RNN's steps.
        if len(token) <= self.max_word_chars:
            return token
        head = self.max_word_chars // 2
        return token[:head] + token[len(token) - (self.max_word_chars - head) :]

    def to_payload(self) -> dict[str, object]:
        return {
            "vocab": self.words.to_list(),
            "char_vocab": self.chars.to_list(),
            "lowercase_words": self.lowercase_words,
            "max_word_chars": self.max_word_chars,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> TokenEncoder:
        return cls(
            Vocab.from_list(payload["vocab"]),
            Vocab.from_list(payload["char_vocab"]),
            bool(payload["lowercase_words"]),
            int(payload["max_word_chars"]),
        )
