"""Masks of the paper's section 3.4: which conv taps, and which colour groups, may be read.

A PixelRNN predicts the sub-pixels of an image in raster order, and inside a pixel in the order
R, G, B. Every feature map is split into ``num_colors`` groups (3 for RGB, 1 for grey or binary);
the units of group ``g`` at pixel ``p`` may depend on

  * any feature of any pixel strictly before ``p`` (rows above; the same row, to the left);
  * the features of pixel ``p`` itself whose group is ``< g`` (mask A, first layer) or
    ``<= g`` (mask B, every later layer);

and on nothing else. For a conv kernel of shape (kh, kw) with centre tap (cy, cx) this gives

    mask[o, i, y, x] = 1                               if y < cy, or y == cy and x < cx
                     = [group(i) <  group(o)]  (A)     if (y, x) == (cy, cx)
                     = [group(i) <= group(o)]  (B)
                     = 0                               otherwise (right of centre, below).

A third kind, "V" (the Gated PixelCNN's vertical stack, van den Oord et al. 2016), opens every
tap in the rows strictly above the centre, for every channel, and nothing in the centre row or
below: the output at (r, c) reads rows r - cy .. r - 1 only, so it may be used by every colour
group of every pixel of row r.

Groups are contiguous blocks: feature ``f`` of ``n`` belongs to ``floor(f * num_colors / n)``,
so ``n`` need not be a multiple of 3 (the paper's h = 128 splits 43/43/42) and the image's own
channels R, G, B are groups 0, 1, 2. Output maps may repeat the grouping (an LSTM's 4h gates are
four copies of the h-grouping, so gate unit j of every gate has the group of state unit j; the
final logits interleave colours). Input groups are always sorted, which the kernels rely on: at
the centre tap, output channel ``o`` reads exactly the input channels ``[0, center_limit[o])``.

A :class:`MaskSpec` is static structure (hashable, compile-time for the kernels); the mask is
applied in every forward pass, so it holds whatever the weights are.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

MASK_TYPES = ("A", "B", "V", None)


def color_groups(num_features: int, num_colors: int) -> tuple[int, ...]:
    """Group of each of ``num_features`` features: ``floor(f * num_colors / num_features)``."""
    if num_colors not in (1, 3):
        raise ValueError(f"num_colors must be 1 or 3, got {num_colors}")
    if num_features < 1:
        raise ValueError(f"num_features must be >= 1, got {num_features}")
    return tuple(f * num_colors // num_features for f in range(num_features))


def gate_groups(hidden: int, num_colors: int, num_gates: int = 4) -> tuple[int, ...]:
    """Groups of an LSTM's gate maps laid out as [o | f | i | g], each ``hidden`` wide."""
    return color_groups(hidden, num_colors) * num_gates


def logit_groups(levels: int, channels: int) -> tuple[int, ...]:
    """Groups of the output layer's ``levels * channels`` maps laid out as (levels, channels).

    Map ``k = level * channels + c`` predicts colour ``c``, so it belongs to group ``c``; the
    conv output then views as (B, levels, channels, H, W) without a copy.
    """
    return tuple(k % channels for k in range(levels * channels))


@dataclasses.dataclass(frozen=True)
class MaskSpec:
    """Static description of a masked conv.

    Attributes:
      kernel_size: (kh, kw).
      mask_type: "A", "B", "V" (rows strictly above the centre only), or None (no mask: every tap,
        every channel).
      in_groups: colour group of each input channel (non-decreasing).
      out_groups: colour group of each output channel.
      center: the tap aligned with the output pixel; defaults to (kh // 2, kw // 2). The input
        is zero-padded so that the output has the input's H and W: ``cy`` rows on top,
        ``kh - 1 - cy`` below, ``cx`` columns left, ``kw - 1 - cx`` right.
    """

    kernel_size: tuple[int, int]
    mask_type: str | None
    in_groups: tuple[int, ...]
    out_groups: tuple[int, ...]
    center: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        kh, kw = self.kernel_size
        if kh < 1 or kw < 1:
            raise ValueError(f"kernel_size must be positive, got {self.kernel_size}")
        if self.mask_type not in MASK_TYPES:
            raise ValueError(f"mask_type must be 'A', 'B', 'V' or None, got {self.mask_type!r}")
        if list(self.in_groups) != sorted(self.in_groups):
            raise ValueError("in_groups must be non-decreasing (contiguous colour groups)")
        if self.center is None:
            object.__setattr__(self, "center", (kh // 2, kw // 2))
        cy, cx = self.center
        if not (0 <= cy < kh and 0 <= cx < kw):
            raise ValueError(f"center {self.center} lies outside kernel {self.kernel_size}")

    @property
    def in_channels(self) -> int:
        return len(self.in_groups)

    @property
    def out_channels(self) -> int:
        return len(self.out_groups)

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) zero padding that keeps H and W."""
        kh, kw = self.kernel_size
        cy, cx = self.center
        return (cx, kw - 1 - cx, cy, kh - 1 - cy)

    def tap_is_open(self, y: int, x: int) -> bool:
        """Whether tap (y, x) reads every input channel (strictly before the centre; "V": in a row above it)."""
        cy, cx = self.center
        if self.mask_type == "V":
            return y < cy
        return self.mask_type is None or y < cy or (y == cy and x < cx)

    def open_taps(self) -> int:
        """How many leading taps in raster order read every input channel; every later tap but the
        centre of mask A / B is closed (the kernels loop over exactly these)."""
        kh, kw = self.kernel_size
        cy, cx = self.center
        return {None: kh * kw, "V": cy * kw}.get(self.mask_type, cy * kw + cx)

    @property
    def center_by_group(self) -> bool:
        """Whether the centre tap is open by colour group (mask A or B)."""
        return self.mask_type in ("A", "B")

    def center_limit(self) -> tuple[int, ...]:
        """For each output channel, how many leading input channels the centre tap reads."""
        if self.mask_type is None:
            return (self.in_channels,) * self.out_channels
        if self.mask_type == "V":
            return (0,) * self.out_channels
        limits = []
        for g in self.out_groups:
            if self.mask_type == "A":
                limits.append(sum(1 for gi in self.in_groups if gi < g))
            else:
                limits.append(sum(1 for gi in self.in_groups if gi <= g))
        return tuple(limits)

    def mask(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
        """The (out, in, kh, kw) 0/1 mask, cached per (spec, dtype, device)."""
        return _build_mask(self, dtype, torch.device(device))

    def useful_fraction(self) -> float:
        """Fraction of the dense kernel's multiply-adds that the mask leaves open."""
        m = self.mask()
        return float(m.sum() / m.numel())


@functools.lru_cache(maxsize=256)
def _build_mask(spec: MaskSpec, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # Built outside inference mode even when first asked for inside it: the cached tensor is reused
    # by later training steps, and an inference tensor cannot be saved for backward.
    with torch.inference_mode(False):
        kh, kw = spec.kernel_size
        cy, cx = spec.center
        mask = torch.zeros(spec.out_channels, spec.in_channels, kh, kw, dtype=torch.float64)
        for y in range(kh):
            for x in range(kw):
                if spec.tap_is_open(y, x):
                    mask[:, :, y, x] = 1.0
        if spec.center_by_group:
            limits = torch.tensor(spec.center_limit())
            mask[:, :, cy, cx] = (torch.arange(spec.in_channels)[None, :] < limits[:, None]).double()
        return mask.to(dtype=dtype, device=device)
