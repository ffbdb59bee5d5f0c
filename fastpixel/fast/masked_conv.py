"""Fast masked convolution: per-image GEMMs over the mask's live taps, ``F.conv2d`` for small cases.

    y[b, o, r, c] = bias[o] + sum_{i, dy, dx} (W * M)[o, i, dy, dx] * x_pad[b, i, r + dy, c + dx]

(see :mod:`fastpixel.reference.masked_conv`; M = ``spec.mask()``, cached per (spec, dtype, device)
by :meth:`MaskSpec.mask`). A masked kernel has taps that the mask closes entirely (every tap after
the centre in raster order; the centre too for mask A with one colour): ``F.conv2d`` multiplies
their zeros anyway. Here only the *live* taps t = (dy, dx) are computed: with ``cols_t`` the input
shifted by (dy - top, dx - left) (zero where it falls off the map), per image b

    y_b = [W_t1 | W_t2 | ...] @ [cols_t1; cols_t2; ...]_b + bias        (cout, T*cin) @ (T*cin, H*W)

one ``addmm`` per image into a reused buffer (:mod:`fastpixel.fast.workspace`; the shifted copies
live there too, and a 1x1 kernel uses x itself). The Row LSTM's 1x3 mask-B input-to-state conv
has 2 live taps of 3, the PixelCNN's 3x3 mask B 5 of 9; but oneDNN's convs are quick, and
by default (:func:`gemm_wins`, which has the measurements) only wide 1x1 convs take this path,
such as a Diagonal BiLSTM's input-to-state conv, 128 -> 512 channels, 27.8 ms as GEMMs against
57.3 ms ``F.conv2d`` forward (the "torch" backend's Diagonal BiLSTM layer folds that conv into its
scan, :mod:`fastpixel.fast.diagonal_bilstm_layer`; it runs here when the layer has a gate bias). The backward is the
same GEMMs transposed: d cols_b = W^T dy_b, shifted back and summed into dx; dW = sum_b dy_b
cols_b^T (accumulated in place), scattered to the live taps and masked; d bias = sum of dy.
Small outputs (below :data:`GEMM_MIN_OUTPUT`), narrow inputs (below :data:`GEMM_MIN_INNER`
multiply-adds per output value) and the shapes where the GEMMs measured slower
(:func:`gemm_wins`) run ``F.conv2d`` with the masked weight, as the reference does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from fastpixel.fast.autocast import autocast_boundary
from fastpixel.fast.guards import reject_batched_gradients
from fastpixel.fast.workspace import scratch
from fastpixel.masks import MaskSpec


#: Smallest output (elements) for which the per-image GEMMs beat F.conv2d here (measured: 16 x 32 x
#: 28 x 28 = 0.4 M elements was slower with GEMMs, 16 x 128 x 28 x 28 = 1.6 M three times faster).
GEMM_MIN_OUTPUT = 1 << 20

#: Smallest GEMM depth (live taps x input channels) for which the GEMM path is used.
GEMM_MIN_INNER = 16


def live_taps(mask: torch.Tensor) -> tuple[tuple[int, int], ...]:
    """(dy, dx) of every tap of an (out, in, kh, kw) mask with at least one nonzero, raster order."""
    open_taps = mask.flatten(0, 1).any(dim=0).nonzero().tolist()
    return tuple((int(dy), int(dx)) for dy, dx in open_taps)


def _valid(size: int, offset: int) -> tuple[int, int]:
    """Output positions [lo, hi) whose input position p + offset lies in [0, size)."""
    lo, hi = max(0, -offset), min(size, size - offset)
    return lo, max(lo, hi)


def shift_into_(dst: torch.Tensor, src: torch.Tensor, oy: int, ox: int) -> None:
    """dst[..., r, c] = src[..., r + oy, c + ox], zero where that falls outside src (same shape)."""
    height, width = src.shape[-2:]
    (r0, r1), (c0, c1) = _valid(height, oy), _valid(width, ox)
    if r0 == r1 or c0 == c1:
        dst.zero_()
        return
    dst[..., :r0, :].zero_()
    dst[..., r1:, :].zero_()
    dst[..., r0:r1, :c0].zero_()
    dst[..., r0:r1, c1:].zero_()
    dst[..., r0:r1, c0:c1].copy_(src[..., r0 + oy : r1 + oy, c0 + ox : c1 + ox])


def unshift_add_(dst: torch.Tensor, src: torch.Tensor, oy: int, ox: int) -> None:
    """The adjoint of :func:`shift_into_`: dst[..., r + oy, c + ox] += src[..., r, c] where in range."""
    height, width = src.shape[-2:]
    (r0, r1), (c0, c1) = _valid(height, oy), _valid(width, ox)
    if r0 < r1 and c0 < c1:
        dst[..., r0 + oy : r1 + oy, c0 + ox : c1 + ox].add_(src[..., r0:r1, c0:c1])


def live_tap_columns(x: torch.Tensor, offsets: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """(B, cin, H, W) -> (B, T*cin, H*W): x shifted by each live tap's offset, stacked (x itself for 1x1)."""
    batch, cin, height, width = x.shape
    if offsets == ((0, 0),):
        return x.reshape(batch, cin, height * width)
    cols = scratch((batch, len(offsets), cin, height, width), x.dtype, x.device)
    for t, (oy, ox) in enumerate(offsets):
        shift_into_(cols[:, t], x, oy, ox)
    return cols.view(batch, len(offsets) * cin, height * width)


