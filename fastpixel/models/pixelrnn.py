"""PixelRNN (paper Table 1): 7x7 mask-A conv, residual Row LSTM or Diagonal BiLSTM layers, output layers."""

from __future__ import annotations

from fastpixel.layers.residual import ResidualLSTMBlock
from fastpixel.models.base import PixelModel


class RowLSTMPixelRNN(PixelModel):
    """``layers`` residual Row LSTM layers (1x3 mask-B input-to-state, 1x3 state-to-state)."""

    name = "row_lstm"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for _ in range(self.num_layers):
            self.blocks.append(ResidualLSTMBlock("row_lstm", self.hidden, num_colors=self.channels,
                                                 backend=self.requested_backend))


class DiagonalBiLSTMPixelRNN(PixelModel):
    """``layers`` residual Diagonal BiLSTM layers (1x1 mask-B input-to-state, 2x1 state-to-state)."""

    name = "diagonal_bilstm"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for _ in range(self.num_layers):
            self.blocks.append(ResidualLSTMBlock("diagonal_bilstm", self.hidden, num_colors=self.channels,
                                                 backend=self.requested_backend))
