"""Dense (unpacked) recurrent stacks that compute exactly what the packed ones compute.

Packed sequences cannot be exported to ONNX, and for small batches their bookkeeping costs more
than the padding they save (docs/benchmarks/backends.md). `DenseRNN` runs a trained `RNNBase`
over right-padded rows: each layer and direction is a single-layer, one-direction copy of the
trained weights; the backward direction reads every row reversed *within its own length*, so
padding never enters a real position's state, and each direction's final state is taken at the
row's last real step. Outputs at padded positions are zeros, as `pad_packed_sequence` gives.
Both the dense torch path and the ONNX export use these modules. Exported, each layer is one
native ONNX LSTM/GRU/RNN node over both directions with `sequence_lens`, which runs the backward
direction from each row's own last step, as packing does (`_NativeLayer`): the reversal gathers,
transposes and concatenations that the torch path needs were 27% of the tag graph's time in ONNX
Runtime's profile (docs/benchmarks/backends.md).
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor, nn

from seqserve.shared.nn.cells import CELLS


def reverse_index(lengths: Tensor, steps: int) -> Tensor:
    """[B, T] long: position t of a row reversed within its length (padding stays in place)."""
    positions = torch.arange(steps, device=lengths.device).unsqueeze(0)  # [1, T]
    lengths = lengths.unsqueeze(1)  # [B, 1]
    return torch.where(positions < lengths, lengths - 1 - positions, positions)


def _gather_steps(values: Tensor, index: Tensor) -> Tensor:
    """values [B, T, F], index [B, T] -> values[b, index[b, t]]."""
    return values.gather(1, index.unsqueeze(-1).expand(-1, -1, values.size(-1)))


def _single_direction(rnn: nn.RNNBase, layer: int, reverse: bool) -> nn.RNNBase:
    """A one-layer, one-direction copy of layer `layer`'s weights in one direction of `rnn`."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    cell = _cell_name(rnn)
    weight_ih = getattr(rnn, "weight_ih" + suffix)
    copy = CELLS[cell](weight_ih.size(1), rnn.hidden_size, batch_first=True, bias=rnn.bias)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if hasattr(rnn, name + suffix):
                getattr(copy, name + "_l0").copy_(getattr(rnn, name + suffix))
    return copy


# ONNX gate order per cell, as indices into torch's chunks: LSTM torch i,f,g,o -> ONNX i,o,f,c;
# GRU torch r,z,n -> ONNX z,r,h (with linear_before_reset=1, torch's form of the candidate).
_ONNX_OP = {"lstm": ("LSTM", (0, 3, 1, 2)), "gru": ("GRU", (1, 0, 2)), "rnn": ("RNN", (0,))}
_INT32 = 6  # onnx.TensorProto.INT32


def _cell_name(rnn: nn.RNNBase) -> str:
    return next(name for name, cls in CELLS.items() if type(rnn) is cls)


def _onnx_weights(directions: nn.ModuleList) -> tuple[Tensor, Tensor, Tensor]:
    """One layer's directions -> ONNX W [D, G*H, I], R [D, G*H, H], B [D, 2*G*H], gates reordered."""
    first = cast(nn.RNNBase, directions[0])
    _, order = _ONNX_OP[_cell_name(first)]

    def gates(rnn: nn.RNNBase, name: str) -> Tensor:
        weight = cast(Tensor, getattr(rnn, name)).detach()
        return torch.cat([weight.chunk(len(order))[i] for i in order])

    ws, rs, bs = [], [], []
    for rnn in cast(list[nn.RNNBase], list(directions)):
        ws.append(gates(rnn, "weight_ih_l0"))
        rs.append(gates(rnn, "weight_hh_l0"))
        if rnn.bias:
            bs.append(torch.cat([gates(rnn, "bias_ih_l0"), gates(rnn, "bias_hh_l0")]))
        else:
            bs.append(torch.zeros(2 * ws[-1].size(0)))
    return torch.stack(ws), torch.stack(rs), torch.stack(bs)


