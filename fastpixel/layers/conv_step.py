"""Incremental masked convolutions for cached sampling (Ramachandran et al. 2017, "Fast Generation
for Convolutional Autoregressive Models"): what the blocks' ``step`` methods and the sampler's
input and output layers are built from.

A masked conv with centre tap (cy, cx) computes output pixel (r, j) from input rows r - cy .. r only
(the mask closes every tap below the centre row), and in row r only from columns <= j. So while
row r is being generated, a buffer of those cy + 1 input rows (zero-padded as the reference pads:
cx columns on the left, kw - 1 - cx on the right) is all a layer needs:

    rows[:, y, cx + j', :] = input[:, :, r - cy + y, j']            y = 0 .. cy
    out(r, j) = bias + sum_{y, x, i} (W * M)[o, i, y, x] * rows[:, y, j + x, i]

one (B, (cy + 1) * kw * in) @ ((cy + 1) * kw * in, out) matmul per generated pixel. Entries of the
current row right of j hold zeros (not yet generated); the mask gives them weight exactly 0.
"""

from __future__ import annotations

import torch

from fastpixel.layers.masked_conv import MaskedConv2d


def masked_weight(conv: MaskedConv2d) -> torch.Tensor:
    """The weight the reference convolves with: weight * spec.mask(), (out, in, kh, kw)."""
    return conv.weight * conv.spec.mask(conv.weight.dtype, conv.weight.device)


class PointwiseConv:
    """A 1x1 MaskedConv2d at one pixel: (B, in) -> (B, out), a matmul with the masked weight."""

    def __init__(self, conv: MaskedConv2d) -> None:
        if conv.spec.kernel_size != (1, 1):
            raise ValueError(f"PointwiseConv needs a 1x1 conv, got kernel {conv.spec.kernel_size}")
        self.weight_t = masked_weight(conv)[:, :, 0, 0].t().contiguous()  # (in, out)
        self.bias = conv.bias

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return x @ self.weight_t
        return torch.addmm(self.bias, x, self.weight_t)


class RowConvCache:
    """A (kh, kw) MaskedConv2d evaluated one pixel at a time over a buffer of cy + 1 input rows.

    Use: ``start_row()`` before each row (rows move up by one, the new row starts at zero);
    ``write(j, x)`` stores the input at (r, j) once it is known; ``at(j)`` -> output (B, out) at (r, j).
    extra_bias: optional (B, out) added to the conv's bias (a conditional model's per-image bias).
    """

    def __init__(self, conv: MaskedConv2d, batch: int, width: int, extra_bias: torch.Tensor | None = None) -> None:
        spec = conv.spec
        if spec.mask_type is None:
            raise ValueError("RowConvCache needs a masked conv (mask A, B or V): an unmasked conv reads rows below")
        (_, kw), (cy, cx) = spec.kernel_size, spec.center
        weight = masked_weight(conv)[:, :, : cy + 1, :]  # (out, in, cy + 1, kw): rows below are masked
        self.weight = weight.permute(2, 3, 1, 0).reshape(-1, spec.out_channels)  # ((cy+1)*kw*in, out)
        self.bias = conv.bias
        if extra_bias is not None:
            self.bias = extra_bias if self.bias is None else self.bias + extra_bias
        self.kw, self.cx = kw, cx
        self.rows = weight.new_zeros(batch, cy + 1, width + kw - 1, spec.in_channels)

    def start_row(self) -> None:
        self.rows[:, :-1] = self.rows[:, 1:].clone()
        self.rows[:, -1] = 0

    def write(self, j: int, x: torch.Tensor) -> None:
        """x: (B, in), the layer's input at (r, j)."""
        self.rows[:, -1, self.cx + j] = x

    def write_channel(self, j: int, channel: int, x: torch.Tensor) -> None:
        """x: (B,), input channel ``channel`` at (r, j) (the image's sub-pixels arrive one by one)."""
        self.rows[:, -1, self.cx + j, channel] = x

    def at(self, j: int, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The conv's output at (r, j), (B, out); ``bias`` (B, out) replaces the conv's own bias
        (a caller that folds the bias into a term of its own)."""
        patch = self.rows[:, :, j : j + self.kw].reshape(self.rows.shape[0], -1)  # [B, (cy+1)*kw*in]
        bias = self.bias if bias is None else bias
        if bias is None:
            return patch @ self.weight
        return torch.addmm(bias, patch, self.weight)


class ImageRow:
    """The embedded image's current row, for a model without an input conv (its first block reads
    the image): ``start_row()``, ``write_channel(j, c, x)``, ``at(j)`` -> (B, C) as written so far."""

    def __init__(self, batch: int, width: int, channels: int, dtype: torch.dtype, device: torch.device) -> None:
        self.row = torch.zeros(batch, width, channels, dtype=dtype, device=device)

    def start_row(self) -> None:
        self.row.zero_()

    def write_channel(self, j: int, channel: int, x: torch.Tensor) -> None:
        self.row[:, j, channel] = x

    def at(self, j: int) -> torch.Tensor:
        return self.row[:, j]
