"""The residual Row LSTM block one pixel at a time (paper section 3.1): its incremental step.

Pixel (r, j) of the reference scan gets

    gates(r, j) = (K^is * x)(r, j) + sum_k K^ss[:, :, 0, k] h(r - 1, j - 1 + k)
    c(r, j), h(r, j) = lstm_cell(gates(r, j), c(r - 1, j))

The state-to-state term reads only the previous row, so it is computed once per row for every
column (one 1-D conv at ``start_row``); the 1x3 mask-B input-to-state conv reads the stream at
(r, j - 1) and (r, j), kept in a one-row :class:`RowConvCache`. The cache holds the previous row's
h and c and the current row's, swapped at the end of each row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from fastpixel.layers.conv_step import PointwiseConv, RowConvCache
from fastpixel.layers.step import InferenceCache
from fastpixel.lstm_cell import lstm_cell

if TYPE_CHECKING:
    from fastpixel.layers.residual import ResidualLSTMBlock


class RowLSTMBlockCache(InferenceCache):
    """x + expand(RowLSTM(x)) evaluated pixel by pixel; step(j, x (B, 2h)) -> (B, 2h)."""

    def __init__(
        self, block: ResidualLSTMBlock, batch: int, width: int, gate_bias: torch.Tensor | None = None,
        cond_bias: torch.Tensor | None = None,
    ) -> None:
        """gate_bias: optional (B, 4h, H, W) conditioning added to the gates (Multi-Scale PixelRNN);
        cond_bias: optional (B, 4h), the same at every pixel (folded into the input-to-state bias)."""
        lstm = block.lstm
        self.gate_bias = gate_bias
        self.r = 0
        self.hidden = lstm.hidden
        self.input_to_state = RowConvCache(lstm.input_to_state, batch, width, extra_bias=cond_bias)
        self.state_kernel = lstm.state_weight[:, :, 0, :]  # (4h, h, 3)
        self.expand = PointwiseConv(block.expand)
        new = lambda: lstm.state_weight.new_zeros(batch, width, self.hidden)  # noqa: E731
        self.h_above, self.c_above = new(), new()  # row r - 1, (B, W, h)
        self.h_row, self.c_row = new(), new()  # row r
        self.from_above = None  # (B, W, 4h), K^ss * h(r - 1)

    def start_row(self, r: int) -> None:
        self.r = r
        self.input_to_state.start_row()
        recurrent = F.conv1d(self.h_above.transpose(1, 2), self.state_kernel, padding=1)  # [B, 4h, W]
        self.from_above = recurrent.transpose(1, 2).contiguous()

    def step(self, j: int, x: torch.Tensor) -> torch.Tensor:
        self.input_to_state.write(j, x)
        gates = self.input_to_state.at(j) + self.from_above[:, j]  # [B, 4h]
        if self.gate_bias is not None:
            gates = gates + self.gate_bias[:, :, self.r, j]
        h, c = lstm_cell(gates, self.c_above[:, j], self.hidden)
        self.h_row[:, j], self.c_row[:, j] = h, c
        return x + self.expand(h)

    def end_row(self, r: int) -> None:
        # every column of the row has been stepped, so the old buffers can be overwritten next row
        self.h_above, self.h_row = self.h_row, self.h_above
        self.c_above, self.c_row = self.c_row, self.c_above
