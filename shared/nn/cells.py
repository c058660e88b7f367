"""Recurrent cell factory shared by every sequence model (classifier now, taggers/LMs later)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

CellType = Literal["rnn", "lstm", "gru"]
CELLS: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def make_rnn(
    cell: CellType,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
) -> nn.RNNBase:
    """A batch-first recurrent stack of the given cell type."""
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; expected one of {sorted(CELLS)}")
    rnn = CELLS[cell](
        input_size,
        hidden_size,
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_first=True,
        # Inter-layer dropout only exists between layers; torch warns when it cannot apply.
        dropout=dropout if num_layers > 1 else 0.0,
    )
    if cell == "lstm":
        _init_forget_bias(rnn)
    return rnn


def _init_forget_bias(lstm: nn.RNNBase) -> None:
    # A forget-gate bias of 1 lets gradients flow through long spans early in training
    # (Jozefowicz et al., 2015). Both biases are summed, so set one to 1 and one to 0.
    hidden = lstm.hidden_size
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            if name.startswith("bias_ih"):
                param[hidden : 2 * hidden].fill_(1.0)
            elif name.startswith("bias_hh"):
                param[hidden : 2 * hidden].fill_(0.0)


def last_layer_state(h_n: Tensor | tuple[Tensor, Tensor], bidirectional: bool) -> Tensor:
    """Final hidden state of the top layer, directions concatenated: [B, dirs*H].

    `h_n` is what an RNNBase returns as its second output ([layers*dirs, B, H], or the
    (h, c) pair for an LSTM, of which only h is used).
    """
    if isinstance(h_n, tuple):
        h_n = h_n[0]
    if bidirectional:
        return torch.cat([h_n[-2], h_n[-1]], dim=-1)
    return h_n[-1]
