"""PixelCNN (paper Table 1): 7x7 mask-A conv, residual blocks of 3x3 mask-B convs, output layers."""

from __future__ import annotations

from fastpixel.layers.residual import ResidualConvBlock
from fastpixel.models.base import PixelModel


class PixelCNN(PixelModel):
    """``layers`` residual blocks (2h -> h 1x1, h 3x3 mask B, h -> 2h 1x1), see PixelModel."""

    name = "pixelcnn"

    def build_blocks(self) -> list[ResidualConvBlock]:
        return [ResidualConvBlock(self.hidden, num_colors=self.channels, backend=self.requested_backend)
                for _ in range(self.num_layers)]
