"""Each trained model's inference graph on dense, right-padded tensors (no packing), sharing the
trained module's weights: the dense torch path and what `onnx_export` exports. Every forward
takes and returns plain tensors only (the ONNX graph's inputs and outputs), in eval mode.

The results equal the packed modules' (tests/worker/test_backends.py); see DenseRNN for how.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from seqserve.shared.nn.classifier import SentenceClassifier
from seqserve.shared.nn.dense import DenseRNN
from seqserve.shared.nn.language_model import RNNLanguageModel
from seqserve.shared.nn.seq2seq import EncoderMemory, Seq2Seq
from seqserve.shared.nn.tagger import SequenceTagger


def _last_layer(finals: Tensor, bidirectional: bool) -> Tensor:
    """finals [L*D, B, H] -> the top layer's states, directions concatenated [B, D*H]."""
    return torch.cat([finals[-2], finals[-1]], dim=-1) if bidirectional else finals[-1]


def _real_steps(lengths: Tensor, steps: int) -> Tensor:
    """[B, T] bool, True at real positions."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


class DenseClassifier(nn.Module):
    def __init__(self, model: SentenceClassifier) -> None:
        super().__init__()
        self.embedding, self.output = model.embedding, model.output
        self.rnn = DenseRNN(model.rnn)
        self.bidirectional = model.config.bidirectional
        self.eval()

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """tokens [B, T] padded to the longest row, lengths [B] -> logits [B, C]."""
        outputs, finals = self.rnn(self.embedding(tokens), lengths)  # [B, T, D*H]
        padding = ~_real_steps(lengths, tokens.size(1))
        pooled = outputs.masked_fill(padding.unsqueeze(-1), float("-inf")).amax(dim=1)  # [B, D*H]
        return self.output(torch.cat([_last_layer(finals, self.bidirectional), pooled], dim=-1))


def unique_words(chars: Tensor) -> tuple[Tensor, Tensor]:
    """chars [B, T, C] (CPU) -> each distinct spelling once [U, C], and inverse [B, T] into it.

    Done outside the exported graph: words repeat a lot within a batch ("the", ","), and the
    char RNN then runs once per spelling, as the packed CharEncoder does. Each row is one
    fixed-width byte string to numpy's unique: 0.25 ms per 64 sentences against 2 ms for
    `torch.unique(dim=0)`, which was 12% of the tag handler's time on ONNX Runtime (the order
    of the spellings differs, and nothing depends on it)."""
    flat = np.ascontiguousarray(chars.reshape(-1, chars.size(-1)).numpy())  # [B*T, C]
    rows = flat.view(np.dtype((np.void, flat.shape[1] * flat.itemsize))).reshape(-1)
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return torch.from_numpy(flat[first]), torch.from_numpy(inverse.astype(np.int64, copy=False).reshape(chars.shape[:2]))


class DenseTagger(nn.Module):
    def __init__(self, model: SequenceTagger) -> None:
        super().__init__()
        self.embedding, self.output = model.embedding, model.output
        self.rnn = DenseRNN(model.rnn)
        self.chars = model.chars
        self.char_rnn = DenseRNN(model.chars.rnn) if model.chars is not None else None
        self.eval()

    def forward(self, words: Tensor, chars: Tensor, inverse: Tensor, lengths: Tensor) -> Tensor:
        """words [B, T], chars [U, C] (see unique_words), inverse [B, T], lengths [B] -> logits [B, T, K]."""
        features = self.embedding(words)  # [B, T, E]
        if self.chars is not None and self.char_rnn is not None:
            # The all-padding "word" at padded positions gets length 1: its features are zeroed.
            char_lengths = (chars != self.chars.pad_id).sum(dim=1).clamp(min=1)  # [U]
            _, finals = self.char_rnn(self.chars.embedding(chars), char_lengths)  # [2, U, Hc]
            spelled = _last_layer(finals, bidirectional=True)[inverse]  # [B, T, 2*Hc]
            real = _real_steps(lengths, words.size(1)).unsqueeze(-1).to(spelled.dtype)
            features = torch.cat([features, spelled * real], dim=-1)
        outputs, _ = self.rnn(features, lengths)  # [B, T, D*H], zeros at padding
        return self.output(outputs)


class LanguageModelSteps(nn.Module):
    """tokens [B, T] from a given state -> logits [B, T, V] and the state after step T.

    Rows must be all real (no padding) for the state to mean anything; scoring reads only the
    logits at real steps, which right padding cannot reach in a one-direction model."""

    def __init__(self, model: RNNLanguageModel) -> None:
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, tokens: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """h, c [L, B, H]; a GRU/RNN ignores c and returns it unchanged."""
        lstm = self.model.config.cell == "lstm"
        logits, state = self.model(tokens, (h, c) if lstm else h)
        if isinstance(state, tuple):
            return logits, state[0], state[1]
        return logits, state, c


class DenseEncoder(nn.Module):
    """src [B, S], lengths [B] -> memory (outputs, keys, mask) and the decoder's initial h, c."""

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model = model
        self.rnn = DenseRNN(model.encoder)
        self.eval()

    def forward(self, src: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        outputs, finals = self.rnn(self.model.src_embedding(src), lengths)  # [B, S, H]
        mask = _real_steps(lengths, src.size(1))
        state = self.model._initial_state(_last_layer(finals, self.model.config.bidirectional))
        h, c = state if isinstance(state, tuple) else (state, torch.zeros_like(state))
        return outputs, self.model.key_proj(outputs), mask, h, c


class DecoderStep(nn.Module):
    """One decoder step over B * G hypotheses of B memory sentences (see Seq2Seq.decode_step)."""

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model = model
        self.eval()

    def forward(
        self, outputs: Tensor, keys: Tensor, mask: Tensor, prev: Tensor, h: Tensor, c: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        lstm = self.model.config.cell == "lstm"
        logits, state = self.model.decode_step(EncoderMemory(outputs, keys, mask), (h, c) if lstm else h, prev)
        if isinstance(state, tuple):
            return logits, state[0], state[1]
        return logits, state, c
