"""Fast masked convolution: the reference's ``F.conv2d`` with the masked weight.

    y[b, o, r, c] = bias[o] + sum_{i, dy, dx} (W * M)[o, i, dy, dx] * x_pad[b, i, r + dy, c + dx]

(see :mod:`fastpixel.reference.masked_conv`). On a CPU, PyTorch's convolution (oneDNN) is already
the fastest pure-PyTorch way to compute this at the models' shapes: a 1x1 conv written as
per-image GEMMs, forward and hand-written backward, was measured level with it or slower
(docs/benchmarks.md), and the mask product costs one pass over the (small) weight, with the
0/1 mask itself cached per (spec, dtype, device) by :meth:`MaskSpec.mask`. The one difference
from the reference: unequal padding goes to ``F.conv2d`` as a padded view only when needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastpixel.masks import MaskSpec


def masked_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: MaskSpec
) -> torch.Tensor:
    """x: (B, in, H, W); weight: (out, in, kh, kw); bias: (out,) or None -> (B, out, H, W)."""
    mask = spec.mask(weight.dtype, weight.device)
    masked_weight = weight * mask
    left, right, top, bottom = spec.padding
    if left == right and top == bottom:
        return F.conv2d(x, masked_weight, bias, padding=(top, left))
    return F.conv2d(F.pad(x, (left, right, top, bottom)), masked_weight, bias)
