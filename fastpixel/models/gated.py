"""The Gated PixelCNN (van den Oord et al. 2016, *Conditional Image Generation with PixelCNN Decoders*).

    x (B, C, H, W) ints -> scale to [-1, 1] -> v = h = the image
      -> layer 0: GatedBlock(first): vertical mask V ((n0//2 + 1) x n0), horizontal mask A (1 x (n0//2 + 1))
      -> `layers` GatedBlocks: vertical (n//2 + 1) x n, horizontal 1 x (n//2 + 1) mask B, residual on h
      -> [skip: sum of a 1x1 mask-B conv of every layer's h]
      -> ReLU, 1x1 mask B (p -> output_hidden), ReLU, 1x1 mask B (-> levels * C): logits (B, levels, C, H, W)

The vertical stack sees every pixel of the rows above within its reach (no blind spot: the
PixelCNN's stacked 3x3 mask-B convs never see the pixels up and to the right beyond one column per
row); the horizontal stack sees the pixels to the left, and the pixel's earlier colour groups
(fastpixel.layers.gated has the equations). A conditional model adds the paper's ``V^T h`` to both
stacks' pre-activations in every layer.
"""

from __future__ import annotations

import torch

from fastpixel.layers.gated import GatedBlock
from fastpixel.models.base import PixelModel


class GatedPixelCNN(PixelModel):
    """Gated PixelCNN: ``hidden`` = p features per stack, ``layers`` gated layers after the first.

    Args (besides PixelModel's):
      kernel_size: n of every layer after the first (odd, default 3).
      first_kernel_size: n of the first layer (odd >= 3, default 7, like the other models' 7x7 conv).
    """

    name = "gated_pixelcnn"

    def __init__(self, *, kernel_size: int = 3, first_kernel_size: int = 7, **kwargs) -> None:
        self.kernel_size, self.first_kernel_size = kernel_size, first_kernel_size
        super().__init__(**kwargs)
        self.config.update(kernel_size=kernel_size, first_kernel_size=first_kernel_size)

    @property
    def stream_channels(self) -> int:
        """The horizontal stack's p features."""
        return self.hidden

    def build_input_conv(self) -> None:
        return None  # the first gated layer reads the image with both stacks

    def build_blocks(self) -> list[GatedBlock]:
        kw = dict(num_colors=self.channels, backend=self.requested_backend)
        first = GatedBlock(self.channels, self.hidden, kernel_size=self.first_kernel_size, first=True, **kw)
        return [first] + [GatedBlock(self.hidden, self.hidden, kernel_size=self.kernel_size, first=False, **kw)
                          for _ in range(self.num_layers)]

    def forward_float(
        self, u: torch.Tensor, gate_biases: list[torch.Tensor] | None = None,
        cond_biases: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Embedded input (B, C, H, W) -> logits (B, levels, C, H, W); cond_biases: one (B, 4p) per layer."""
        if gate_biases is not None:
            raise TypeError("GatedPixelCNN takes no gate_biases (its layers are conditioned through cond_biases)")
        v = h = u
        skips = []
        for i, block in enumerate(self.blocks):
            v, h = block(v, h, None if cond_biases is None else cond_biases[i])
            if self.skip:
                skips.append(self.skip_convs[i](h))
        return self.head(torch.stack(skips).sum(0) if self.skip else h)