def gemm_wins(spec: MaskSpec, live: int) -> bool:
    """Whether the live-tap GEMMs beat ``F.conv2d`` for this conv (given a large enough output).

    Measured here (one thread, B=16, 32x32, one conv alone, interleaved, ms, GEMMs vs F.conv2d),
    once with glibc returning freed memory to the kernel as usual (so that F.conv2d's fresh
    output pays first-touch page faults, ~1 ms per MB) and once with
    ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=8589934592``
    (freed memory kept mapped, as in a steady training loop):

    ==============================  =======================  =======================
    conv                            forward                  forward + backward
    ==============================  =======================  =======================
    1x1 128 -> 512                  27.8 vs 57.3 (26.5/61.0)  85.8 vs 142.0
    1x1 64 -> 128                   4.3 vs 3.4 (4.5/3.6)      13.9 vs 11.1
    1x3 mask B 128 -> 256 (T = 2)   26.6 vs 19.4 (25.3/39.7)  83.9 vs 68.4 (77.5/90.0)
    7x7 mask A 3 -> 128 (T = 24)    6.5 vs 4.9                20.4 vs 28.6
    3x3 mask B 64 -> 64 (T = 5)     11.4 vs 7.4 (loaded)      33.3 vs 36.5 (loaded)
    ==============================  =======================  =======================

    (in brackets: without the tunables). oneDNN's multi-tap convs run at up to ~165 GFLOP/s here
    against ~80 for these per-image GEMMs, which the skipped taps do not make up for once page
    faults are out of the picture, and the PixelCNN block timed by ``bench.fast_targets`` was
    0.83-1.04x the reference with GEMMs for its convs: so only 1x1 convs at least 4 times wider
    at the output than at the input take the GEMM path (the Diagonal BiLSTM's input-to-state
    conv); the others, multi-tap included, run ``F.conv2d`` like the reference. The multi-tap
    GEMM path stays available (and tested) for callers that change this rule.

    Rechecked on an AVX2 host (2026-12-02): the isolated 1x1 16 -> 32 conv at 16 x 28 x 28 ran
    2.5 ms forward + backward as GEMMs against 6.2 ms ``F.conv2d`` (oneDNN reorders NCHW to a
    blocked layout and back around a 1.6 ms conv), yet making *every* 1x1 conv a GEMM measured
    level in the MNIST Diagonal BiLSTM step with its scans stubbed out (41.1 vs 41.1 ms, median of
    15, interleaved) and 5% slower in the MNIST PixelCNN step (82.8 vs 77.8 ms, median of 21): an
    isolated conv's timing does not predict its cost inside a model here, so the rule stays.
    """
    if spec.kernel_size == (1, 1):
        return spec.out_channels >= 4 * spec.in_channels
    return False


def _conv2d(x: torch.Tensor, masked_weight: torch.Tensor, bias: torch.Tensor | None, spec: MaskSpec) -> torch.Tensor:
    left, right, top, bottom = spec.padding
    if left == right and top == bottom:
        return F.conv2d(x, masked_weight, bias, padding=(top, left))
    return F.conv2d(F.pad(x, (left, right, top, bottom)), masked_weight, bias)