class _NativeLayer(torch.autograd.Function):
    """One layer, every direction, as one ONNX recurrent node. Only the exporter's tracer calls
    it; its torch run gives the outputs' shapes (the tracer records the node, not this run,
    and the graph after it depends on no value: a mask multiply, gathers, linear layers)."""

    @staticmethod
    def forward(
        ctx: Any, inputs: Tensor, lengths: Tensor, w: Tensor, r: Tensor, b: Tensor, cell: str, nonlinearity: str,
    ) -> tuple[Tensor, Tensor]:
        batch, steps, _ = inputs.shape
        directions, hidden = w.size(0), r.size(-1)
        return inputs.new_zeros(batch, steps, directions * hidden), inputs.new_zeros(directions, batch, hidden)

    @staticmethod
    def symbolic(g: Any, inputs: Any, lengths: Any, w: Any, r: Any, b: Any, cell: str, nonlinearity: str
                 ) -> tuple[Any, Any]:
        op, _ = _ONNX_OP[cell]
        directions = int(w.type().sizes()[0])
        hidden = int(r.type().sizes()[-1])
        attributes: dict[str, Any] = {"hidden_size_i": hidden,
                                      "direction_s": "bidirectional" if directions == 2 else "forward"}
        if cell == "gru":
            attributes["linear_before_reset_i"] = 1
        if cell == "rnn":
            attributes["activations_s"] = [nonlinearity.capitalize()] * directions
        steps_first = g.op("Transpose", inputs, perm_i=[1, 0, 2])  # [T, B, I]
        sequence_lens = g.op("Cast", lengths, to_i=_INT32)
        outputs = g.op(op, steps_first, w, r, b, sequence_lens, outputs=3 if cell == "lstm" else 2, **attributes)
        y, y_h = outputs[0], outputs[1]  # [T, D, B, H], [D, B, H]
        batch_first = g.op("Transpose", y, perm_i=[2, 0, 1, 3])  # [B, T, D, H]
        shape = g.op("Constant", value_t=torch.tensor([0, 0, -1], dtype=torch.long))
        return g.op("Reshape", batch_first, shape), y_h


def _dense_layer(directions: nn.ModuleList, inputs: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """One layer in torch: inputs [B, T, I] -> outputs [B, T, D*H], final states [D, B, H]."""
    reverse = reverse_index(lengths, inputs.size(1))  # [B, T]
    last = (lengths - 1).view(-1, 1, 1)  # [B, 1, 1]
    outputs, finals = [], []
    for d, rnn in enumerate(directions):
        source = inputs if d == 0 else _gather_steps(inputs, reverse)
        out, _ = rnn(source)  # [B, T, H]
        finals.append(out.gather(1, last.expand(-1, 1, out.size(-1))).squeeze(1))  # [B, H]
        outputs.append(out if d == 0 else _gather_steps(out, reverse))
    return torch.cat(outputs, dim=-1), torch.stack(finals)


class DenseRNN(nn.Module):
    """A batch-first `RNNBase` over right-padded rows, with the packed path's results."""

    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        if not rnn.batch_first:
            raise ValueError("DenseRNN takes batch-first stacks")
        self.bidirectional = rnn.bidirectional
        directions = 2 if rnn.bidirectional else 1
        self.layers = nn.ModuleList(
            nn.ModuleList(_single_direction(rnn, layer, reverse=d == 1) for d in range(directions))
            for layer in range(rnn.num_layers)
        )

    def forward(self, inputs: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """inputs [B, T, I], lengths [B] (all >= 1) -> outputs [B, T, D*H] (zeros at padding),
        final hidden states [L*D, B, H] (h only, in the packed stack's layer/direction order)."""
        steps = inputs.size(1)
        positions = torch.arange(steps, device=inputs.device).unsqueeze(0)
        real = (positions < lengths.unsqueeze(1)).unsqueeze(-1).to(inputs.dtype)  # [B, T, 1]
        finals = []
        for directions in cast(list[nn.ModuleList], list(self.layers)):
            if torch.onnx.is_in_onnx_export():
                first = cast(nn.RNNBase, directions[0])
                cell = _cell_name(first)
                nonlinearity = getattr(first, "nonlinearity", "tanh")
                out, layer_finals = _NativeLayer.apply(inputs, lengths, *_onnx_weights(directions), cell, nonlinearity)
            else:
                out, layer_finals = _dense_layer(directions, inputs, lengths)
            finals.append(layer_finals)
            inputs = out * real  # [B, T, D*H], zeros at padding
        return inputs, torch.cat(finals)
