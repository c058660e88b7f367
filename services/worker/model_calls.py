"""What a handler calls where it runs its model, per backend: the torch module itself, or the
checkpoint's ONNX graphs (seqserve.shared.nn.onnx_export) in ONNX Runtime's CPU provider.

Each ONNX class takes and returns torch tensors, like the module call it replaces, so the
handlers' pre/postprocessing and the beam search around them stay the same code for both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn

from seqserve.shared.nn.dense_models import unique_words
from seqserve.shared.nn.language_model import RecurrentState, RNNLanguageModel
from seqserve.shared.nn.seq2seq import DecoderState, EncoderMemory, Seq2SeqConfig

# An ONNX graph or its dense torch module: named tensors in, outputs in the graph's order.
GraphCall = Callable[..., list[Tensor]]


class OrtGraph:
    """One ONNX graph in an InferenceSession on the CPU provider."""

    def __init__(self, model: bytes, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        # The exporter drops inputs a graph does not read (a tagger without char features).
        self.inputs = {node.name for node in self.session.get_inputs()}

    def __call__(self, **inputs: Tensor) -> list[Tensor]:
        feeds = {name: np.ascontiguousarray(value.cpu().numpy()) for name, value in inputs.items()
                 if name in self.inputs}
        return [torch.from_numpy(np.asarray(out)) for out in self.session.run(None, feeds)]


class TorchGraph:
    """A dense module (seqserve.shared.nn.dense_models) called like an OrtGraph: the dense torch
    path, which the backend benchmark sets beside the packed one and ONNX Runtime."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, **inputs: Tensor) -> list[Tensor]:
        outputs = self.module(**inputs)
        return list(outputs) if isinstance(outputs, tuple) else [outputs]


class GraphClassifier:
    def __init__(self, graphs: Mapping[str, GraphCall]) -> None:
        self.graph = graphs["classify"]

    def __call__(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """As SentenceClassifier.forward: tokens [B, T], lengths [B] -> logits [B, C]."""
        return self.graph(tokens=tokens, lengths=lengths)[0]


class GraphTagger:
    def __init__(self, graphs: Mapping[str, GraphCall]) -> None:
        self.graph = graphs["tag"]

    def __call__(self, words: Tensor, chars: Tensor, lengths: Tensor) -> Tensor:
        """As SequenceTagger.forward: words [B, T], chars [B, T, C], lengths [B] -> logits [B, T, K]."""
        unique, inverse = unique_words(chars)
        return self.graph(words=words, chars=unique, inverse=inverse, lengths=lengths)[0]


class TorchLanguageModelCalls:
    """The language model's three call sites, on the torch module (packed prompts)."""

    def __init__(self, model: RNNLanguageModel) -> None:
        self.model = model

    def prompt(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Any]:
        """tokens [B, T] right-padded, lengths [B] -> logits after each row's last token [B, V], state."""
        features, state = self.model.encode(tokens, None, lengths)  # [B, T, D]
        last = (lengths - 1).to(tokens.device)
        return self.model.decode(features[torch.arange(len(last), device=tokens.device), last]), state

    def step(self, ids: Tensor, state: Any) -> tuple[Tensor, Any]:
        """ids [B] -> next logits [B, V] and the new state."""
        logits, state = self.model(ids.unsqueeze(1), state)  # [B, 1, V]
        return logits[:, 0], state

    def logits(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Scoring: logits [B, T, V] at every step (padded steps are garbage)."""
        logits, _ = self.model(tokens, None, lengths)
        return logits


class GraphLanguageModelCalls:
    """The same call sites on the "steps" graph; its state is always an (h, c) pair."""

    def __init__(self, graphs: Mapping[str, GraphCall], model: RNNLanguageModel) -> None:
        self.graph = graphs["steps"]
        self.layers, self.hidden = model.config.num_layers, model.config.hidden_size

    def _zeros(self, rows: int) -> Tensor:
        return torch.zeros(self.layers, rows, self.hidden)

    def prompt(self, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        # One dense pass per distinct prompt length: each row's state stops at its own last
        # token without packing (prompts of a batch share few lengths).
        logits: Tensor | None = None
        h, c = self._zeros(len(lengths)), self._zeros(len(lengths))
        for length in torch.unique(lengths).tolist():
            rows = (lengths == length).nonzero().squeeze(1)
            out, h_rows, c_rows = self.graph(
                tokens=tokens[rows, :length], h=self._zeros(len(rows)), c=self._zeros(len(rows))
            )
            if logits is None:
                logits = out.new_empty(len(lengths), out.size(-1))
            logits[rows], h[:, rows], c[:, rows] = out[:, -1], h_rows, c_rows
        assert logits is not None
        return logits, (h, c)

    def step(self, ids: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        logits, h, c = self.graph(tokens=ids.unsqueeze(1), h=state[0], c=state[1])
        return logits[:, 0], (h, c)

    def logits(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return self.graph(tokens=tokens, h=self._zeros(len(tokens)), c=self._zeros(len(tokens)))[0]


class GraphSeq2Seq(nn.Module):
    """What beam search and greedy decoding use of a Seq2Seq (config, encode, decode_step),
    on the "encoder" and "decoder_step" graphs. A Module only so that `evaluating` accepts it."""

    def __init__(self, graphs: Mapping[str, GraphCall], config: Seq2SeqConfig) -> None:
        super().__init__()
        self.encoder, self.step = graphs["encoder"], graphs["decoder_step"]
        self.config = config

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[EncoderMemory, DecoderState]:
        outputs, keys, mask, h, c = self.encoder(src=src, lengths=src_lengths)
        return EncoderMemory(outputs, keys, mask), self._state(h, c)

    def decode_step(
        self, memory: EncoderMemory, state: DecoderState, prev_tokens: Tensor
    ) -> tuple[Tensor, DecoderState]:
        h, c = state if isinstance(state, tuple) else (state, state)  # a GRU's graph passes c through
        logits, h, c = self.step(outputs=memory.outputs, keys=memory.keys, mask=memory.mask, prev=prev_tokens,
                                 h=h, c=c)
        return logits, self._state(h, c)

    def _state(self, h: Tensor, c: Tensor) -> DecoderState:
        return (h, c) if self.config.cell == "lstm" else h


LanguageModelCalls = TorchLanguageModelCalls | GraphLanguageModelCalls
ModelCall = Callable[..., Tensor]
__all__ = ["GraphCall", "GraphClassifier", "GraphLanguageModelCalls", "GraphSeq2Seq", "GraphTagger",
           "LanguageModelCalls", "ModelCall", "OrtGraph", "RecurrentState", "TorchGraph", "TorchLanguageModelCalls"]
