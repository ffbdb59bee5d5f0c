"""Triton Diagonal BiLSTM scan: a persistent program per image and direction runs every step.

Computes :func:`fastpixel.reference.diagonal_bilstm_scan` without materialising the skewed map.
At column step ``t`` (``t = 0 .. W + H - 2``) row ``r`` of a program works on pixel
``(r, j = t - r)`` of its direction, in scan coordinates; the right-to-left direction reads and
writes image column ``W - 1 - j``. Rows with ``j`` outside ``[0, W)`` are idle: left of the image
the reference's state is exactly zero, and right of the image it is never read back (pixel (r, j)
reads only (r, j - 1) and (r - 1, j)), so unskewed the scan is a 2-D recurrence with zero borders.

Per step and direction, the 2x1 column state-to-state conv is, for each gate, one GEMM of the two
neighbour states ``[h(r - 1, j) | h(r, j - 1)]`` (BR x 2h) with the gate's 2h x h slice of the state
weight, done BN hidden units at a time; the gate nonlinearities and the c/h update are fused after
it. The state lives in the channels-last maps that the backward needs anyway (pre-activations, c, h:
float32, float64 for float64 inputs): each step re-reads its neighbours' h and c, which this program
wrote one step earlier (on a GPU an L1/L2 hit; a barrier orders the steps). Registers then hold only
[BR, 2h] states and one [2h, BN] weight slice, whatever h is; the weights are streamed from L2 each
step (at h = 128 they are 256 KB per direction in bf16, more than an SM holds; docs/kernels.md).

Kernels:
  * ``_diagonal_bilstm_fwd_kernel``   grid (B, 2 directions), one launch: the two programs of an
    image scan concurrently; the second to finish (a per-image counter, ``tl.atomic_add``) runs the
    epilogue, adding the right-to-left h map shifted down one row to the left-to-right one.
  * ``_diagonal_bilstm_bwd_kernel``     grid (B, 2 directions): the reverse scan -> gate gradients.
  * ``_diagonal_bilstm_wgrad_kernel``   grid (4h tiles, h tiles, 2 directions): the state-weight
    gradients as GEMMs over all B*H*W pixels from the saved h (deterministic, no atomics).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastpixel.backend import triton_interpreter_enabled
from fastpixel.kernels._common import cast_floating, register_autocast_rule


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x >= 0, t, -t)


@triton.jit
def _fwd_direction_step(t, i_d, p_gin, p_w, p_pre, p_c, p_h,
                        H, W, HID,
                        s_g_c, s_g_h, s_g_w, s_w0, s_w1, s_w2,
                        BR: tl.constexpr, BK: tl.constexpr, BN: tl.constexpr, DOT_PRECISION: tl.constexpr):
    # column step t of direction i_d; p_gin points at this image's gates, p_pre/p_c/p_h at its maps
    ACC = p_c.dtype.element_ty
    DT = p_w.dtype.element_ty
    o_r = tl.arange(0, BR)
    o_j = t - o_r  # [BR] scan column of each row
    m_r = (o_r < H) & (o_j >= 0) & (o_j < W)
    o_col = tl.where(m_r, o_j + i_d * (W - 1 - 2 * o_j), 0)  # image column
    o_left = o_col - 1 + 2 * i_d  # image column of the scan's left neighbour (r, j - 1)
    o_pix = o_r * W + o_col  # [BR]
    # [BR, 2*BK] states read by the 2x1 conv, column tap*BK + k: tap 0 = h(r - 1, j), tap 1 = h(r, j - 1)
    o_kk = tl.arange(0, 2 * BK)
    o_tap = o_kk // BK
    o_k = o_kk % BK
    o_src = tl.where(o_tap[None, :] == 0, (o_pix - W)[:, None], (o_pix - o_col + o_left)[:, None])
    m_src = m_r[:, None] & (o_k < HID)[None, :] & tl.where(
        o_tap[None, :] == 0, (o_r >= 1)[:, None], (o_j >= 1)[:, None])
    b_hh = tl.load(p_h + o_src * HID + o_k[None, :], mask=m_src, other=0.0).to(DT)  # [BR, 2*BK]
    for n0 in range(0, HID, BN):
        o_n = n0 + tl.arange(0, BN)
        m_n = o_n < HID
        m_rn = m_r[:, None] & m_n[None, :]
        # gate 0 of the state weight, [2*BK, BN]: [tap*BK + k, n] = w[n, k, tap]; gate q adds q*h*s_w0
        p_wq = p_w + o_n[None, :] * s_w0 + o_k[:, None] * s_w1 + o_tap[:, None] * s_w2
        m_w = (o_k < HID)[:, None] & m_n[None, :]
        p_gq = p_gin + o_n[None, :] * s_g_c + o_r[:, None] * s_g_h + o_col[:, None] * s_g_w
        b_pre_o = tl.load(p_gq, mask=m_rn, other=0.0).to(ACC) + tl.dot(
            b_hh, tl.load(p_wq, mask=m_w, other=0.0), input_precision=DOT_PRECISION)  # [BR, BN]
        b_pre_f = tl.load(p_gq + HID * s_g_c, mask=m_rn, other=0.0).to(ACC) + tl.dot(
            b_hh, tl.load(p_wq + HID * s_w0, mask=m_w, other=0.0), input_precision=DOT_PRECISION)
        b_pre_i = tl.load(p_gq + 2 * HID * s_g_c, mask=m_rn, other=0.0).to(ACC) + tl.dot(
            b_hh, tl.load(p_wq + 2 * HID * s_w0, mask=m_w, other=0.0), input_precision=DOT_PRECISION)
        b_pre_g = tl.load(p_gq + 3 * HID * s_g_c, mask=m_rn, other=0.0).to(ACC) + tl.dot(
            b_hh, tl.load(p_wq + 3 * HID * s_w0, mask=m_w, other=0.0), input_precision=DOT_PRECISION)
        m_left = m_rn & (o_j >= 1)[:, None]
        b_cl = tl.load(p_c + (o_pix - o_col + o_left)[:, None] * HID + o_n[None, :], mask=m_left, other=0.0)
        b_c = _sigmoid(b_pre_f) * b_cl + _sigmoid(b_pre_i) * _tanh(b_pre_g)
        b_h = _sigmoid(b_pre_o) * _tanh(b_c)
        p_pre_pix = p_pre + o_pix[:, None] * 4 * HID + o_n[None, :]
        tl.store(p_pre_pix, b_pre_o, mask=m_rn)
        tl.store(p_pre_pix + HID, b_pre_f, mask=m_rn)
        tl.store(p_pre_pix + 2 * HID, b_pre_i, mask=m_rn)
        tl.store(p_pre_pix + 3 * HID, b_pre_g, mask=m_rn)
        tl.store(p_c + o_pix[:, None] * HID + o_n[None, :], b_c, mask=m_rn)
        tl.store(p_h + o_pix[:, None] * HID + o_n[None, :], b_h, mask=m_rn)


@triton.jit
def _diagonal_bilstm_fwd_kernel(
    p_gin_lr, p_gin_rl, p_w, p_pre, p_c, p_h, p_out, p_done,  # gates (B, 4h, H, W) x 2; w (2, 4h, h, 2, 1);
    # saved maps (2, B, H, W, 4h | h | h) channels-last; out (B, h, H, W); done (B,) int32 zeros
    B, H, W, HID,
    s_g_b, s_g_c, s_g_h, s_g_w,
    s_w_d, s_w_0, s_w_1, s_w_2,
    s_o_b, s_o_c, s_o_h, s_o_w,
    BR: tl.constexpr, BK: tl.constexpr, BN: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    i_b = tl.program_id(0).to(tl.int64)
    i_d = tl.program_id(1)  # 0: left to right, 1: right to left (mirrored)
    if i_d == 0:
        p_gin = p_gin_lr + i_b * s_g_b
    else:
        p_gin = p_gin_rl + i_b * s_g_b
    o_lr = i_b * H * W  # first pixel of this image in direction 0 of the saved maps
    o_rl = (B + i_b) * H * W
    o_map = o_lr + i_d * (o_rl - o_lr)
    for t in range(0, W + H - 1):
        _fwd_direction_step(
            t, i_d, p_gin, p_w + i_d * s_w_d, p_pre + o_map * 4 * HID, p_c + o_map * HID, p_h + o_map * HID,
            H, W, HID, s_g_c, s_g_h, s_g_w, s_w_0, s_w_1, s_w_2,
            BR, BK, BN, DOT_PRECISION)
        tl.debug_barrier()  # step t + 1 reads the states this step wrote
    # epilogue, run by whichever direction of this image finishes second (the atomic is acq_rel at
    # GPU scope, after a CTA barrier): out[r] = h_lr[r] + h_rl[r - 1]
    n_done = tl.atomic_add(p_done + i_b, 1)
    if n_done == 1:
        o_r = tl.arange(0, BR)
        for n0 in range(0, HID, BN):
            o_n = n0 + tl.arange(0, BN)
            m_rn = (o_r < H)[:, None] & (o_n < HID)[None, :]
            m_up = m_rn & (o_r >= 1)[:, None]
            for col in range(0, W):
                o_pix = o_r[:, None] * W + col  # [BR, 1]
                b_lr = tl.load(p_h + (o_lr + o_pix) * HID + o_n[None, :], mask=m_rn, other=0.0)  # [BR, BN]
                b_rl = tl.load(p_h + (o_rl + o_pix - W) * HID + o_n[None, :], mask=m_up, other=0.0)
                p_o = p_out + i_b * s_o_b + o_n[None, :] * s_o_c + o_r[:, None] * s_o_h + col * s_o_w
                tl.store(p_o, (b_lr + b_rl).to(p_out.dtype.element_ty), mask=m_rn)


@triton.jit
def _diagonal_bilstm_bwd_kernel(
    p_dout, p_pre, p_c, p_w, p_dg, p_dcf,  # dout (B, h, H, W); saved maps; w (2, 4h, h, 2, 1); dg, dcf maps
    B, H, W, HID,
    s_do_b, s_do_c, s_do_h, s_do_w,
    s_w_d, s_w_0, s_w_1, s_w_2,
    BR: tl.constexpr, BK: tl.constexpr, BN: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    i_b = tl.program_id(0).to(tl.int64)
    i_d = tl.program_id(1)  # 0: left to right, 1: right to left (mirrored, output shifted down a row)
    ACC = p_c.dtype.element_ty
    DT = p_w.dtype.element_ty
    o_r = tl.arange(0, BR)
    o_n = tl.arange(0, BK)  # hidden unit of a neighbour's gate gradients
    o_map = (i_d * B + i_b) * H * W  # first pixel of this image and direction in the maps
    p_w = p_w + i_d * s_w_d
    for i_t in range(0, W + H - 1):
        t = W + H - 2 - i_t
        o_j = t - o_r  # [BR]
        m_r = (o_r < H) & (o_j >= 0) & (o_j < W)
        o_col = tl.where(m_r, o_j + i_d * (W - 1 - 2 * o_j), 0)
        o_left = o_col - 1 + 2 * i_d  # image columns of the scan's (r, j - 1) and (r, j + 1)
        o_right = o_col + 1 - 2 * i_d
        o_pix = o_map + o_r * W + o_col  # [BR]
        m_below = m_r & (o_r + 1 < H)
        m_right = m_r & (o_j + 1 < W)
        for k0 in range(0, HID, BN):
            o_k = k0 + tl.arange(0, BN)
            m_k = o_k < HID
            m_rk = m_r[:, None] & m_k[None, :]
            # dL/dh(r, j): from the output, and from the gates of (r + 1, j) (tap 0) and (r, j + 1) (tap 1)
            m_out = m_rk & (o_r + i_d < H)[:, None]
            p_do = (p_dout + i_b * s_do_b + o_k[None, :] * s_do_c + (o_r + i_d)[:, None] * s_do_h
                    + o_col[:, None] * s_do_w)
            b_dh = tl.load(p_do, mask=m_out, other=0.0).to(ACC)  # [BR, BN]
            for i_s in range(0, 8):
                tap = i_s // 4
                q = i_s % 4
                o_src = tl.where(tap == 0, o_pix + W, o_pix - o_col + o_right)
                m_src = tl.where(tap == 0, m_below, m_right)[:, None] & (o_n < HID)[None, :]
                p_dn = p_dg + o_src[:, None] * 4 * HID + q * HID + o_n[None, :]
                b_dn = tl.load(p_dn, mask=m_src, other=0.0)  # [BR, BK] gate q's gradients at the neighbour
                p_wt = p_w + (q * HID + o_n[:, None]) * s_w_0 + o_k[None, :] * s_w_1 + tap * s_w_2
                b_wt = tl.load(p_wt, mask=(o_n < HID)[:, None] & m_k[None, :], other=0.0)  # [BK, BN]
                b_dh += tl.dot(b_dn.to(DT), b_wt, input_precision=DOT_PRECISION)
            # the cell at (r, j), from its saved pre-activations and c
            p_pre_pix = p_pre + o_pix[:, None] * 4 * HID + o_k[None, :]
            b_o = _sigmoid(tl.load(p_pre_pix, mask=m_rk, other=0.0))
            b_f = _sigmoid(tl.load(p_pre_pix + HID, mask=m_rk, other=0.0))
            b_i = _sigmoid(tl.load(p_pre_pix + 2 * HID, mask=m_rk, other=0.0))
            b_g = _tanh(tl.load(p_pre_pix + 3 * HID, mask=m_rk, other=0.0))
            b_tc = _tanh(tl.load(p_c + o_pix[:, None] * HID + o_k[None, :], mask=m_rk, other=0.0))
            m_left = m_rk & (o_j >= 1)[:, None]
            b_cl = tl.load(p_c + (o_pix - o_col + o_left)[:, None] * HID + o_k[None, :], mask=m_left, other=0.0)
            b_dcf = tl.load(p_dcf + (o_pix - o_col + o_right)[:, None] * HID + o_k[None, :],
                            mask=m_rk & m_right[:, None], other=0.0)  # dL/dc(r, j + 1) * f(r, j + 1)
            b_dc = b_dh * b_o * (1.0 - b_tc * b_tc) + b_dcf
            p_dg_pix = p_dg + o_pix[:, None] * 4 * HID + o_k[None, :]
            DG = p_dg.dtype.element_ty
            tl.store(p_dg_pix, (b_dh * b_tc * b_o * (1.0 - b_o)).to(DG), mask=m_rk)
            tl.store(p_dg_pix + HID, (b_dc * b_cl * b_f * (1.0 - b_f)).to(DG), mask=m_rk)
            tl.store(p_dg_pix + 2 * HID, (b_dc * b_g * b_i * (1.0 - b_i)).to(DG), mask=m_rk)
            tl.store(p_dg_pix + 3 * HID, (b_dc * b_i * (1.0 - b_g * b_g)).to(DG), mask=m_rk)
            tl.store(p_dcf + o_pix[:, None] * HID + o_k[None, :], b_dc * b_f, mask=m_rk)
        tl.debug_barrier()  # step t - 1 reads the gradients this step wrote


@triton.jit
def _diagonal_bilstm_wgrad_kernel(
    p_dg, p_h, p_dw,  # dg (2, B, H, W, 4h); saved h (2, B, H, W, h); dw (2, 4h, h, 2) contiguous
    B, H, W, HID,
    BG: tl.constexpr, BK: tl.constexpr, BP: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    i_g, i_k, i_d = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    DT = p_dg.dtype.element_ty
    o_g = i_g * BG + tl.arange(0, BG)
    o_k = i_k * BK + tl.arange(0, BK)
    m_g = o_g < 4 * HID
    m_k = o_k < HID
    n_pix = B * H * W
    o_map = i_d.to(tl.int64) * n_pix
    ACC = p_h.dtype.element_ty
    b_dwa = tl.zeros([BG, BK], dtype=ACC)  # [BG, BK] tap 0 (row above)
    b_dws = tl.zeros([BG, BK], dtype=ACC)  # [BG, BK] tap 1 (same row)
    for p0 in range(0, n_pix, BP):
        o_p = p0 + tl.arange(0, BP)  # [BP] pixel (b, r, col) of this direction
        o_r = (o_p // W) % H
        o_col = o_p % W
        o_left = o_col - 1 + 2 * i_d
        m_p = o_p < n_pix
        m_above = m_p & (o_r >= 1)
        m_left = m_p & (o_left >= 0) & (o_left < W)
        b_dg = tl.load(p_dg + (o_map + o_p)[None, :] * 4 * HID + o_g[:, None],
                       mask=m_g[:, None] & m_p[None, :], other=0.0)  # [BG, BP]
        b_ha = tl.load(p_h + (o_map + o_p - W)[:, None] * HID + o_k[None, :],
                       mask=m_above[:, None] & m_k[None, :], other=0.0).to(DT)  # [BP, BK]
        b_hs = tl.load(p_h + (o_map + o_p - o_col + o_left)[:, None] * HID + o_k[None, :],
                       mask=m_left[:, None] & m_k[None, :], other=0.0).to(DT)
        b_dwa += tl.dot(b_dg, b_ha, input_precision=DOT_PRECISION)
        b_dws += tl.dot(b_dg, b_hs, input_precision=DOT_PRECISION)
    p_o = p_dw + ((i_d * 4 * HID + o_g[:, None]) * HID + o_k[None, :]) * 2
    m_gk = m_g[:, None] & m_k[None, :]
    tl.store(p_o, b_dwa.to(p_dw.dtype.element_ty), mask=m_gk)
    tl.store(p_o + 1, b_dws.to(p_dw.dtype.element_ty), mask=m_gk)


def _blocks(height: int, hidden: int) -> tuple[int, int, int]:
    """(BR, BK, BN): rows, the padded h contracted by the 2x1 conv, hidden units per chunk.

    Powers of two, at least 16 (tl.dot's minimum on GPUs). A step computes the gates of BN = 16
    hidden units at a time, so registers hold [BR, 2*BK] states and [2*BK, BN] weights, never a
    whole 2h x 4h weight. (An sm_90 compile of the forward at h = 128, BR = 32, 8 warps: 255
    registers and 96 bytes of spill with BN = 16, 952 bytes with BN = 32.)
    """
    return max(16, triton.next_power_of_2(height)), max(16, triton.next_power_of_2(hidden)), 16


def _num_warps(block_k: int) -> int:
    if triton_interpreter_enabled():
        return 1
    return 8 if block_k >= 64 else 4


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def diagonal_bilstm_forward(gates_lr, w_lr, gates_rl, w_rl):
    """Launch the forward scan. Returns (out (B, h, H, W), pre (2, B, H, W, 4h), c, h (2, B, H, W, h)).

    pre, c, h are the saved maps (channels-last; float32, or float64 for float64 inputs), direction 0
    left to right, direction 1 right to left, both in image coordinates.
    """
    batch, four_h, height, width = gates_lr.shape
    hidden = four_h // 4
    acc = _acc_dtype(gates_lr.dtype)
    pre = torch.empty((2, batch, height, width, four_h), device=gates_lr.device, dtype=acc)
    c = torch.empty((2, batch, height, width, hidden), device=gates_lr.device, dtype=acc)
    h = torch.empty((2, batch, height, width, hidden), device=gates_lr.device, dtype=acc)
    out = torch.empty((batch, height, width, hidden), device=gates_lr.device, dtype=gates_lr.dtype).permute(0, 3, 1, 2)
    if gates_rl.stride() != gates_lr.stride():  # the kernel takes one set of gate strides
        gates_lr, gates_rl = gates_lr.contiguous(), gates_rl.contiguous()
    w = torch.stack((w_lr, w_rl))  # (2, 4h, h, 2, 1), a few KB
    done = torch.zeros(batch, device=gates_lr.device, dtype=torch.int32)  # directions finished per image
    block_r, block_k, block_n = _blocks(height, hidden)
    # float32: three TF32 MMAs per product (~1e-6 relative): an sm_90 compile of this kernel with IEEE
    # float32 dots trips an assertion in LLVM's SLP vectorizer (triton 3.9); bf16/fp16/fp64 ignore it
    precision = "tf32x3" if gates_lr.dtype == torch.float32 else "ieee"
    _diagonal_bilstm_fwd_kernel[(batch, 2)](
        gates_lr, gates_rl, w, pre, c, h, out, done,
        batch, height, width, hidden,
        *gates_lr.stride(), *w.stride()[:4], *out.stride(),
        BR=block_r, BK=block_k, BN=block_n, DOT_PRECISION=precision,
        num_warps=_num_warps(block_k),
    )
    return out, pre, c, h


def diagonal_bilstm_backward(dout, pre, c, h, w_lr, w_rl):
    """Launch the reverse scan and the weight-gradient GEMMs. Returns (dgates_lr, dw_lr, dgates_rl, dw_rl)."""
    _, batch, height, width, four_h = pre.shape
    hidden = four_h // 4
    w = torch.stack((w_lr, w_rl))  # (2, 4h, h, 2, 1), a few KB
    dg = torch.empty((2, batch, height, width, four_h), device=dout.device, dtype=dout.dtype)
    dcf = torch.empty((2, batch, height, width, hidden), device=dout.device, dtype=c.dtype)  # dL/dc * f
    block_r, block_k, block_n = _blocks(height, hidden)
    _diagonal_bilstm_bwd_kernel[(batch, 2)](
        dout, pre, c, w, dg, dcf,
        batch, height, width, hidden,
        *dout.stride(), *w.stride()[:4],
        BR=block_r, BK=block_k, BN=block_n, DOT_PRECISION="ieee",
        num_warps=_num_warps(block_k),
    )
    dw = torch.empty((2, four_h, hidden, 2, 1), device=dout.device, dtype=w_lr.dtype)
    largest = 16 if triton_interpreter_enabled() else (32 if dout.dtype == torch.float64 else 64)
    block_g = min(largest, max(16, triton.next_power_of_2(four_h)))
    block_h = min(largest, max(16, triton.next_power_of_2(hidden)))
    grid = (triton.cdiv(four_h, block_g), triton.cdiv(hidden, block_h), 2)
    _diagonal_bilstm_wgrad_kernel[grid](
        dg, h, dw,
        batch, height, width, hidden,
        BG=block_g, BK=block_h, BP=64, DOT_PRECISION="ieee",
        num_warps=1 if triton_interpreter_enabled() else 4,
    )
    dgates = dg.permute(0, 1, 4, 2, 3)  # (2, B, 4h, H, W) views of the channels-last buffer
    return dgates[0], dw[0], dgates[1], dw[1]


# -- registered ops ----------------------------------------------------------------------------
# fastpixel::diagonal_bilstm_scan_forward / _backward wrap the launchers above as opaque custom ops
# (docs/architecture.md, "Kernels as PyTorch ops"); the fakes give the launchers' allocations
# (shapes, strides, dtypes) and must follow them if they change (tests/kernels/test_custom_ops.py
# runs torch.library.opcheck on both).
Tensor = torch.Tensor


@torch.library.custom_op("fastpixel::diagonal_bilstm_scan_forward", mutates_args=())
def diagonal_bilstm_scan_forward(
    gates_lr: Tensor, w_lr: Tensor, gates_rl: Tensor, w_rl: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """-> (out (B, h, H, W), pre (2, B, H, W, 4h), c, h (2, B, H, W, h)): see diagonal_bilstm_forward."""
    return diagonal_bilstm_forward(gates_lr, w_lr, gates_rl, w_rl)


@diagonal_bilstm_scan_forward.register_fake
def _(gates_lr, w_lr, gates_rl, w_rl):
    batch, four_h, height, width = gates_lr.shape
    acc = _acc_dtype(gates_lr.dtype)
    out = gates_lr.new_empty((batch, height, width, four_h // 4)).permute(0, 3, 1, 2)
    pre = gates_lr.new_empty((2, batch, height, width, four_h), dtype=acc)
    c = gates_lr.new_empty((2, batch, height, width, four_h // 4), dtype=acc)
    return out, pre, c, torch.empty_like(c)


def _one_buffer(a: Tensor, b: Tensor) -> Tensor:
    """The two directions' tensors a, b as one (2, ...) tensor: a view when b lies at a fixed offset
    from a in the same storage with a's strides (how the launcher allocates them), else a stack."""
    same = a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype
    if same and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr():
        step = b.storage_offset() - a.storage_offset()
        if step > 0:
            return a.as_strided((2, *a.shape), (step, *a.stride()), a.storage_offset())
    return torch.stack((a, b))


@torch.library.custom_op("fastpixel::diagonal_bilstm_scan_backward", mutates_args=())
def diagonal_bilstm_scan_backward(
    dout: Tensor, pre: Tensor, c: Tensor, h: Tensor, w_lr: Tensor, w_rl: Tensor
) -> tuple[Tensor, Tensor]:
    """-> (d gates (2, B, 4h, H, W), d state weights (2, 4h, h, 2, 1)), direction lr first.

    (A custom op's outputs may not alias each other, so the two directions come as one tensor each.)"""
    dg_lr, dw_lr, dg_rl, dw_rl = diagonal_bilstm_backward(dout, pre, c, h, w_lr, w_rl)
    return _one_buffer(dg_lr, dg_rl), _one_buffer(dw_lr, dw_rl)


@diagonal_bilstm_scan_backward.register_fake
def _(dout, pre, c, h, w_lr, w_rl):
    _, batch, height, width, four_h = pre.shape
    dg = dout.new_empty((2, batch, height, width, four_h)).permute(0, 1, 4, 2, 3)
    return dg, w_lr.new_empty((2, *w_lr.shape))


def _setup_context(ctx, inputs, output):
    _, w_lr, _, w_rl = inputs
    _, pre, c, h = output
    ctx.save_for_backward(pre, c, h, w_lr, w_rl)


def _backward(ctx, dout, _d_pre, _d_c, _d_h):
    pre, c, h, w_lr, w_rl = ctx.saved_tensors
    dg, dw = diagonal_bilstm_scan_backward(dout, pre, c, h, w_lr, w_rl)
    return dg[0], dw[0], dg[1], dw[1]


diagonal_bilstm_scan_forward.register_autograd(_backward, setup_context=_setup_context)


def _autocast_rule(dtype: torch.dtype, args: tuple):
    # As the reference under autocast: its einsums run in the autocast dtype and the sums with the
    # gates promote, so out comes back in promote(gates, autocast dtype); the kernel gets all four
    # inputs in the autocast dtype (saved maps stay float32).
    gates = torch.promote_types(args[0].dtype, args[2].dtype)
    out_dtype = gates if gates == torch.float64 else torch.promote_types(gates, dtype)

    def finish(result):
        out, *saved = result
        return (out.to(out_dtype) if out.dtype != out_dtype else out, *saved)

    return tuple(cast_floating(t, dtype) for t in args), finish


register_autocast_rule(diagonal_bilstm_scan_forward, _autocast_rule)


def diagonal_bilstm_scan(
    input_gates_lr: torch.Tensor,
    state_weight_lr: torch.Tensor,
    input_gates_rl: torch.Tensor,
    state_weight_rl: torch.Tensor,
) -> torch.Tensor:
    """Triton twin of :func:`fastpixel.reference.diagonal_bilstm_scan`.

    input_gates_*: (B, 4h, H, W) [o | f | i | g], bias included, any strides;
    state_weight_*: (4h, h, 2, 1) -> (B, h, H, W) = h_lr + h_rl shifted down one row.
    Runs ``fastpixel::diagonal_bilstm_scan_forward``.
    """
    return diagonal_bilstm_scan_forward(input_gates_lr, state_weight_lr, input_gates_rl, state_weight_rl)[0]
