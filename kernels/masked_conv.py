"""Triton masked convolution (paper section 3.4) as an implicit GEMM, forward and backward.

Same signature as :func:`fastpixel.reference.masked_conv2d`::

    y[b, o, r, c] = bias[o] + sum_{open taps (dy, dx)} sum_i W[o, i, dy, dx] * x[b, i, r + dy - cy, c + dx - cx]

(zero outside the image). The GEMM view: M = B*H*W pixels, N = output channels, K = input
channels, one K loop per open tap. The mask is structure, never data:

  * Open taps. The fully open taps are the raster indices ``t < open_taps``
    (``MaskSpec.open_taps()``): ``cy*kw + cx`` with mask A or B (rows above the centre, then the
    centre row left of it), ``cy*kw`` with mask V (the rows above only), ``kh*kw`` without a mask;
    with mask A or B the centre tap ``CT = cy*kw + cx`` is open by colour group (the op receives
    its limits; an empty list: no centre tap beyond the open ones); every other tap is closed.
    The kernels loop over ``t`` with ``tl.static_range`` on constexpr bounds, so closed taps are
    neither loaded nor multiplied.
  * Centre tap. Output channel ``o`` reads input channels ``[0, limit[o])`` (``spec.center_limit()``,
    input groups are sorted). ``limit`` is loaded as a vector for the block of output channels: the
    K loop stops at the block's largest limit (whole blocks of R/G/B channels skipped) and the weight
    load is masked elementwise below it, which handles unsorted output groups (LSTM gates
    [o|f|i|g], logits interleaving colours).
  * The weight is multiplied by the mask in the computation only: masked taps written into the
    parameter never reach the output, and their gradient is exactly zero.

Backward: grad input is the transposed masked conv (same taps, opposite shift, weight read as
(in, out)), grad weight is a GEMM over all pixels per open tap (masked at the centre, zero on closed
taps), grad bias a column sum. Accumulation in float32 (float64 for float64 inputs); ``tl.dot``
runs with ``input_precision="ieee"`` (no tf32) so float32 matches the reference.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import torch
import triton
import triton.language as tl

from fastpixel.kernels._interpreter import triton_interpreter_enabled
from fastpixel.kernels._common import (
    INT32_LIMIT,
    acc_dtype,
    cast_floating,
    check_int32_span,
    dot_precision,
    num_sms,
    register_autocast_rule,
    tl_dtype,
)

if TYPE_CHECKING:  # annotations only: the kernels import nothing of fastpixel outside this package
    from fastpixel.masks import MaskSpec

__all__ = ["masked_conv2d", "masked_conv2d_op", "useful_flops", "dense_flops"]


# -- FLOP accounting ---------------------------------------------------------------------------
def useful_flops(spec: MaskSpec, batch: int, height: int, width: int) -> int:
    """Multiply-adds x 2 of one forward pass that the mask leaves open (what the kernel computes,
    up to the padding of channel blocks). Backward costs twice this (grad input + grad weight)."""
    taps_open = sum(spec.tap_is_open(y, x) for y in range(spec.kernel_size[0]) for x in range(spec.kernel_size[1]))
    per_pixel = taps_open * spec.in_channels * spec.out_channels
    if spec.mask_type is not None:
        per_pixel += sum(spec.center_limit())
    return 2 * batch * height * width * per_pixel


def dense_flops(spec: MaskSpec, batch: int, height: int, width: int) -> int:
    """FLOPs of the same conv with every tap open (what cuDNN computes on ``weight * mask``)."""
    kh, kw = spec.kernel_size
    return 2 * batch * height * width * kh * kw * spec.in_channels * spec.out_channels


# -- configuration -----------------------------------------------------------------------------
def _gemm_configs() -> list[triton.Config]:
    if triton_interpreter_enabled():
        return [triton.Config({"BLOCK_M": 64, "BLOCK_N": 16, "BLOCK_K": 16}, num_warps=4, num_stages=1)]
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bm, bn, bk, w, s in [
            (128, 128, 32, 8, 3),
            (128, 64, 32, 4, 3),
            (128, 64, 64, 8, 3),
            (64, 128, 32, 4, 3),
            (64, 64, 32, 4, 4),
            (64, 32, 32, 4, 4),
            (128, 32, 32, 4, 4),
            (32, 32, 16, 2, 4),
        ]
    ]


def _wgrad_configs() -> list[triton.Config]:
    # Block sizes are fixed (the split over pixels is chosen on the host from them); warps and
    # stages are tuned.
    if triton_interpreter_enabled():
        return [triton.Config({}, num_warps=4, num_stages=1)]
    return [triton.Config({}, num_warps=w, num_stages=s) for w, s in [(4, 3), (4, 4), (8, 3), (8, 4)]]


def _wgrad_blocks() -> tuple[int, int, int]:
    """(BLOCK_N over out channels, BLOCK_K over in channels, BLOCK_M over pixels) of the grad-weight kernel."""
    return (16, 16, 64) if triton_interpreter_enabled() else (64, 64, 64)


# -- kernels -----------------------------------------------------------------------------------
@triton.jit
def _tap_gemm(
    acc,
    p_a_pix, m_a_pix, p_w_tap,
    o_n, m_n, b_lim, k_stop,
    K_SIZE,
    s_a_k, s_w_k, s_w_n, i_n_start,
    CENTER: tl.constexpr, TRANSPOSED: tl.constexpr,
    BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):
    # acc[BM, BN] += A[pixels, k] @ Wtap[k, n] for k in [0, k_stop). Forward: k = input channel,
    # n = output channel, centre open where k < lim[n]. Transposed (grad input): k = output channel,
    # n = input channel, centre open where n < lim[k].
    for k0 in range(0, k_stop, BLOCK_K):
        o_k = k0 + tl.arange(0, BLOCK_K)  # [BK]
        m_k = o_k < K_SIZE
        m_w = m_k[:, None] & m_n[None, :]  # [BK, BN]
        needed = True
        if CENTER:
            if TRANSPOSED:
                b_lim_k = tl.load(b_lim + o_k, mask=m_k, other=0)  # [BK] limits of these out channels
                m_w = m_w & (o_n[None, :] < b_lim_k[:, None])
                needed = tl.max(b_lim_k, axis=0) > i_n_start
            else:
                m_w = m_w & (o_k[:, None] < b_lim[None, :])
        if needed:
            p_a_blk = p_a_pix[:, None] + o_k[None, :] * s_a_k  # [BM, BK]
            b_a = tl.load(p_a_blk, mask=m_a_pix[:, None] & m_k[None, :], other=0.0)  # [BM, BK]
            p_w_blk = p_w_tap + o_k[:, None] * s_w_k + o_n[None, :] * s_w_n  # [BK, BN]
            b_w = tl.load(p_w_blk, mask=m_w, other=0.0)  # [BK, BN]
            # out_dtype: the accumulator's (float64 for float64); triton 3.6 asserts acc's dtype == out_dtype
            acc = tl.dot(b_a, b_w, acc, input_precision=PRECISION, out_dtype=acc.dtype)
    return acc


@triton.autotune(configs=_gemm_configs(), key=["N_PIX", "K_SIZE", "N_SIZE"])
@triton.jit
def _masked_conv_gemm_kernel(
    # pointers
    p_a, p_w, p_bias, p_limit, p_y,
    # sizes
    N_PIX, H, W, K_SIZE, N_SIZE,
    # strides
    s_a_b, s_a_k, s_a_h, s_a_w,
    s_w_k, s_w_n, s_w_h, s_w_w,
    s_y_b, s_y_n, s_y_h, s_y_w,
    # meta
    KW: tl.constexpr, CY: tl.constexpr, CX: tl.constexpr,
    N_FULL_TAPS: tl.constexpr, HAS_CENTER: tl.constexpr, TRANSPOSED: tl.constexpr, HAS_BIAS: tl.constexpr,
    ACC_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    # y[pix, n] = sum_taps A[pix shifted, :] @ Wtap[:, n]  (+ bias[n]).
    # Forward: A = x, n = output channel, pixel shift +(dy - CY, dx - CX).
    # Grad input (TRANSPOSED): A = grad y, n = input channel, shift -(dy - CY, dx - CX).
    i_m, i_n = tl.program_id(0), tl.program_id(1)
    o_m = i_m * BLOCK_M + tl.arange(0, BLOCK_M)  # [BM] flat pixel index over (B, H, W)
    o_n = i_n * BLOCK_N + tl.arange(0, BLOCK_N)  # [BN]
    m_m = o_m < N_PIX
    m_n = o_n < N_SIZE
    o_b = (o_m // (H * W)).to(tl.int64)
    o_r = (o_m // W) % H
    o_c = o_m % W
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC_DTYPE)  # [BM, BN]
    for t in tl.static_range(N_FULL_TAPS):
        if TRANSPOSED:
            o_ri = o_r - (t // KW - CY)
            o_ci = o_c - (t % KW - CX)
        else:
            o_ri = o_r + (t // KW - CY)
            o_ci = o_c + (t % KW - CX)
        m_pix = m_m & (o_ri >= 0) & (o_ri < H) & (o_ci >= 0) & (o_ci < W)
        p_a_pix = p_a + o_b * s_a_b + o_ri * s_a_h + o_ci * s_a_w  # [BM]
        p_w_tap = p_w + (t // KW) * s_w_h + (t % KW) * s_w_w
        acc = _tap_gemm(acc, p_a_pix, m_pix, p_w_tap, o_n, m_n, p_limit, K_SIZE, K_SIZE,
                        s_a_k, s_w_k, s_w_n, i_n * BLOCK_N,
                        False, TRANSPOSED, BLOCK_K, PRECISION)
    if HAS_CENTER:
        # the centre tap reads the pixel itself: no shift, colour groups by limit
        p_a_pix = p_a + o_b * s_a_b + o_r * s_a_h + o_c * s_a_w  # [BM]
        p_w_tap = p_w + CY * s_w_h + CX * s_w_w
        if TRANSPOSED:
            b_lim = p_limit
            k_stop = K_SIZE
        else:
            b_lim = tl.load(p_limit + o_n, mask=m_n, other=0)  # [BN] input channels read per output channel
            k_stop = tl.max(b_lim, axis=0)
        acc = _tap_gemm(acc, p_a_pix, m_m, p_w_tap, o_n, m_n, b_lim, k_stop, K_SIZE,
                        s_a_k, s_w_k, s_w_n, i_n * BLOCK_N,
                        True, TRANSPOSED, BLOCK_K, PRECISION)
    if HAS_BIAS:
        b_bias = tl.load(p_bias + o_n, mask=m_n, other=0.0).to(ACC_DTYPE)  # [BN]
        acc += b_bias[None, :]
    o_y = o_b * s_y_b + o_r * s_y_h + o_c * s_y_w  # [BM] pixel offsets in y
    p_y_blk = p_y + o_y[:, None] + o_n[None, :] * s_y_n  # [BM, BN]
    tl.store(p_y_blk, acc.to(p_y.dtype.element_ty), mask=m_m[:, None] & m_n[None, :])


@triton.autotune(configs=_wgrad_configs(), key=["N_PIX", "C_IN", "C_OUT"])
@triton.jit
def _masked_conv_wgrad_kernel(
    # pointers
    p_x, p_dy, p_limit, p_dw,
    # sizes
    N_PIX, H, W, C_IN, C_OUT, PIX_PER_SPLIT,
    # strides
    s_x_b, s_x_c, s_x_h, s_x_w,
    s_dy_b, s_dy_c, s_dy_h, s_dy_w,
    s_dw_s, s_dw_o, s_dw_i, s_dw_h, s_dw_w,
    # meta
    KW: tl.constexpr, CY: tl.constexpr, CX: tl.constexpr, N_FULL_TAPS: tl.constexpr, HAS_CENTER: tl.constexpr,
    ACC_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_M: tl.constexpr,
):
    # dW[o, i, t] = mask[o, i, t] * sum_pix dy[pix, o] * x[pix shifted by tap t, i], over the
    # pixels [i_s * PIX_PER_SPLIT, ...) of this split. One program per (o block, i block, tap, split).
    i_nk, t, i_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    n_k_blocks = tl.cdiv(C_IN, BLOCK_K)
    i_n, i_k = i_nk // n_k_blocks, i_nk % n_k_blocks
    o_n = i_n * BLOCK_N + tl.arange(0, BLOCK_N)  # [BN] output channels
    o_k = i_k * BLOCK_K + tl.arange(0, BLOCK_K)  # [BK] input channels
    m_n = o_n < C_OUT
    m_k = o_k < C_IN
    dy_tap = t // KW - CY
    dx_tap = t % KW - CX
    m_open = m_n[:, None] & m_k[None, :]  # [BN, BK]
    pix_start = i_s * PIX_PER_SPLIT
    pix_stop = tl.minimum(pix_start + PIX_PER_SPLIT, N_PIX)
    if HAS_CENTER:
        ct = CY * KW + CX
        b_lim = tl.load(p_limit + o_n, mask=m_n, other=0)  # [BN] input channels open at the centre
        m_open = m_open & ((t < N_FULL_TAPS) | ((t == ct) & (o_k[None, :] < b_lim[:, None])))
        needed = (t < N_FULL_TAPS) | ((t == ct) & (tl.max(b_lim, axis=0) > i_k * BLOCK_K))
    else:
        m_open = m_open & (t < N_FULL_TAPS)
        needed = t < N_FULL_TAPS
    pix_stop = tl.where(needed, pix_stop, pix_start)  # closed tap or centre block: no loads, zeros stored
    acc = tl.zeros([BLOCK_N, BLOCK_K], dtype=ACC_DTYPE)  # [BN, BK]
    for m0 in range(pix_start, pix_stop, BLOCK_M):
        o_m = m0 + tl.arange(0, BLOCK_M)  # [BM]
        m_m = o_m < pix_stop
        o_b = (o_m // (H * W)).to(tl.int64)
        o_r = (o_m // W) % H
        o_c = o_m % W
        o_ri = o_r + dy_tap
        o_ci = o_c + dx_tap
        m_pix = m_m & (o_ri >= 0) & (o_ri < H) & (o_ci >= 0) & (o_ci < W)
        o_y = o_b * s_dy_b + o_r * s_dy_h + o_c * s_dy_w  # [BM] pixel offsets in dy
        o_x = o_b * s_x_b + o_ri * s_x_h + o_ci * s_x_w  # [BM] shifted pixel offsets in x
        b_dy = tl.load(p_dy + o_y[None, :] + o_n[:, None] * s_dy_c, mask=m_n[:, None] & m_m[None, :], other=0.0)  # [BN, BM]
        b_x = tl.load(p_x + o_x[:, None] + o_k[None, :] * s_x_c, mask=m_pix[:, None] & m_k[None, :], other=0.0)  # [BM, BK]
        acc = tl.dot(b_dy, b_x, acc, input_precision=PRECISION, out_dtype=ACC_DTYPE)
    acc = tl.where(m_open, acc, 0.0)
    p_dw_tap = p_dw + i_s * s_dw_s + (t // KW) * s_dw_h + (t % KW) * s_dw_w
    p_dw_blk = p_dw_tap + o_n[:, None] * s_dw_o + o_k[None, :] * s_dw_i  # [BN, BK]
    tl.store(p_dw_blk, acc.to(p_dw.dtype.element_ty), mask=m_n[:, None] & m_k[None, :])


@triton.jit
def _bias_grad_kernel(
    # pointers
    p_dy, p_db,
    # sizes
    N_PIX, H, W, C_OUT,
    # strides
    s_dy_b, s_dy_c, s_dy_h, s_dy_w,
    # meta
    ACC_DTYPE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
):
    # db[o] = sum_pix dy[pix, o]
    i_n = tl.program_id(0)
    o_n = i_n * BLOCK_N + tl.arange(0, BLOCK_N)  # [BN]
    m_n = o_n < C_OUT
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=ACC_DTYPE)  # [BM, BN]
    for m0 in range(0, N_PIX, BLOCK_M):
        o_m = m0 + tl.arange(0, BLOCK_M)  # [BM]
        m_m = o_m < N_PIX
        o_b = (o_m // (H * W)).to(tl.int64)
        o_y = o_b * s_dy_b + ((o_m // W) % H) * s_dy_h + (o_m % W) * s_dy_w  # [BM] pixel offsets
        p_dy_blk = p_dy + o_y[:, None] + o_n[None, :] * s_dy_c  # [BM, BN]
        acc += tl.load(p_dy_blk, mask=m_m[:, None] & m_n[None, :], other=0.0).to(ACC_DTYPE)
    tl.store(p_db + o_n, tl.sum(acc, axis=0).to(p_db.dtype.element_ty), mask=m_n)


# -- host launchers ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _limit_tensor(center_limit: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """The centre limits as an int32 device vector, uploaded once per (limits, device): the first
    call of a shape (a warm-up, before any CUDA-graph capture) fills the cache, later calls
    allocate nothing."""
    return torch.tensor(center_limit, dtype=torch.int32, device=device)


def _gemm(a, w, bias, center_limit, center, open_taps: int, transposed: bool) -> torch.Tensor:
    """Forward (a = x) or grad input (a = grad y, transposed) as one implicit-GEMM launch -> (B, n, H, W)."""
    b, _, h, w_ = a.shape
    c_out, c_in, kh, kw = w.shape
    k_size, n_size = (c_out, c_in) if transposed else (c_in, c_out)
    # strides of the weight seen as [k, n] per tap
    s_w_k, s_w_n = (w.stride(0), w.stride(1)) if transposed else (w.stride(1), w.stride(0))
    y = torch.empty(b, n_size, h, w_, device=a.device, dtype=a.dtype)
    n_full, has_center = open_taps, len(center_limit) > 0
    limit = _limit_tensor(tuple(center_limit) or (0,), a.device)
    n_pix = b * h * w_
    cy, cx = center

    def grid(meta):
        return (triton.cdiv(n_pix, meta["BLOCK_M"]), triton.cdiv(n_size, meta["BLOCK_N"]))

    _masked_conv_gemm_kernel[grid](
        a, w, bias if bias is not None else a, limit, y,
        n_pix, h, w_, k_size, n_size,
        *a.stride(), s_w_k, s_w_n, w.stride(2), w.stride(3), *y.stride(),
        KW=kw, CY=cy, CX=cx, N_FULL_TAPS=n_full, HAS_CENTER=has_center, TRANSPOSED=transposed,
        HAS_BIAS=bias is not None, ACC_DTYPE=tl_dtype(acc_dtype(a.dtype)), PRECISION=dot_precision(a.dtype),
    )  # fmt: skip
    return y


def _pixel_split(n_pix: int, tiles: int, block_m: int, sms: int) -> tuple[int, int]:
    """(number of pixel chunks, pixels per chunk) for the grad-weight reduction: split only when the
    (out, in, open tap) tiles alone cannot fill the GPU twice over, keeping >= 4 blocks per chunk."""
    split = max(1, min(triton.cdiv(2 * sms, tiles), triton.cdiv(n_pix, 4 * block_m)))
    pix_per_split = triton.cdiv(triton.cdiv(n_pix, split), block_m) * block_m
    return triton.cdiv(n_pix, pix_per_split), pix_per_split


def _weight_grad(x, dy, w_shape, w_dtype, center_limit, center, open_taps: int) -> torch.Tensor:
    """(out, in, kh, kw) gradient of the masked weight: zero on closed taps and closed centre groups."""
    b, c_in, h, w_ = x.shape
    c_out = dy.shape[1]
    kh, kw = w_shape[2], w_shape[3]
    n_pix = b * h * w_
    block_n, block_k, block_m = _wgrad_blocks()
    tiles = triton.cdiv(c_out, block_n) * triton.cdiv(c_in, block_k) * (open_taps + 1)
    split, pix_per_split = _pixel_split(n_pix, tiles, block_m, num_sms(x.device))
    out = torch.empty(split, c_out, c_in, kh, kw, device=x.device, dtype=w_dtype if split == 1 else acc_dtype(x.dtype))
    cy, cx = center
    grid = (triton.cdiv(c_out, block_n) * triton.cdiv(c_in, block_k), kh * kw, split)
    _masked_conv_wgrad_kernel[grid](
        x, dy, _limit_tensor(tuple(center_limit) or (0,), x.device), out,
        n_pix, h, w_, c_in, c_out, pix_per_split,
        *x.stride(), *dy.stride(), *out.stride(),
        KW=kw, CY=cy, CX=cx, N_FULL_TAPS=open_taps, HAS_CENTER=len(center_limit) > 0,
        ACC_DTYPE=tl_dtype(acc_dtype(x.dtype)), PRECISION=dot_precision(x.dtype),
        BLOCK_N=block_n, BLOCK_K=block_k, BLOCK_M=block_m,
    )  # fmt: skip
    # split > 1 only: the partial sums of the pixel chunks are added here (a (split, out, in, kh, kw)
    # reduction, small next to the GEMM).
    return out[0] if split == 1 else out.sum(0).to(w_dtype)


def _bias_grad(dy: torch.Tensor, b_dtype: torch.dtype) -> torch.Tensor:
    b, c_out, h, w_ = dy.shape
    db = torch.empty(c_out, device=dy.device, dtype=b_dtype)
    block_n = 16 if triton_interpreter_enabled() else 32
    _bias_grad_kernel[(triton.cdiv(c_out, block_n),)](
        dy, db, b * h * w_, h, w_, c_out, *dy.stride(),
        ACC_DTYPE=tl_dtype(acc_dtype(dy.dtype)), BLOCK_M=32 if triton_interpreter_enabled() else 128, BLOCK_N=block_n,
    )
    return db


# -- registered ops ----------------------------------------------------------------------------
# fastpixel::masked_conv2d and its three backward ops are opaque custom ops (see docs/architecture.md,
# "Kernels as PyTorch ops"): torch.compile keeps each as one node of the graph, with the fake
# implementations below giving shapes, strides and dtypes; autograd calls the backward ops. The mask
# enters as plain values: the per-output-channel centre limits (empty: no centre tap open by group),
# the centre tap, how many leading taps in raster order are open.
Tensor = torch.Tensor


@torch.library.custom_op("fastpixel::masked_conv2d", mutates_args=())
def masked_conv2d_op(
    x: Tensor, weight: Tensor, bias: Tensor | None, center_limit: list[int], center: list[int], open_taps: int
) -> Tensor:
    """x (B, in, H, W), weight (out, in, kh, kw), bias (out,) or None -> y (B, out, H, W) contiguous, x's dtype.

    center_limit[o]: input channels [0, limit) read at the centre tap (MaskSpec.center_limit() for
    mask A / B; empty: the centre is not open by group); center: (cy, cx); open_taps: the leading
    taps in raster order open to every channel (MaskSpec.open_taps(); kh * kw without a mask)."""
    return _gemm(x, weight, bias, center_limit, tuple(center), open_taps, transposed=False)


@masked_conv2d_op.register_fake
def _(x, weight, bias, center_limit, center, open_taps):
    return x.new_empty((x.shape[0], weight.shape[0], x.shape[2], x.shape[3]))


@torch.library.custom_op("fastpixel::masked_conv2d_input_grad", mutates_args=())
def masked_conv2d_input_grad(
    dy: Tensor, weight: Tensor, center_limit: list[int], center: list[int], open_taps: int
) -> Tensor:
    """grad x (B, in, H, W) contiguous, dy's dtype: the transposed masked conv of dy (B, out, H, W)."""
    return _gemm(dy, weight, None, center_limit, tuple(center), open_taps, transposed=True)


