"""PixelRNN (paper Table 1): 7x7 mask-A conv, residual Row LSTM or Diagonal BiLSTM layers, output layers."""

from __future__ import annotations

from fastpixel.layers.residual import ResidualLSTMBlock
from fastpixel.models.base import PixelModel


class RowLSTMPixelRNN(PixelModel):
    """``layers`` residual Row LSTM layers (1x3 mask-B input-to-state, 1x3 state-to-state)."""

    name = "row_lstm"

    def build_blocks(self) -> list[ResidualLSTMBlock]:
        return [ResidualLSTMBlock("row_lstm", self.hidden, num_colors=self.channels, backend=self.requested_backend)
                for _ in range(self.num_layers)]


class DiagonalBiLSTMPixelRNN(PixelModel):
    """``layers`` residual Diagonal BiLSTM layers (1x1 mask-B input-to-state, 2x1 state-to-state)."""

    name = "diagonal_bilstm"

    def build_blocks(self) -> list[ResidualLSTMBlock]:
        return [ResidualLSTMBlock("diagonal_bilstm", self.hidden, num_colors=self.channels, backend=self.requested_backend)
                for _ in range(self.num_layers)]
