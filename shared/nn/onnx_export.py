"""ONNX graphs of every task's dense inference modules (seqserve.shared.nn.dense_models).

Exported with the TorchScript exporter (`dynamo=False`), which DenseRNN's layers give one
native ONNX LSTM/GRU/RNN node each (both directions, `sequence_lens`; see seqserve.shared.nn.dense)
with dynamic batch and time axes; the dynamo exporter froze the time axis of the bidirectional
pattern (pytorch/pytorch#191855) at the torch 2.13 this project pins. Example inputs are small but give every dynamic axis a size
above 1 (the decoder step's hypotheses per sentence too), so the tracer keeps them symbolic.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from seqserve.shared.nn.classifier import SentenceClassifier
from seqserve.shared.nn.dense_models import (
    DecoderStep,
    DenseClassifier,
    DenseEncoder,
    DenseTagger,
    LanguageModelSteps,
)
from seqserve.shared.nn.language_model import RNNLanguageModel
from seqserve.shared.nn.seq2seq import Seq2Seq
from seqserve.shared.nn.tagger import SequenceTagger

OPSET = 17


@dataclass(frozen=True)
class Graph:
    module: nn.Module
    example: tuple[Tensor, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: dict[str, dict[int, str]]


def _ids(*shape: int) -> Tensor:
    return torch.ones(shape, dtype=torch.long)


_LENGTHS = torch.tensor([3, 2])
_BT = {0: "batch", 1: "steps"}


def _classify(model: SentenceClassifier) -> dict[str, Graph]:
    dynamic = {"tokens": _BT, "lengths": {0: "batch"}, "logits": {0: "batch"}}
    return {"classify": Graph(DenseClassifier(model), (_ids(2, 3), _LENGTHS), ("tokens", "lengths"), ("logits",),
                              dynamic)}


def _tag(model: SequenceTagger) -> dict[str, Graph]:
    example = (_ids(2, 3), _ids(3, 2), torch.zeros(2, 3, dtype=torch.long), _LENGTHS)
    dynamic = {"words": _BT, "chars": {0: "unique", 1: "chars"}, "inverse": _BT, "lengths": {0: "batch"},
               "logits": _BT}
    return {"tag": Graph(DenseTagger(model), example, ("words", "chars", "inverse", "lengths"), ("logits",),
                         dynamic)}


def _state(layers: int, rows: int, hidden: int) -> Tensor:
    return torch.zeros(layers, rows, hidden)


def _generate(model: RNNLanguageModel) -> dict[str, Graph]:
    c = model.config
    example = (_ids(2, 3), _state(c.num_layers, 2, c.hidden_size), _state(c.num_layers, 2, c.hidden_size))
    state = {1: "batch"}
    dynamic = {"tokens": _BT, "h": state, "c": state, "logits": _BT, "h_out": state, "c_out": state}
    return {"steps": Graph(LanguageModelSteps(model), example, ("tokens", "h", "c"), ("logits", "h_out", "c_out"),
                           dynamic)}


def _translate(model: Seq2Seq) -> dict[str, Graph]:
    c = model.config
    memory = {0: "batch", 1: "source"}
    hypotheses = {1: "rows"}
    encoder = Graph(
        DenseEncoder(model), (_ids(2, 3), _LENGTHS), ("src", "lengths"), ("outputs", "keys", "mask", "h", "c"),
        {"src": memory, "lengths": {0: "batch"}, "outputs": memory, "keys": memory, "mask": memory,
         "h": {1: "batch"}, "c": {1: "batch"}},
    )
    rows = 4  # two hypotheses per sentence
    step_example = (
        torch.zeros(2, 3, c.hidden_size), torch.zeros(2, 3, c.hidden_size), torch.ones(2, 3, dtype=torch.bool),
        _ids(rows), _state(c.num_layers, rows, c.hidden_size), _state(c.num_layers, rows, c.hidden_size),
    )
    step = Graph(
        DecoderStep(model), step_example, ("outputs", "keys", "mask", "prev", "h", "c"), ("logits", "h_out", "c_out"),
        {"outputs": memory, "keys": memory, "mask": memory, "prev": {0: "rows"}, "h": hypotheses,
         "c": hypotheses, "logits": {0: "rows"}, "h_out": hypotheses, "c_out": hypotheses},
    )
    return {"encoder": encoder, "decoder_step": step}


GRAPHS: dict[str, Callable[[nn.Module], dict[str, Graph]]] = {
    "classify": _classify,  # type: ignore[dict-item]
    "tag": _tag,  # type: ignore[dict-item]
    "generate": _generate,  # type: ignore[dict-item]
    "translate": _translate,  # type: ignore[dict-item]
}


def export_task(task: str, model: nn.Module) -> dict[str, bytes]:
    """The task's ONNX graphs, serialised: graph name -> model bytes. KeyError: no graphs."""
    model.eval()
    exported = {}
    for name, graph in GRAPHS[task](model).items():
        with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter warns that it is deprecated and that RNNs with a batch
            # size other than 1 trace with their example size (the axes given stay dynamic).
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph.module, graph.example, Path(scratch) / "graph.onnx", dynamo=False, opset_version=OPSET,
                input_names=list(graph.inputs), output_names=list(graph.outputs), dynamic_axes=graph.dynamic,
            )
            exported[name] = (Path(scratch) / "graph.onnx").read_bytes()
    return exported
