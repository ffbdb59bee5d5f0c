"""Residual blocks of the paper's section 3.3 (Figure 5), on a stream of 2h features."""

from __future__ import annotations

import torch
from torch import nn

from fastpixel.layers.conv_step import PointwiseConv, RowConvCache
from fastpixel.layers.diagonal_bilstm import DiagonalBiLSTM
from fastpixel.layers.masked_conv import MaskedConv2d
from fastpixel.layers.row_lstm import RowLSTM
from fastpixel.layers.step import InferenceCache


class ResidualConvBlock(nn.Module):
    """PixelCNN block: x + conv1x1(relu(conv3x3(relu(conv1x1(relu(x)))) + b)), all mask B.

    Shapes: (B, 2h, H, W) -> (B, 2h, H, W); the convs go 2h -> h, h -> h (3x3), h -> 2h.
    ``b`` (B, h): the optional conditioning bias of a conditional model (``cond_bias``,
    :mod:`fastpixel.layers.conditioning`: ``b = E[label] + W cond``), added to the 3x3 conv's maps
    at every pixel.
    """

    def __init__(self, hidden: int, *, num_colors: int = 1, backend: str | None = None) -> None:
        super().__init__()
        kw = dict(num_colors=num_colors, backend=backend)
        self.reduce = MaskedConv2d(2 * hidden, hidden, 1, "B", **kw)
        self.conv = MaskedConv2d(hidden, hidden, 3, "B", **kw)
        self.expand = MaskedConv2d(hidden, 2 * hidden, 1, "B", **kw)

    @property
    def cond_channels(self) -> int:
        """Width of the conditioning bias (the 3x3 conv's h maps)."""
        return self.conv.spec.out_channels

    def forward(self, x: torch.Tensor, cond_bias: torch.Tensor | None = None) -> torch.Tensor:
        """cond_bias: optional (B, h) conditioning added to the 3x3 conv's maps."""
        y = self.reduce(torch.relu(x))
        y = self.conv(torch.relu(y))
        if cond_bias is not None:
            y = y + cond_bias[:, :, None, None]
        y = self.expand(torch.relu(y))
        return x + y

    # -- incremental step (cached sampling; protocol in fastpixel.layers.step) -----------------
    def allocate_inference_cache(
        self, batch: int, width: int, gate_bias: torch.Tensor | None = None, cond_bias: torch.Tensor | None = None
    ) -> ResidualConvBlockCache:
        if gate_bias is not None:
            raise TypeError("ResidualConvBlock takes no gate_bias (only LSTM blocks are conditioned on maps)")
        return ResidualConvBlockCache(self, batch, width, cond_bias)

    def step(self, cache: ResidualConvBlockCache, j: int, x: torch.Tensor) -> torch.Tensor:
        """x: the stream (B, 2h) at pixel (r, j) -> the block's output there, (B, 2h)."""
        return cache.step(j, x)


class ResidualConvBlockCache(InferenceCache):
    """The PixelCNN block one pixel at a time: only the 3x3 conv looks at other pixels; its cache
    holds rows r - 1 and r of relu(reduce(relu(x)))."""

    def __init__(self, block: ResidualConvBlock, batch: int, width: int, cond_bias: torch.Tensor | None = None) -> None:
        self.reduce = PointwiseConv(block.reduce)
        self.conv = RowConvCache(block.conv, batch, width, extra_bias=cond_bias)
        self.expand = PointwiseConv(block.expand)

    def start_row(self, r: int) -> None:
        self.conv.start_row()

    def step(self, j: int, x: torch.Tensor) -> torch.Tensor:
        self.conv.write(j, torch.relu(self.reduce(torch.relu(x))))
        return x + self.expand(torch.relu(self.conv.at(j)))


class ResidualLSTMBlock(nn.Module):
    """PixelRNN block: x + conv1x1(LSTM(x)); the LSTM maps 2h -> h, the mask-B 1x1 conv h -> 2h.

    ``kind`` is "row_lstm" or "diagonal_bilstm". Shapes: (B, 2h, H, W) -> (B, 2h, H, W).
    A conditional model adds ``b`` (B, G) to the LSTM's input-to-state gates at every pixel
    (``cond_bias``, :mod:`fastpixel.layers.conditioning`: ``gates = K^is * x + b``,
    ``b = E[label] + W cond``), beside the Multi-Scale ``gate_bias`` map.
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

    @property
    def cond_channels(self) -> int:
        """Width of the conditioning bias (the gates)."""
        return self.gate_channels

    def forward(
        self, x: torch.Tensor, gate_bias: torch.Tensor | None = None, cond_bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """gate_bias: optional (B, gate_channels, H, W) conditioning map added to the LSTM's gates;
        cond_bias: optional (B, gate_channels), the same at every pixel."""
        if cond_bias is not None:
            per_pixel = cond_bias[:, :, None, None].expand(-1, -1, *x.shape[2:])
            gate_bias = per_pixel if gate_bias is None else gate_bias + per_pixel
        return x + self.expand(self.lstm(x, gate_bias))

    # -- incremental step (cached sampling; protocol in fastpixel.layers.step) -----------------
    def allocate_inference_cache(
        self, batch: int, width: int, gate_bias: torch.Tensor | None = None, cond_bias: torch.Tensor | None = None
    ) -> InferenceCache:
        """The LSTM kind's block cache (``RowLSTM.block_cache`` / ``DiagonalBiLSTM.block_cache``)."""
        return self.lstm.block_cache(self, batch, width, gate_bias, cond_bias)

    def step(self, cache: InferenceCache, j: int, x: torch.Tensor) -> torch.Tensor:
        """x: the stream (B, 2h) at pixel (r, j) -> the block's output there, (B, 2h)."""
        return cache.step(j, x)
