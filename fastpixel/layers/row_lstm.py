"""RowLSTM layer (paper section 3.1): masked 1x3 input-to-state, 1x3 state-to-state, rows in order."""

from __future__ import annotations

import math

import torch
from torch import nn

from fastpixel.backend import BackendChoice, requested_backend
from fastpixel.layers.masked_conv import MaskedConv2d
from fastpixel.layers.row_lstm_step import RowLSTMBlockCache
from fastpixel.masks import color_groups, gate_groups
from fastpixel.ops.row_lstm import row_lstm_scan


class RowLSTM(BackendChoice, nn.Module):
    """Row LSTM: (B, in_channels, H, W) -> h (B, hidden, H, W).

    input-to-state: 1x3 conv along the row with mask B (reads the pixel to the left and, by colour
    group, the pixel itself) producing the 4h gates [o | f | i | g]; gate unit j of every gate has the
    colour group of state unit j, so colours stay separated through the LSTM. state-to-state: an
    unmasked 1x3 conv over the previous row's h (``state_weight``, (4h, h, 1, 3), no bias).
    Each pixel thus sees a triangle: row r - d, columns j - 1 - d .. j + d (paper Figure 4).
    """

    #: The cache of a residual block around this layer, one pixel at a time (fastpixel.layers.step).
    block_cache = RowLSTMBlockCache

    def __init__(self, in_channels: int, hidden: int, *, num_colors: int = 1, backend: str | None = None) -> None:
        super().__init__()
        self.hidden = hidden
        backend = requested_backend(backend)  # resolved once, then handed to the sublayers
        self.input_to_state = MaskedConv2d(
            in_channels,
            4 * hidden,
            (1, 3),
            "B",
            in_groups=color_groups(in_channels, num_colors),
            out_groups=gate_groups(hidden, num_colors),
            backend=backend,
        )
        self.state_weight = nn.Parameter(torch.empty(4 * hidden, hidden, 1, 3))
        bound = 1 / math.sqrt(3 * hidden)
        nn.init.uniform_(self.state_weight, -bound, bound)
        self._init_backend(backend)

    def forward(self, x: torch.Tensor, gate_bias: torch.Tensor | None = None) -> torch.Tensor:
        """gate_bias: optional (B, 4h, H, W) added to the input-to-state gates (a conditioning map)."""
        gates = self.input_to_state(x)
        if gate_bias is not None:
            gates = gates + gate_bias
        return row_lstm_scan(gates, self.state_weight, backend=self.backend)
