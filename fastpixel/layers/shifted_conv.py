"""PixelCNN++'s shifted convolutions (Salimans et al. 2017, section 2.4): causality by padding, not masks.

Two streams carry what a pixel may see:

* the **down-shifted** stream u: u[r] depends only on the image rows above r (any column within reach);
* the **down-right-shifted** stream ul: ul[r, j] depends only on the pixels before (r, j) in raster order.

A down-shifted conv with kernel (kh, kw) (kw odd) pads kh - 1 rows on top and (kw - 1)/2 columns on
each side, so its output row r reads input rows r - kh + 1 .. r; a down-right-shifted conv pads kh - 1
rows on top and kw - 1 columns on the left, so output (r, j) reads rows <= r and, in each, columns
<= j. Both keep their stream's property (a row above a row above is above; a pixel before a pixel
before is before). No tap is ever multiplied by zero: there is no mask.

**Strided downsampling** (stride 2): the same padding, so an H x W input gives ceil(H/2) x ceil(W/2)
for any H, W >= 1 (the padded extent H + kh - 1 minus the kernel, halved, plus one). Low-resolution
row i reads full-resolution rows 2i - kh + 1 .. 2i: u_low[i] depends on image rows < 2i and ul_low[i, j]
on pixels before (2i, 2j).

**Upsampling** (transposed conv, stride 2): low-resolution (i, j) writes full-resolution rows 2i + di,
di < kh (and columns 2j + dj - (kw - 1)/2 for the down-shifted kind, 2j + dj for the down-right
kind); the output is cropped to the H x W of the stream it is added to (the skip connection's size),
so odd sizes come back exactly. Row 2i + di >= 2i keeps u's property (rows < 2i are above it); pixel
(2i + di, 2j + dj) is at or after (2i, 2j), so ul's property holds too.

``down_shift`` / ``right_shift`` move a map one row down / one column right (zeros in), used once on
each stream after the first convs, which read the current row / pixel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("down", "down_right")


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """(B, F, H, W) -> the map moved one row down, row 0 zero."""
    return F.pad(x, (0, 0, 1, 0))[:, :, : x.shape[2]]


def right_shift(x: torch.Tensor) -> torch.Tensor:
    """(B, F, H, W) -> the map moved one column right, column 0 zero."""
    return F.pad(x, (1, 0, 0, 0))[:, :, :, : x.shape[3]]


def _pair(kernel_size: int | tuple[int, int]) -> tuple[int, int]:
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if kh < 1 or kw < 1:
        raise ValueError(f"kernel_size must be positive, got {(kh, kw)}")
    return kh, kw


def _padding(kind: str, kh: int, kw: int) -> tuple[int, int, int, int]:
    """F.pad's (left, right, top, bottom) for a shifted conv of this kind."""
    if kind == "down":
        if kw % 2 == 0:
            raise ValueError(f"a down-shifted conv needs an odd kernel width (centred columns), got {kw}")
        return (kw - 1) // 2, (kw - 1) // 2, kh - 1, 0
    if kind == "down_right":
        return kw - 1, 0, kh - 1, 0
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


class ShiftedConv2d(nn.Module):
    """A down-shifted (kind "down") or down-right-shifted ("down_right") conv; stride 1 or 2.

    (B, in, H, W) -> (B, out, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], kind: str, *,
        stride: int = 1, init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        kh, kw = _pair(kernel_size)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        self.kind, self.kernel_size, self.stride = kind, (kh, kw), stride
        self.padding = _padding(kind, kh, kw)
        self.conv = nn.Conv2d(in_channels, out_channels, (kh, kw), stride=stride)
        if init_scale != 1.0:
            with torch.no_grad():
                self.conv.weight.mul_(init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


class ShiftedDeconv2d(nn.Module):
    """The stride-2 transposed conv of a "down" or "down_right" stream, cropped to ``size``.

    (B, in, h, w) -> (B, out, H, W) for any H <= 2h, W <= 2w (the skip connection's size).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], kind: str) -> None:
        super().__init__()
        kh, kw = _pair(kernel_size)
        if kh > 2 or (kind == "down_right" and kw > 2):
            raise ValueError(f"a stride-2 {kind} deconv needs kernel rows <= 2 (and columns <= 2 for down_right) "
                             f"to cover each output once, got {(kh, kw)}")
        self.left = _padding(kind, kh, kw)[0] if kind == "down" else 0  # columns cropped on the left
        self.kind, self.kernel_size = kind, (kh, kw)
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, (kh, kw), stride=2)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        height, width = size
        h, w = x.shape[2:]
        if not (math.ceil(height / 2) == h and math.ceil(width / 2) == w):
            raise ValueError(f"{type(self).__name__}: a ({h}, {w}) map upsamples to ({2 * h - 1} or {2 * h}, "
                             f"{2 * w - 1} or {2 * w}), not {(height, width)}")
        y = self.deconv(x)  # rows 2i + di, columns 2j + dj
        return y[:, :, :height, self.left: self.left + width]
