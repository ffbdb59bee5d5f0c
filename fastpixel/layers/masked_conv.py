"""MaskedConv2d: an nn.Conv2d-compatible layer whose mask is applied on every forward pass."""

from __future__ import annotations

import math

import torch
from torch import nn

from fastpixel.backend import BackendChoice
from fastpixel.masks import MaskSpec, color_groups
from fastpixel.ops.masked_conv import masked_conv2d


class MaskedConv2d(BackendChoice, nn.Module):
    """Masked convolution of the paper's section 3.4 (mask "A", "B", or None).

    Args:
      in_channels, out_channels: feature counts (any positive number; not only multiples of 3).
      kernel_size: int or (kh, kw); e.g. 7 (first layer), 3, 1, (1, 3) for the Row LSTM.
      mask_type: "A" (centre tap sees earlier colour groups only), "B" (its own group too), None.
      num_colors: 3 for RGB, 1 for grey/binary images.
      in_groups / out_groups: explicit colour group of each channel; default: contiguous split.
      center: centre tap (default the middle of the kernel); the output keeps H and W.
      bias: learn an additive bias (as nn.Conv2d).
      backend: "reference", "torch", "triton" or "auto" (None: the default, see fastpixel.backend);
        resolved once, ``self.backend`` says which runs (``to_backend`` switches it).

    Shapes: (B, in_channels, H, W) -> (B, out_channels, H, W). Parameters ``weight``
    (out, in, kh, kw) and ``bias`` (out,) have nn.Conv2d's names, shapes and initialisation; the
    weight stores every tap, and the mask multiplies it in the computation, so masked taps never
    reach the output whatever is written into the parameter.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        mask_type: str | None,
        *,
        num_colors: int = 1,
        in_groups: tuple[int, ...] | None = None,
        out_groups: tuple[int, ...] | None = None,
        center: tuple[int, int] | None = None,
        bias: bool = True,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        in_groups = tuple(in_groups) if in_groups is not None else color_groups(in_channels, num_colors)
        out_groups = tuple(out_groups) if out_groups is not None else color_groups(out_channels, num_colors)
        if len(in_groups) != in_channels or len(out_groups) != out_channels:
            raise ValueError(
                f"in_groups/out_groups must have {in_channels}/{out_channels} entries, "
                f"got {len(in_groups)}/{len(out_groups)}"
            )
        self.spec = MaskSpec((kh, kw), mask_type, in_groups, out_groups, center)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()
        self._init_backend(backend)

    def reset_parameters(self) -> None:
        """nn.Conv2d's initialisation (uniform, bound 1/sqrt(fan_in))."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight.shape[2] * self.weight.shape[3]
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return masked_conv2d(x, self.weight, self.bias, self.spec, backend=self.backend)

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"{s.in_channels}, {s.out_channels}, kernel_size={s.kernel_size}, mask_type={s.mask_type!r}, "
            f"colors={max(max(s.in_groups), max(s.out_groups)) + 1}, bias={self.bias is not None}"
        )
