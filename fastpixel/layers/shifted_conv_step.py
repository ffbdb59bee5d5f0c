"""PixelCNN++'s shifted convolutions evaluated a row or a pixel at a time, for cached sampling
(Ramachandran et al. 2017, "Fast Generation for Convolutional Autoregressive Models").

Every activation map of the network lives in an :class:`ActivationMap`: the last two rows of the
map at its resolution (every conv here reads two input rows), zero-padded as the shifted convs pad,
with ``concat_elu`` of them beside them (what the gated blocks' convolutions and shortcuts read). A
position is written once, when the sampler reaches it, and read by the layers after it:

* a **down-shifted** conv (the u stream, kernel (2, kw), kw odd; stride 1 or 2) computes a whole
  output row i from input rows 2i - 1 .. 2i (stride 2) or i - 1 .. i (stride 1), which are known
  once image row i (stride 1) is reached: :func:`down_row`;
* a **down-right-shifted** conv (the ul stream, kernel (2, kw <= 2) here) computes output (i, j)
  from the 2 x kw patch ending at (i, j) (stride 1) or (2i, 2j) (stride 2): :class:`PixelConv`, one
  (B, in * 2 * kw) @ (in * 2 * kw, out) matmul;
* the stride-2 **deconvs** write each output from one input position (kernel rows <= 2): a row of a
  down-shifted one from one low-resolution row (:func:`deconv_row`), a pixel of a down-right-shifted
  one from one low-resolution pixel (:class:`PixelDeconv`).

Padded coordinates: map column j is buffer column j + 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastpixel.layers.gated_resnet import concat_elu
from fastpixel.layers.shifted_conv import ShiftedConv2d, ShiftedDeconv2d


class ActivationMap:
    """A (B, C, H, W) map filled row after row, of which the layers read only the last two rows: the
    window ``value`` (B, C, 2, W + 2) holds rows i - 1 and i (i = ``current``, the row being
    written), zero-padded by a column on each side, and ``ce`` = concat_elu of it (B, 2C, 2, W + 2)
    beside it (concat_elu(0) = 0, as the convs pad concat_elu's output with zeros). Row -1 (the
    padding on top) is zeros. Writing row i + 1 (a whole row, or its first pixel) moves the window.
    with_value / with_ce: which of the two the readers need (a block's c1 is read through ce only).
    """

    def __init__(self, batch: int, channels: int, width: int, like: torch.Tensor, *, with_value: bool = True,
                 with_ce: bool = True) -> None:
        self.current = -1
        self.value = like.new_zeros(batch, channels, 2, width + 2) if with_value else None
        self.ce = like.new_zeros(batch, 2 * channels, 2, width + 2) if with_ce else None

    def _row(self, i: int) -> None:
        """Make row i the window's last row (rows advance one at a time)."""
        if i == self.current:
            return
        if i != self.current + 1:
            raise RuntimeError(f"ActivationMap: row {i} written after row {self.current} (rows must come in order)")
        for buffer in (self.value, self.ce):
            if buffer is not None:
                buffer[:, :, 0] = buffer[:, :, 1]
                buffer[:, :, 1] = 0
        self.current = i

    def _check(self, i: int) -> None:
        if i != self.current:
            raise RuntimeError(f"ActivationMap: row {i} read while the window ends at row {self.current}")

    def write_row(self, i: int, row: torch.Tensor) -> None:
        """row: (B, C, W), the map's row i."""
        self._row(i)
        if self.value is not None:
            self.value[:, :, 1, 1:-1] = row
        if self.ce is not None:
            self.ce[:, :, 1, 1:-1] = concat_elu(row)

    def write_pixel(self, i: int, j: int, value: torch.Tensor) -> None:
        """value: (B, C), the map at (i, j)."""
        self._row(i)
        if self.value is not None:
            self.value[:, :, 1, j + 1] = value
        if self.ce is not None:
            self.ce[:, :, 1, j + 1] = concat_elu(value)

    def row(self, i: int) -> torch.Tensor:
        """(B, C, W): row i (the current one)."""
        self._check(i)
        return self.value[:, :, 1, 1:-1]

    def ce_row(self, i: int) -> torch.Tensor:
        """(B, 2C, W): concat_elu of row i (the current one)."""
        self._check(i)
        return self.ce[:, :, 1, 1:-1]

    def at(self, i: int, j: int) -> torch.Tensor:
        """(B, C): the map at (i, j), i the current row."""
        self._check(i)
        return self.value[:, :, 1, j + 1]

    def ce_at(self, i: int, j: int) -> torch.Tensor:
        """(B, 2C): concat_elu of the map at (i, j), i the current row."""
        self._check(i)
        return self.ce[:, :, 1, j + 1]

    def window(self, i: int, *, ce: bool = False) -> torch.Tensor:
        """(B, C or 2C, 2, W + 2): rows i - 1 and i of value (or ce), padded; i the current row."""
        self._check(i)
        return self.ce if ce else self.value


def down_row(conv: ShiftedConv2d, window: torch.Tensor) -> torch.Tensor:
    """The output row (B, out, W') of a down-shifted 2x3 ``conv`` (stride 1 or 2) whose input rows
    it reads (i - 1 and i at stride 1; 2i - 1 and 2i at stride 2) are ``window`` (B, in, 2, W + 2)."""
    kh, kw = conv.kernel_size
    if conv.kind != "down" or kh != 2 or kw != 3:
        raise ValueError(f"down_row evaluates a down-shifted 2x3 conv, got {conv.kind} {conv.kernel_size}")
    return F.conv2d(window, conv.conv.weight, conv.conv.bias, stride=conv.stride)[:, :, 0]


def deconv_row(deconv: ShiftedDeconv2d, low_row: torch.Tensor, i: int, width: int) -> torch.Tensor:
    """Row i (B, out, width) of a stride-2 down-shifted ``deconv``'s output, cropped as the layer
    crops, from row i // 2 (B, in, w) of its input: output row 2k + di reads input row k only."""
    out = F.conv_transpose2d(low_row[:, :, None], deconv.deconv.weight, deconv.deconv.bias, stride=2)
    return out[:, :, i % 2, deconv.left: deconv.left + width]


class PixelConv:
    """A down-right-shifted 2 x kw conv (stride 1 or 2) evaluated at one output position."""

    def __init__(self, conv: ShiftedConv2d) -> None:
        kh, kw = conv.kernel_size
        if conv.kind != "down_right" or kh != 2 or kw > 2:
            raise ValueError(f"PixelConv evaluates a down-right-shifted 2 x (1 or 2) conv, got {conv.kind} "
                             f"{conv.kernel_size}")
        self.kw, self.stride = kw, conv.stride
        self.weight_t = conv.conv.weight.reshape(conv.conv.weight.shape[0], -1).t().contiguous()  # (in*2*kw, out)
        self.bias = conv.conv.bias

    def patch(self, window: torch.Tensor, j: int) -> torch.Tensor:
        """(B, in * 2 * kw): columns s*j - kw + 1 .. s*j of the input rows the output row reads,
        ``window`` (B, in, 2, W + 2) (padded: column c is at c + 1)."""
        left = self.stride * j + 2 - self.kw
        return window[:, :, :, left: left + self.kw].reshape(window.shape[0], -1)

    def __call__(self, window: torch.Tensor, j: int, bias: torch.Tensor | None = None) -> torch.Tensor:
        """(B, out) at column j of the output row whose input rows are ``window``; ``bias`` (out,) or
        (B, out) replaces the conv's own."""
        return torch.addmm(self.bias if bias is None else bias, self.patch(window, j), self.weight_t)


class PixelDeconv:
    """A stride-2 down-right-shifted deconv (kernel 2 x 2) at one output position: output (i, j)
    reads input (i // 2, j // 2) through the kernel tap (i % 2, j % 2)."""

    def __init__(self, deconv: ShiftedDeconv2d) -> None:
        if deconv.kind != "down_right" or deconv.kernel_size != (2, 2):
            raise ValueError(f"PixelDeconv evaluates a down-right-shifted 2x2 deconv, got {deconv.kind} "
                             f"{deconv.kernel_size}")
        self.taps = deconv.deconv.weight.permute(2, 3, 0, 1).contiguous()  # (2, 2, in, out)
        self.bias = deconv.deconv.bias

    def __call__(self, low: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """low: (B, in) the input at (i // 2, j // 2) -> (B, out) at (i, j)."""
        return torch.addmm(self.bias, low, self.taps[i % 2, j % 2])
