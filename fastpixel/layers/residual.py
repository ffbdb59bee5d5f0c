"""Residual blocks of the paper's section 3.3 (Figure 5), on a stream of 2h features."""

from __future__ import annotations

import torch
from torch import nn

from fastpixel.layers.diagonal_bilstm import DiagonalBiLSTM
from fastpixel.layers.masked_conv import MaskedConv2d
from fastpixel.layers.row_lstm import RowLSTM


class ResidualConvBlock(nn.Module):
    """PixelCNN block: x + conv1x1(relu(conv3x3(relu(conv1x1(relu(x)))))), all mask B.

    Shapes: (B, 2h, H, W) -> (B, 2h, H, W); the convs go 2h -> h, h -> h (3x3), h -> 2h.
    """

    def __init__(self, hidden: int, *, num_colors: int = 1, backend: str | None = None) -> None:
        super().__init__()
        kw = dict(num_colors=num_colors, backend=backend)
        self.reduce = MaskedConv2d(2 * hidden, hidden, 1, "B", **kw)
        self.conv = MaskedConv2d(hidden, hidden, 3, "B", **kw)
        self.expand = MaskedConv2d(hidden, 2 * hidden, 1, "B", **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(torch.relu(x))
        y = self.conv(torch.relu(y))
        y = self.expand(torch.relu(y))
        return x + y


class ResidualLSTMBlock(nn.Module):
    """PixelRNN block: x + conv1x1(LSTM(x)); the LSTM maps 2h -> h, the mask-B 1x1 conv h -> 2h.

    ``kind`` is "row_lstm" or "diagonal_bilstm". Shapes: (B, 2h, H, W) -> (B, 2h, H, W).
    """

    def __init__(self, kind: str, hidden: int, *, num_colors: int = 1, backend: str | None = None) -> None:
        super().__init__()
        lstm_types = {"row_lstm": RowLSTM, "diagonal_bilstm": DiagonalBiLSTM}
        if kind not in lstm_types:
            raise ValueError(f"kind must be one of {sorted(lstm_types)}, got {kind!r}")
        self.lstm = lstm_types[kind](2 * hidden, hidden, num_colors=num_colors, backend=backend)
        self.expand = MaskedConv2d(hidden, 2 * hidden, 1, "B", num_colors=num_colors, backend=backend)

    @property
    def gate_channels(self) -> int:
        """Width of the LSTM's input-to-state gates (4h Row LSTM, 8h Diagonal BiLSTM)."""
        return self.lstm.input_to_state.spec.out_channels

    def forward(self, x: torch.Tensor, gate_bias: torch.Tensor | None = None) -> torch.Tensor:
        """gate_bias: optional (B, gate_channels, H, W) conditioning added to the LSTM's gates."""
        return x + self.expand(self.lstm(x, gate_bias))
