"""Reference Row LSTM scan (paper section 3.1).

The input-to-state gates ``K^is * x`` (a 1x3 mask-B conv along the row, bias included) are
computed for the whole image beforehand. The scan then processes rows top to bottom; row i gets

    [o_i, f_i, i_i, g_i] = K^ss * h_{i-1} + (K^is * x)_i         (1x3 conv over the previous row)
    c_i = sigmoid(f_i) . c_{i-1} + sigmoid(i_i) . tanh(g_i)
    h_i = sigmoid(o_i) . tanh(c_i)

with h_{-1} = c_{-1} = 0, ``.`` the elementwise product, and the 1x3 state-to-state conv
zero-padded at the row's ends. Each row is computed for all columns at once: the only Python loop
is over the H sequential steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastpixel.lstm_cell import lstm_cell

__all__ = ["lstm_cell", "row_lstm_scan"]


def row_lstm_scan(input_gates: torch.Tensor, state_weight: torch.Tensor) -> torch.Tensor:
    """Run the Row LSTM over the rows.

    Args:
      input_gates: (B, 4h, H, W) input-to-state gates, bias included, layout [o | f | i | g].
      state_weight: (4h, h, 1, 3) state-to-state kernel (no bias; unmasked: the previous row is
        entirely in the past).
    Returns:
      h: (B, h, H, W), the hidden state of every pixel.
    """
    batch, four_h, height, width = input_gates.shape
    hidden = four_h // 4
    kernel = state_weight[:, :, 0, :]  # (4h, h, 3), a 1-D conv along the row
    h = input_gates.new_zeros(batch, hidden, width)
    c = input_gates.new_zeros(batch, hidden, width)
    rows = []
    for i in range(height):
        gates = input_gates[:, :, i, :] + F.conv1d(h, kernel, padding=1)
        h, c = lstm_cell(gates, c, hidden)
        rows.append(h)
    return torch.stack(rows, dim=2)
