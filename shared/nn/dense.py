"""Dense (unpacked) recurrent stacks that compute exactly what the packed ones compute.

Packed sequences cannot be exported to ONNX, and for small batches their bookkeeping costs more
than the padding they save (docs/benchmarks/backends.md). `DenseRNN` runs a trained `RNNBase`
over right-padded rows: each layer and direction is a single-layer, one-direction copy of the
trained weights; the backward direction reads every row reversed *within its own length*, so
padding never enters a real position's state, and each direction's final state is taken at the
row's last real step. Outputs at padded positions are zeros, as `pad_packed_sequence` gives.
Both the dense torch path and the ONNX export (one native LSTM/GRU node per layer and
direction) use these modules.
"""

from __future__ import annotations

from typing import cast

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
    cell = next(name for name, cls in CELLS.items() if type(rnn) is cls)
    weight_ih = getattr(rnn, "weight_ih" + suffix)
    copy = CELLS[cell](weight_ih.size(1), rnn.hidden_size, batch_first=True, bias=rnn.bias)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if hasattr(rnn, name + suffix):
                getattr(copy, name + "_l0").copy_(getattr(rnn, name + suffix))
    return copy


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
        reverse = reverse_index(lengths, steps)  # [B, T]
        last = (lengths - 1).view(-1, 1, 1)  # [B, 1, 1]
        finals = []
        for directions in self.layers:
            outputs = []
            for d, rnn in enumerate(cast(nn.ModuleList, directions)):
                source = inputs if d == 0 else _gather_steps(inputs, reverse)
                out, _ = rnn(source)  # [B, T, H]
                finals.append(out.gather(1, last.expand(-1, 1, out.size(-1))).squeeze(1))  # [B, H]
                outputs.append(out if d == 0 else _gather_steps(out, reverse))
            inputs = torch.cat(outputs, dim=-1) * real  # [B, T, D*H]
        return inputs, torch.stack(finals)