@masked_conv2d_input_grad.register_fake
def _(dy, weight, center_limit, center, open_taps):
    return dy.new_empty((dy.shape[0], weight.shape[1], dy.shape[2], dy.shape[3]))


@torch.library.custom_op("fastpixel::masked_conv2d_weight_grad", mutates_args=())
def masked_conv2d_weight_grad(
    x: Tensor, dy: Tensor, weight: Tensor, center_limit: list[int], center: list[int], open_taps: int
) -> Tensor:
    """grad weight (out, in, kh, kw) contiguous, weight's dtype (weight gives shape and dtype only)."""
    return _weight_grad(x, dy, tuple(weight.shape), weight.dtype, center_limit, tuple(center), open_taps)


@masked_conv2d_weight_grad.register_fake
def _(x, dy, weight, center_limit, center, open_taps):
    return weight.new_empty(weight.shape)


@torch.library.custom_op("fastpixel::masked_conv2d_bias_grad", mutates_args=())
def masked_conv2d_bias_grad(dy: Tensor, bias: Tensor) -> Tensor:
    """grad bias (out,), bias's dtype: the sum of dy (B, out, H, W) over every pixel."""
    return _bias_grad(dy, bias.dtype)


@masked_conv2d_bias_grad.register_fake
def _(dy, bias):
    return bias.new_empty(bias.shape)


