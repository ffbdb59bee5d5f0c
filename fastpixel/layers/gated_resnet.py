"""PixelCNN++'s gated ResNet block (Salimans et al. 2017, section 2.4; openai/pixel-cnn ``gated_resnet``).

    c1 = conv(concat_elu(x))  [+ nin(concat_elu(a))]          a: the shortcut input, when given
    c1 = dropout(concat_elu(c1))
    c2 = conv'(c1)  [+ b]                                       (B, 2F, H, W); b: the conditioning bias
    out = x + c2[:, :F] * sigmoid(c2[:, F:])

``concat_elu(x) = elu([x, -x])`` (the channel count doubles), ``conv`` a shifted conv of the block's
stream (:mod:`fastpixel.layers.shifted_conv`: "down" 2x3 for u, "down_right" 2x2 for ul), ``nin``
an unshifted 1x1 conv (the shortcut reads the same pixel of a stream that already has the needed
causality), conv' initialised at a tenth of the default scale (the published ``init_scale=0.1``).
A conditional model adds one bias per image ``b = E[label] + W cond`` (B, 2F) to c2 (the
published ``h``-projection; :mod:`fastpixel.layers.conditioning`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastpixel.layers.shifted_conv import ShiftedConv2d

KERNELS = {"down": (2, 3), "down_right": (2, 2)}


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    """elu([x, -x]) along the channels: (B, F, ...) -> (B, 2F, ...)."""
    return F.elu(torch.cat([x, -x], dim=1))


class GatedResNet(nn.Module):
    """One gated ResNet block on a ``channels``-wide stream of kind "down" or "down_right".

    Args:
      channels: F, the stream's features.
      kind: the stream's shifted conv ("down": 2x3, "down_right": 2x2).
      shortcut_channels: features of the shortcut input ``a`` (0: none).
      dropout: probability of zeroing an element of c1 in training (the published 0.5).
    """

    def __init__(self, channels: int, kind: str, *, shortcut_channels: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        if kind not in KERNELS:
            raise ValueError(f"kind must be one of {sorted(KERNELS)}, got {kind!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.channels, self.kind, self.shortcut_channels, self.dropout = channels, kind, shortcut_channels, dropout
        self.conv1 = ShiftedConv2d(2 * channels, channels, KERNELS[kind], kind)
        self.shortcut = nn.Conv2d(2 * shortcut_channels, channels, 1) if shortcut_channels else None
        self.conv2 = ShiftedConv2d(2 * channels, 2 * channels, KERNELS[kind], kind, init_scale=0.1)

    @property
    def cond_channels(self) -> int:
        """Width of the conditioning bias this block adds (to c2): 2F."""
        return 2 * self.channels

    def forward(
        self, x: torch.Tensor, a: torch.Tensor | None = None, cond_bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, F, H, W), a (B, A, H, W) or None, cond_bias (B, 2F) or None -> (B, F, H, W)."""
        if (a is None) != (self.shortcut is None):
            raise ValueError(f"GatedResNet: built with shortcut_channels={self.shortcut_channels}, "
                             f"called {'without' if a is None else 'with'} a shortcut input")
        c1 = self.conv1(concat_elu(x))
        if a is not None:
            c1 = c1 + self.shortcut(concat_elu(a))
        c1 = F.dropout(concat_elu(c1), p=self.dropout, training=self.training)
        c2 = self.conv2(c1)
        if cond_bias is not None:
            c2 = c2 + cond_bias[:, :, None, None].to(c2.dtype)
        value, gate = c2.chunk(2, dim=1)
        return x + value * torch.sigmoid(gate)
