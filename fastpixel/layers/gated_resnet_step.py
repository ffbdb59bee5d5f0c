"""PixelCNN++'s gated ResNet block (fastpixel.layers.gated_resnet) evaluated a row at a time (the
down-shifted u stream) or a pixel at a time (the down-right-shifted ul stream), for cached sampling.

The block, in evaluation (no dropout):

    c1 = conv(concat_elu(x)) [+ nin(concat_elu(a))];  c1 = concat_elu(c1)
    c2 = conv'(c1) + b;  out = x + c2[:, :F] * sigmoid(c2[:, F:])

Its input ``x`` and output are :class:`~fastpixel.layers.shifted_conv_step.ActivationMap` s (the
last two rows, with concat_elu(x)); the block keeps concat_elu(c1) in a map of its own, since conv'
at a position reads c1 at the positions before it. The shortcut ``a`` is read at the same position only
(nin is 1x1), already concat_elu'd: one map's ``ce``, or two maps' side by side (the down pass's
``a = [u, ul]``, whose concat_elu interleaves them: the nin's input columns are permuted once to
take ``[ce(u), ce(ul)]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastpixel.layers.gated_resnet import GatedResNet
from fastpixel.layers.shifted_conv_step import ActivationMap, PixelConv, down_row


def _nin_weight_t(block: GatedResNet, parts: int) -> torch.Tensor | None:
    """The shortcut's 1x1 weight as (2A, F), its input columns ordered [ce(a_1), ..., ce(a_parts)]
    (concat_elu of the concatenation is [a_1 .. a_n, -a_1 .. -a_n])."""
    if block.shortcut is None:
        return None
    weight = block.shortcut.weight[:, :, 0, 0]  # (F, 2A): columns [a, -a]
    a = block.shortcut_channels // parts
    positive, negative = weight[:, : parts * a].split(a, dim=1), weight[:, parts * a:].split(a, dim=1)
    return torch.cat([w for pair in zip(positive, negative) for w in pair], dim=1).t().contiguous()


class GatedResNetStep:
    """One block's incremental evaluation: ``row`` (a "down" block, whole rows) or ``pixel`` (a
    "down_right" block, one position); ``shortcut_parts`` maps make its shortcut input."""

    def __init__(self, block: GatedResNet, batch: int, width: int, like: torch.Tensor, *,
                 shortcut_parts: int = 0, cond_bias: torch.Tensor | None = None) -> None:
        if (shortcut_parts == 0) != (block.shortcut is None):
            raise ValueError("GatedResNetStep: shortcut_parts must be > 0 exactly when the block has a shortcut")
        self.block = block
        self.c1 = ActivationMap(batch, block.channels, width, like, with_value=False)  # conv' reads concat_elu(c1)
        self.nin_t = _nin_weight_t(block, shortcut_parts) if shortcut_parts else None  # (2A, F)
        bias1 = block.conv1.conv.bias
        self.bias1 = bias1 if block.shortcut is None else bias1 + block.shortcut.bias  # conv's and nin's
        bias2 = block.conv2.conv.bias
        self.bias2 = bias2 if cond_bias is None else bias2 + cond_bias.to(bias2.dtype)  # (2F,) or (B, 2F)
        if block.kind == "down_right":
            self.conv1, self.conv2 = PixelConv(block.conv1), PixelConv(block.conv2)

    def _gate(self, x: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
        value, gate = c2.chunk(2, dim=1)
        return x + value * torch.sigmoid(gate)

    def row(self, x: ActivationMap, i: int, shortcut: list[ActivationMap]) -> torch.Tensor:
        """Output row i (B, F, W) of a "down" block, x's rows <= i and the shortcut maps' row i known."""
        c1 = down_row(self.block.conv1, x.window(i, ce=True))  # (B, F, W)
        if self.nin_t is not None:
            a = torch.cat([m.ce_row(i) for m in shortcut], dim=1)  # (B, 2A, W)
            c1 = c1 + (self.nin_t.t() @ a + self.block.shortcut.bias[:, None])  # the 1x1 nin at every column
        self.c1.write_row(i, c1)
        c2 = F.conv2d(self.c1.window(i, ce=True), self.block.conv2.conv.weight)[:, :, 0]  # (B, 2F, W)
        return self._gate(x.row(i), c2 + self.bias2[..., None])

    def pixel(self, x: ActivationMap, i: int, j: int, shortcut: list[ActivationMap]) -> torch.Tensor:
        """Output (B, F) at (i, j) of a "down_right" block, x and c1 known before (i, j) and x at it."""
        c1 = self.conv1(x.window(i, ce=True), j, bias=self.bias1)
        if self.nin_t is not None:
            a = shortcut[0].ce_at(i, j) if len(shortcut) == 1 else torch.cat([m.ce_at(i, j) for m in shortcut], 1)
            c1 = torch.addmm(c1, a, self.nin_t)
        self.c1.write_pixel(i, j, c1)
        c2 = self.conv2(self.c1.window(i, ce=True), j, bias=self.bias2)
        return self._gate(x.at(i, j), c2)