def _setup_context(ctx, inputs, output):
    x, weight, bias, center_limit, center, open_taps = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.mask_args = (center_limit, center, open_taps)


def _backward(ctx, dy):
    x, weight, bias = ctx.saved_tensors
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    dx = masked_conv2d_input_grad(dy, weight, *ctx.mask_args) if need_x else None
    dw = masked_conv2d_weight_grad(x, dy, weight, *ctx.mask_args) if need_w else None
    db = masked_conv2d_bias_grad(dy, bias) if bias is not None and need_b else None
    return dx, dw, db, None, None, None


masked_conv2d_op.register_autograd(_backward, setup_context=_setup_context)


def _autocast_rule(dtype: torch.dtype, args: tuple):
    # as F.conv2d under autocast (the reference): x, weight and bias in the autocast dtype, y in it too
    x, weight, bias, *rest = args
    return (cast_floating(x, dtype), cast_floating(weight, dtype), cast_floating(bias, dtype), *rest), lambda y: y


register_autocast_rule(masked_conv2d_op, _autocast_rule)


_MASK_ARGS: dict[MaskSpec, tuple[list[int], list[int], int]] = {}


def _mask_args(spec: MaskSpec) -> tuple[list[int], list[int], int]:
    """What the op needs of a MaskSpec, as plain values, computed once per spec. (A plain dict, not
    functools.lru_cache: dynamo reads the dict as a constant, but traces through an lru_cache.)"""
    try:
        return _MASK_ARGS[spec]
    except KeyError:
        limits = list(spec.center_limit()) if spec.center_by_group else []
        args = _MASK_ARGS[spec] = (limits, list(spec.center), spec.open_taps())
        return args


def masked_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: MaskSpec) -> torch.Tensor:
    """x: (B, in, H, W); weight: (out, in, kh, kw); bias: (out,) or None -> (B, out, H, W).

    Any strides (no copies); output contiguous, in x's dtype (the autocast dtype inside an autocast
    region, as F.conv2d). Differentiable in x, weight and bias. Runs ``fastpixel::masked_conv2d``.
    """
    check_int32_span("masked_conv2d", x)
    if weight.shape[0] * x.shape[2] * x.shape[3] >= INT32_LIMIT:
        raise ValueError("masked_conv2d (triton): one output image spans >= 2**31 elements (int32 offsets)")
    return masked_conv2d_op(x, weight, bias, *_mask_args(spec))
