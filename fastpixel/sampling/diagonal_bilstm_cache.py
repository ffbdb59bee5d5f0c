"""The residual Diagonal BiLSTM block one pixel at a time (paper section 3.2), for cached sampling.

Unskewed, the reference's left-to-right scan gives pixel (r, j) from its left neighbour and the
pixel above (zero outside the image):

    gates_lr(r, j) = (K^is_lr * x)(r, j) + K^ss_lr[:, :, 0] h_lr(r - 1, j) + K^ss_lr[:, :, 1] h_lr(r, j - 1)
    c_lr(r, j), h_lr(r, j) = lstm_cell(gates_lr(r, j), c_lr(r, j - 1))

and the right-to-left scan the same with j + 1 for j - 1. The block's output is
x + expand(h_lr(r, j) + h_rl(r - 1, j)): the right-to-left map is shifted down one row.

So while row r is generated, each pixel advances the left-to-right state by one step (the term
from the row above is computed once per row at ``start_row``), and adds the right-to-left output
of row r - 1. When row r is complete, ``end_row`` runs the right-to-left direction over it, W
steps from the right, ready to be read one row down.
"""

from __future__ import annotations

import torch

from fastpixel.layers.residual import ResidualLSTMBlock
from fastpixel.reference.row_lstm import lstm_cell
from fastpixel.sampling.conv_cache import PointwiseConv, masked_weight


class DiagonalBiLSTMBlockCache:
    """x + expand(DiagonalBiLSTM(x)) evaluated pixel by pixel; step(j, x (B, 2h)) -> (B, 2h)."""

    def __init__(
        self, block: ResidualLSTMBlock, batch: int, width: int, gate_bias: torch.Tensor | None = None
    ) -> None:
        """gate_bias: optional (B, 8h, H, W) conditioning added to both directions' gates."""
        lstm = block.lstm
        self.gate_bias = gate_bias
        self.r = 0
        hidden = self.hidden = lstm.hidden
        gates = masked_weight(lstm.input_to_state)[:, :, 0, 0]  # (8h, in): [left-to-right | right-to-left]
        bias = lstm.input_to_state.bias
        self.is_lr = gates[: 4 * hidden].t().contiguous()  # (in, 4h)
        self.is_rl = gates[4 * hidden :].t().contiguous()
        self.bias_lr = bias[: 4 * hidden] if bias is not None else torch.zeros_like(gates[: 4 * hidden, 0])
        self.bias_rl = bias[4 * hidden :] if bias is not None else torch.zeros_like(gates[4 * hidden :, 0])
        self.lr_above = lstm.state_weight_lr[:, :, 0, 0].t().contiguous()  # (h, 4h)
        self.lr_left = lstm.state_weight_lr[:, :, 1, 0].t().contiguous()
        self.rl_above = lstm.state_weight_rl[:, :, 0, 0].t().contiguous()
        self.rl_right = lstm.state_weight_rl[:, :, 1, 0].t().contiguous()
        self.expand = PointwiseConv(block.expand)
        new = gates.new_zeros
        self.x_row = new(batch, width, gates.shape[1])  # the block's input on row r, (B, W, 2h)
        self.h_lr_above = new(batch, width, hidden)  # h_lr(r - 1, :)
        self.h_lr_row = new(batch, width + 1, hidden)  # h_lr(r, j) at index j + 1; index 0 is the zero padding
        self.c_lr_row = new(batch, width + 1, hidden)
        self.h_rl_above = new(batch, width, hidden)  # h_rl(r - 1, :), the shifted-down right-to-left output
        self.lr_from_above = None  # (B, W, 4h)

    def start_row(self, r: int) -> None:
        self.r = r
        self.lr_from_above = torch.addmm(
            self.bias_lr, self.h_lr_above.flatten(0, 1), self.lr_above
        ).view(self.h_lr_above.shape[0], -1, 4 * self.hidden)  # [B, W, 4h], bias folded in
        if self.gate_bias is not None:
            self.lr_from_above = self.lr_from_above + self.gate_bias[:, : 4 * self.hidden, r].transpose(1, 2)

    def step(self, j: int, x: torch.Tensor) -> torch.Tensor:
        self.x_row[:, j] = x
        gates = torch.addmm(self.lr_from_above[:, j], x, self.is_lr)  # [B, 4h]
        gates = torch.addmm(gates, self.h_lr_row[:, j], self.lr_left)
        h, c = lstm_cell(gates, self.c_lr_row[:, j], self.hidden)
        self.h_lr_row[:, j + 1], self.c_lr_row[:, j + 1] = h, c
        return x + self.expand(h + self.h_rl_above[:, j])

    def end_row(self, r: int) -> None:
        batch, width, _ = self.x_row.shape
        gates = torch.addmm(self.bias_rl, self.x_row.flatten(0, 1), self.is_rl)  # [B*W, 4h]
        gates = torch.addmm(gates, self.h_rl_above.flatten(0, 1), self.rl_above).view(batch, width, -1)
        if self.gate_bias is not None:
            gates = gates + self.gate_bias[:, 4 * self.hidden :, r].transpose(1, 2)
        h = c = self.h_rl_above.new_zeros(batch, self.hidden)  # the state right of the image
        h_rl = torch.empty_like(self.h_rl_above)
        for j in reversed(range(width)):
            h, c = lstm_cell(torch.addmm(gates[:, j], h, self.rl_right), c, self.hidden)
            h_rl[:, j] = h
        self.h_rl_above = h_rl
        self.h_lr_above = self.h_lr_row[:, 1:].clone()
