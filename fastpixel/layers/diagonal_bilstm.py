"""DiagonalBiLSTM layer (paper section 3.2): two skewed diagonal scans, one shifted down a row."""

from __future__ import annotations

import math

import torch
from torch import nn

from fastpixel.backend import BackendChoice, requested_backend
from fastpixel.layers.masked_conv import MaskedConv2d
from fastpixel.layers.diagonal_bilstm_step import DiagonalBiLSTMBlockCache
from fastpixel.masks import color_groups, gate_groups
from fastpixel.ops.diagonal_bilstm_layer import conv_diagonal_bilstm


class DiagonalBiLSTM(BackendChoice, nn.Module):
    """Diagonal BiLSTM: (B, in_channels, H, W) -> (B, hidden, H, W).

    Each direction has a 1x1 mask-B input-to-state conv (both computed by one conv to 8h maps:
    [left-to-right gates | right-to-left gates]) and an unmasked 2x1 column state-to-state kernel
    (``state_weight_lr`` / ``state_weight_rl``, (4h, h, 2, 1), no bias) applied in the skewed map.
    The right-to-left output is shifted down one row before it is added, so pixel (r, j) sees every
    pixel above it and to its left: its whole context.
    """

    #: The cache of a residual block around this layer, one pixel at a time (fastpixel.layers.step).
    block_cache = DiagonalBiLSTMBlockCache

    def __init__(self, in_channels: int, hidden: int, *, num_colors: int = 1, backend: str | None = None) -> None:
        super().__init__()
        self.hidden = hidden
        backend = requested_backend(backend)  # resolved once, then handed to the sublayers
        self.input_to_state = MaskedConv2d(
            in_channels,
            8 * hidden,
            1,
            "B",
            in_groups=color_groups(in_channels, num_colors),
            out_groups=gate_groups(hidden, num_colors, num_gates=8),
            backend=backend,
        )
        self.state_weight_lr = nn.Parameter(torch.empty(4 * hidden, hidden, 2, 1))
        self.state_weight_rl = nn.Parameter(torch.empty(4 * hidden, hidden, 2, 1))
        bound = 1 / math.sqrt(2 * hidden)
        nn.init.uniform_(self.state_weight_lr, -bound, bound)
        nn.init.uniform_(self.state_weight_rl, -bound, bound)
        self._init_backend(backend)

    def forward(self, x: torch.Tensor, gate_bias: torch.Tensor | None = None) -> torch.Tensor:
        """gate_bias: optional (B, 8h, H, W) added to both directions' input-to-state gates."""
        conv = self.input_to_state
        return conv_diagonal_bilstm(
            x, conv.weight, conv.bias, conv.spec, self.state_weight_lr, self.state_weight_rl, gate_bias,
            backend=self.backend,
        )
