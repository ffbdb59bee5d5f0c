"""Reference masked convolution (paper section 3.4).

    y[b, o, r, c] = bias[o] + sum_{i, dy, dx} (W * M)[o, i, dy, dx] * x_pad[b, i, r + dy, c + dx]

with ``M = spec.mask()`` (see :mod:`fastpixel.masks`) and ``x_pad`` the input zero-padded by
``spec.padding`` so that the output keeps H and W. The mask multiplies the weight on every call,
so whatever is written into the weight (an optimizer step, ``load_state_dict``, EMA) stays masked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastpixel.masks import MaskSpec


def masked_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: MaskSpec
) -> torch.Tensor:
    """x: (B, in, H, W); weight: (out, in, kh, kw); bias: (out,) or None -> (B, out, H, W)."""
    masked_weight = weight * spec.mask(weight.dtype, weight.device)
    left, right, top, bottom = spec.padding
    if left == right and top == bottom:
        return F.conv2d(x, masked_weight, bias, padding=(top, left))
    return F.conv2d(F.pad(x, (left, right, top, bottom)), masked_weight, bias)