class LiveTapGemmConv(torch.autograd.Function):
    """A masked conv as per-image GEMMs over its live taps; use :func:`masked_conv2d`."""

    @staticmethod
    def forward(ctx, x, weight, bias, mask, taps, offsets):
        batch, cin, height, width = x.shape
        cout = weight.shape[0]
        pixels = height * width
        masked = weight * mask
        w = torch.cat([masked[:, :, dy, dx] for dy, dx in taps], dim=1)  # (cout, T*cin)
        ctx.has_bias = bias is not None
        ctx.shape = x.shape
        ctx.taps, ctx.offsets = taps, offsets
        cols = live_tap_columns(x, offsets)
        out = scratch((batch, cout, height, width), x.dtype, x.device)
        outs = out.view(batch, cout, pixels)
        for b in range(batch):
            if bias is None:
                torch.mm(w, cols[b], out=outs[b])
            else:
                torch.addmm(bias.unsqueeze(1), w, cols[b], out=outs[b])
        ctx.save_for_backward(cols, w, mask)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        reject_batched_gradients("masked_conv2d", grad_out)
        cols, w, mask = ctx.saved_tensors
        batch, cin, height, width = ctx.shape
        cout = w.shape[0]
        pixels = height * width
        grad_x = grad_w = grad_b = None
        grads = grad_out.reshape(batch, cout, pixels)
        if ctx.needs_input_grad[0]:
            grad_x = scratch((batch, cin, height, width), cols.dtype, cols.device)
            wt = w.t()
            if ctx.offsets == ((0, 0),):
                gxs = grad_x.view(batch, cin, pixels)
                for b in range(batch):
                    torch.mm(wt, grads[b], out=gxs[b])
            else:
                d_cols = scratch(tuple(cols.shape), cols.dtype, cols.device)
                for b in range(batch):
                    torch.mm(wt, grads[b], out=d_cols[b])
                d_cols5 = d_cols.view(batch, len(ctx.offsets), cin, height, width)
                grad_x.zero_()
                for t, (oy, ox) in enumerate(ctx.offsets):
                    unshift_add_(grad_x, d_cols5[:, t], oy, ox)
        if ctx.needs_input_grad[1]:
            gw = torch.zeros(cout, cols.shape[1], dtype=w.dtype, device=w.device)
            for b in range(batch):
                gw.addmm_(grads[b], cols[b].t())
            grad_w = torch.zeros(mask.shape, dtype=w.dtype, device=w.device)
            for t, (dy, dx) in enumerate(ctx.taps):
                grad_w[:, :, dy, dx] = gw[:, t * cin : (t + 1) * cin]
            grad_w.mul_(mask)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grads.sum(dim=(0, 2))
        return grad_x, grad_w, grad_b, None, None, None


def uses_gemm_path(x: torch.Tensor, spec: MaskSpec, taps: tuple[tuple[int, int], ...]) -> bool:
    """Whether :func:`masked_conv2d` runs x through the live-tap GEMMs (see the module docstring)."""
    large = x.shape[0] * spec.out_channels * x.shape[2] * x.shape[3] >= GEMM_MIN_OUTPUT
    deep = len(taps) * spec.in_channels >= GEMM_MIN_INNER
    return x.device.type == "cpu" and large and deep and gemm_wins(spec, len(taps))


@autocast_boundary("autocast")
def masked_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: MaskSpec
) -> torch.Tensor:
    """x: (B, in, H, W); weight: (out, in, kh, kw); bias: (out,) or None -> (B, out, H, W)."""
    mask = spec.mask(weight.dtype, weight.device)
    left, right, top, bottom = spec.padding
    taps = _live_taps_of(spec)
    if taps and uses_gemm_path(x, spec, taps):
        offsets = tuple((dy - top, dx - left) for dy, dx in taps)
        return LiveTapGemmConv.apply(x, weight, bias, mask, taps, offsets)
    return _conv2d(x, weight * mask, bias, spec)


_taps_cache: dict[MaskSpec, tuple[tuple[int, int], ...]] = {}


def _live_taps_of(spec: MaskSpec) -> tuple[tuple[int, int], ...]:
    taps = _taps_cache.get(spec)
    if taps is None:
        taps = _taps_cache[spec] = live_taps(spec.mask())
    return taps
