"""Triton Diagonal BiLSTM scan: a persistent program per image and direction runs every step.

Computes :func:`fastpixel.reference.diagonal_bilstm_scan` without materialising the skewed map.
At column step ``t`` (``t = 0 .. W + H - 2``) row ``r`` of a program works on pixel
``(r, j = t - r)`` of its direction, in scan coordinates; the right-to-left direction reads and
writes image column ``W - 1 - j``. Rows with ``j`` outside ``[0, W)`` are idle: left of the image
the reference's state is exactly zero, and right of the image it is never read back (pixel (r, j)
reads only (r, j - 1) and (r - 1, j)), so unskewed the scan is a 2-D recurrence with zero borders.

Per step and direction, the 2x1 column state-to-state conv is one GEMM of the two neighbour states
``[h(r - 1, j) | h(r, j - 1)]`` (BR x 2h) with the state weight, done BN hidden units at a time: one
``tl.dot`` per chunk gives all four gates, against a weight tile packed host-side (``_pack_forward``:
[2h, 4*BN], column ``unit*4 + gate``, contiguous, so the step reads it with 16-byte loads); the
gates are split off the dot's result, the input gates (read channels-last) added, and the
nonlinearities and c/h update fused after it. The packed weights are cached on the weight
tensors' ``_version``, so an optimizer step repacks them. The state lives in the channels-last maps
that the backward needs anyway (pre-activations, c, h: float32, float64 for float64 inputs): each
step re-reads its neighbours' h and c, which this program wrote one step earlier (on a GPU an L1/L2
hit; a barrier orders the steps). Registers then hold only [BR, 2h] states and one [2h, 4*BN]
weight tile, whatever h is; the weights are streamed from L2 each step (at h = 128 they are 256 KB
per direction in bf16, more than an SM holds; docs/kernels.md).

Kernels:
  * ``_diagonal_bilstm_fwd_kernel``   grid (B, 2 directions), one launch: the two programs of an
    image scan concurrently; the second to finish (a per-image counter, ``tl.atomic_add``) runs the
    epilogue, adding the right-to-left h map shifted down one row to the left-to-right one.
  * ``_diagonal_bilstm_bwd_kernel``   grid (B, 2 directions): the reverse scan -> gate gradients;
    per chunk one dot per tap over all four gates of the neighbour (weights packed transposed,
    ``_pack_backward``).
  * ``_diagonal_bilstm_wgrad_kernel`` grid (4h x h tiles, 2 directions, pixel splits): the
    state-weight gradients as GEMMs over the B*H*W pixels from the saved h, split over pixel chunks
    (split-K) into float32 partials summed in a fixed order (deterministic, no atomics).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch.utils.weak import WeakIdKeyDictionary

from fastpixel.kernels._interpreter import triton_interpreter_enabled
from fastpixel.kernels._common import (
    acc_dtype,
    cast_floating,
    check_int32_span,
    num_sms,
    register_autocast_rule,
    sigmoid,
    tanh,
)
from fastpixel.kernels._group_sync import group_barrier, group_size, launch_scan


@triton.jit
def _fwd_direction_step(t, i_d, p_gin, p_wp, p_pre, p_c, p_h,
                        H, W, HID, NCH, ch_begin, ch_end,
                        s_g_c, s_g_h, s_g_w,
                        BR: tl.constexpr, BK: tl.constexpr, BN: tl.constexpr, DOT_PRECISION: tl.constexpr,
                        CACHE: tl.constexpr):
    # column step t of direction i_d for the hidden units of chunks [ch_begin, ch_end); p_gin points
    # at this image's gates, p_wp at this direction's packed weights, p_pre/p_c/p_h at this image and
    # direction's maps. The neighbours' h of every unit were written by this CTA's group one step
    # earlier (CACHE ".cg": read from L2 when other CTAs wrote them)
    ACC = p_c.dtype.element_ty
    DT = p_wp.dtype.element_ty
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
    b_hh = tl.load(p_h + o_src * HID + o_k[None, :], mask=m_src, other=0.0,
                   cache_modifier=CACHE).to(DT)  # [BR, 2*BK]
    o_u = tl.arange(0, BN)
    o_q = tl.arange(0, 4 * BN)  # packed weight column u*4 + gate
    p_w = p_wp + o_kk[:, None] * (4 * BN) + o_q[None, :]  # [2*BK, 4*BN], contiguous rows
    m_left_r = m_r & (o_j >= 1)
    for ch in range(ch_begin, ch_end):
        # the four gates of BN hidden units, one dot: [BR, 2*BK] x [2*BK, 4*BN], column u*4 + gate
        b_s = tl.dot(b_hh, tl.load(p_w + ch * (2 * BK * 4 * BN)), input_precision=DOT_PRECISION)
        b_even, b_odd = tl.split(tl.reshape(b_s, [BR, BN, 2, 2]))  # gates (0, 2) and (1, 3)
        b_so, b_si = tl.split(b_even)
        b_sf, b_sg = tl.split(b_odd)
        o_n = ch * BN + o_u
        m_n = o_n < HID
        m_rn = m_r[:, None] & m_n[None, :]
        p_gq = p_gin + o_n[None, :] * s_g_c + o_r[:, None] * s_g_h + o_col[:, None] * s_g_w  # channels-last: s_g_c = 1
        b_pre_o = tl.load(p_gq, mask=m_rn, other=0.0).to(ACC) + b_so.to(ACC)  # [BR, BN]
        b_pre_f = tl.load(p_gq + HID * s_g_c, mask=m_rn, other=0.0).to(ACC) + b_sf.to(ACC)
        b_pre_i = tl.load(p_gq + 2 * HID * s_g_c, mask=m_rn, other=0.0).to(ACC) + b_si.to(ACC)
        b_pre_g = tl.load(p_gq + 3 * HID * s_g_c, mask=m_rn, other=0.0).to(ACC) + b_sg.to(ACC)
        b_cl = tl.load(p_c + (o_pix - o_col + o_left)[:, None] * HID + o_n[None, :],
                       mask=m_left_r[:, None] & m_n[None, :], other=0.0)
        b_c = sigmoid(b_pre_f) * b_cl + sigmoid(b_pre_i) * tanh(b_pre_g)
        b_h = sigmoid(b_pre_o) * tanh(b_c)
        p_pre_pix = p_pre + o_pix[:, None] * 4 * HID + o_n[None, :]
        tl.store(p_pre_pix, b_pre_o, mask=m_rn)
        tl.store(p_pre_pix + HID, b_pre_f, mask=m_rn)
        tl.store(p_pre_pix + 2 * HID, b_pre_i, mask=m_rn)
        tl.store(p_pre_pix + 3 * HID, b_pre_g, mask=m_rn)
        tl.store(p_c + o_pix[:, None] * HID + o_n[None, :], b_c, mask=m_rn)
        tl.store(p_h + o_pix[:, None] * HID + o_n[None, :], b_h, mask=m_rn)


@triton.jit
def _diagonal_bilstm_fwd_kernel(
    p_gin_lr, p_gin_rl, p_wp, p_pre, p_c, p_h, p_out, p_done, p_count,  # gates (B, 4h, H, W) x 2
    # (channels-last); wp (2, NCH, 2*BK, 4*BN) packed (_pack_forward); saved maps (2, B, H, W, 4h | h | h)
    # channels-last; out (B, h, H, W); done (B, G) and count (2, B) int32 zeros
    B, H, W, HID, NCH, NCG, G,
    s_g_b, s_g_c, s_g_h, s_g_w,
    s_o_b, s_o_c, s_o_h, s_o_w,
    T_BEGIN, T_END,
    BR: tl.constexpr, BK: tl.constexpr, BN: tl.constexpr, DOT_PRECISION: tl.constexpr,
    GRID_SYNC: tl.constexpr, CACHE: tl.constexpr,
):
    # grid (B, 2 directions, G): CTA i_g of the group of (image, direction) owns the hidden units of
    # chunks [i_g * NCG, i_g * NCG + NCG) and runs steps [T_BEGIN, T_END) (_group_sync.py)
    i_b = tl.program_id(0).to(tl.int64)
    i_d = tl.program_id(1)  # 0: left to right, 1: right to left (mirrored)
    i_g = tl.program_id(2)
    if i_d == 0:
        p_gin = p_gin_lr + i_b * s_g_b
    else:
        p_gin = p_gin_rl + i_b * s_g_b
    o_lr = i_b * H * W  # first pixel of this image in direction 0 of the saved maps
    o_rl = (B + i_b) * H * W
    o_map = o_lr + i_d * (o_rl - o_lr)
    p_wd = p_wp + i_d * NCH * (2 * BK * 4 * BN)
    ch_begin = i_g * NCG
    ch_end = tl.minimum(ch_begin + NCG, NCH)
    for t in range(T_BEGIN, T_END):
        _fwd_direction_step(
            t, i_d, p_gin, p_wd, p_pre + o_map * 4 * HID, p_c + o_map * HID, p_h + o_map * HID,
            H, W, HID, NCH, ch_begin, ch_end, s_g_c, s_g_h, s_g_w,
            BR, BK, BN, DOT_PRECISION, CACHE)
        # step t + 1 reads the states this step wrote (this CTA's and its group's)
        group_barrier(p_count + i_d * B + i_b, (t + 1) * G, GRID_SYNC)
    if T_END == W + H - 1:
        # epilogue for this CTA's units, run by whichever direction finishes them second (the
        # atomic is acq_rel at GPU scope, after a CTA barrier): out[r] = h_lr[r] + h_rl[r - 1]
        n_done = tl.atomic_add(p_done + i_b * G + i_g, 1, sem="acq_rel", scope="gpu")
        if n_done == 1:
            o_r = tl.arange(0, BR)
            for ch in range(ch_begin, ch_end):
                o_n = ch * BN + tl.arange(0, BN)
                m_rn = (o_r < H)[:, None] & (o_n < HID)[None, :]
                m_up = m_rn & (o_r >= 1)[:, None]
                for col in range(0, W):
                    o_pix = o_r[:, None] * W + col  # [BR, 1]
                    b_lr = tl.load(p_h + (o_lr + o_pix) * HID + o_n[None, :], mask=m_rn, other=0.0,
                                   cache_modifier=".cg")  # [BR, BN]
                    b_rl = tl.load(p_h + (o_rl + o_pix - W) * HID + o_n[None, :], mask=m_up, other=0.0,
                                   cache_modifier=".cg")
                    p_o = p_out + i_b * s_o_b + o_n[None, :] * s_o_c + o_r[:, None] * s_o_h + col * s_o_w
                    tl.store(p_o, (b_lr + b_rl).to(p_out.dtype.element_ty), mask=m_rn)


@triton.jit
def _diagonal_bilstm_bwd_kernel(
    p_dout, p_pre, p_c, p_wt, p_dg, p_dcf, p_count,  # dout (B, h, H, W); saved maps; wt (2, 2, NCH, BN, 4*BK)
    # packed transposed weights (_pack_backward); dg (2, B, H, W, 4h), dcf (2, B, H, W, h) maps;
    # count (2, B) int32 zeros
    B, H, W, HID, NCH, NCG, G,
    s_do_b, s_do_c, s_do_h, s_do_w,
    T_BEGIN, T_END,
    BR: tl.constexpr, BK: tl.constexpr, BN: tl.constexpr, KS: tl.constexpr, DOT_PRECISION: tl.constexpr,
    GRID_SYNC: tl.constexpr, CACHE: tl.constexpr,
):
    # grid (B, 2 directions, G) as the forward; reverse step i_t is column step W + H - 2 - i_t
    i_b = tl.program_id(0).to(tl.int64)
    i_d = tl.program_id(1)  # 0: left to right, 1: right to left (mirrored, output shifted down a row)
    i_g = tl.program_id(2)
    ACC = p_c.dtype.element_ty
    DT = p_wt.dtype.element_ty
    o_r = tl.arange(0, BR)
    o_u = tl.arange(0, BN)
    o_q = tl.arange(0, KS)  # KS rows gate*BK + k of a neighbour's (transposed) gate gradients
    o_map = (i_d * B + i_b) * H * W  # first pixel of this image and direction in the maps
    TILE: tl.constexpr = 4 * BK * BN
    p_w = p_wt + i_d * 2 * NCH * TILE + o_u[:, None] * (4 * BK) + o_q[None, :]  # [BN, KS] tap 0, chunk 0
    ch_begin = i_g * NCG
    ch_end = tl.minimum(ch_begin + NCG, NCH)
    for i_t in range(T_BEGIN, T_END):
        t = W + H - 2 - i_t
        o_j = t - o_r  # [BR]
        m_r = (o_r < H) & (o_j >= 0) & (o_j < W)
        o_col = tl.where(m_r, o_j + i_d * (W - 1 - 2 * o_j), 0)
        o_left = o_col - 1 + 2 * i_d  # image columns of the scan's (r, j - 1) and (r, j + 1)
        o_right = o_col + 1 - 2 * i_d
        o_pix = o_map + o_r * W + o_col  # [BR]
        m_below = m_r & (o_r + 1 < H)
        m_right = m_r & (o_j + 1 < W)
        for ch in range(ch_begin, ch_end):
            o_k = ch * BN + o_u
            m_k = o_k < HID
            m_rk = m_r[:, None] & m_k[None, :]
            # dL/dh(r, j): from the output, and from all four gates' gradients at the two neighbours
            # that read (r, j), tap 0 = (r + 1, j), tap 1 = (r, j + 1) (written one step earlier by
            # this CTA's group): per tap one dot, transposed ([BN, BR]) so that each warp computes
            # its own MMA tiles
            b_dht = tl.zeros([BN, BR], dtype=ACC)
            for q0 in tl.static_range(0, 4 * BK, KS):  # KS of the 4*BK reduction rows per dot
                o_qg = (q0 + o_q) // BK
                o_qk = (q0 + o_q) % BK
                m_q = o_qk < HID
                o_gq = (o_qg * HID + o_qk)[:, None]  # [KS, 1]
                b_da = tl.load(p_dg + (o_pix + W)[None, :] * 4 * HID + o_gq,
                               mask=m_q[:, None] & m_below[None, :], other=0.0, cache_modifier=CACHE).to(DT)
                b_ds = tl.load(p_dg + (o_pix - o_col + o_right)[None, :] * 4 * HID + o_gq,
                               mask=m_q[:, None] & m_right[None, :], other=0.0, cache_modifier=CACHE).to(DT)
                p_wq = p_w + q0
                b_dht += tl.dot(tl.load(p_wq + ch * TILE), b_da, input_precision=DOT_PRECISION).to(ACC)
                b_dht += tl.dot(tl.load(p_wq + (NCH + ch) * TILE), b_ds, input_precision=DOT_PRECISION).to(ACC)
            m_out = m_rk & (o_r + i_d < H)[:, None]
            p_do = (p_dout + i_b * s_do_b + o_k[None, :] * s_do_c + (o_r + i_d)[:, None] * s_do_h
                    + o_col[:, None] * s_do_w)
            b_dh = tl.load(p_do, mask=m_out, other=0.0).to(ACC) + tl.trans(b_dht).to(ACC)  # [BR, BN]
            # the cell at (r, j), from its saved pre-activations and c
            p_pre_pix = p_pre + o_pix[:, None] * 4 * HID + o_k[None, :]
            b_o = sigmoid(tl.load(p_pre_pix, mask=m_rk, other=0.0))
            b_f = sigmoid(tl.load(p_pre_pix + HID, mask=m_rk, other=0.0))
            b_i = sigmoid(tl.load(p_pre_pix + 2 * HID, mask=m_rk, other=0.0))
            b_g = tanh(tl.load(p_pre_pix + 3 * HID, mask=m_rk, other=0.0))
            b_tc = tanh(tl.load(p_c + o_pix[:, None] * HID + o_k[None, :], mask=m_rk, other=0.0))
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
        # step t - 1 reads the gradients this step wrote (this CTA's and its group's)
        group_barrier(p_count + i_d * B + i_b, (i_t + 1) * G, GRID_SYNC)


@triton.jit
def _diagonal_bilstm_wgrad_kernel(
    p_dg, p_h, p_dwp,  # dg (2, B, H, W, 4h); saved h (2, B, H, W, h); dwp (SPLIT, 2, 4h, h, 2) partials
    B, H, W, HID, CHUNK,
    BG: tl.constexpr, BK: tl.constexpr, BP: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    # partial[s, d, g, k, tap] = sum over the pixels p of chunk s: dg[d, p, g] * h[d, neighbour_tap(p), k]
    i_gk, i_d, i_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    n_k = tl.cdiv(HID, BK)
    i_g, i_k = i_gk // n_k, i_gk % n_k
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
    p_start = i_s * CHUNK
    for p0 in range(p_start, p_start + CHUNK, BP):
        o_p = p0 + tl.arange(0, BP)  # [BP] pixel (b, r, col) of this direction
        o_r = (o_p // W) % H
        o_col = o_p % W
        o_left = o_col - 1 + 2 * i_d
        m_p = (o_p < n_pix) & (o_p < p_start + CHUNK)
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
    p_o = p_dwp + ((((i_s * 2 + i_d) * 4 * HID).to(tl.int64) + o_g[:, None]) * HID + o_k[None, :]) * 2
    m_gk = m_g[:, None] & m_k[None, :]
    tl.store(p_o, b_dwa, mask=m_gk)
    tl.store(p_o + 1, b_dws, mask=m_gk)


def _blocks(height: int, hidden: int) -> tuple[int, int, int]:
    """(BR, BK, BN): rows, the padded h contracted by the 2x1 conv, hidden units per chunk.

    Powers of two, at least 16 (tl.dot's minimum on GPUs). A step computes the four gates of BN = 16
    hidden units per dot, so registers hold [BR, 2*BK] states and one [2*BK, 4*BN] packed weight
    tile, never a whole 2h x 4h weight (docs/kernels.md, "The scans as compiled for sm_90").
    """
    return max(16, triton.next_power_of_2(height)), max(16, triton.next_power_of_2(hidden)), 16


def _reduction_step(block_k: int, dtype: torch.dtype) -> int:
    """KS, the backward's reduction rows (of 4*BK: four gates x BK units) per dot: two gates in
    16-bit (tensor cores), 32 rows on the FMA path of float32/float64 (whose dot operands are held
    in registers: larger steps spill in the sm_90 compile)."""
    return 2 * block_k if dtype.itemsize == 2 else min(32, 4 * block_k)


def _num_warps(block_k: int) -> int:
    if triton_interpreter_enabled():
        return 1
    return 8 if block_k >= 64 else 4


# packed weight layouts by weight tensor (dropped with it): {kind: (version key, packed)}
_PACKED: WeakIdKeyDictionary = WeakIdKeyDictionary()


def _version_key(*tensors: torch.Tensor):
    """(storage, version) of each tensor, or None where the tensor keeps no version counter
    (inference tensors) or a CUDA graph is being captured (the packing must then be captured too)."""
    if any(t.is_cuda for t in tensors) and torch.cuda.is_current_stream_capturing():
        return None
    try:
        return tuple((t.data_ptr(), t._version, t.shape, t.dtype, t.device) for t in tensors)
    except RuntimeError:  # inference tensors have no version counter
        return None


def _cached(kind: str, w_lr: torch.Tensor, w_rl: torch.Tensor, blocks: tuple, pack):
    """pack(w_lr, w_rl), cached on w_lr until either weight changes (an optimizer step bumps _version)."""
    key = _version_key(w_lr, w_rl)
    with torch.no_grad():
        if key is None or w_lr.device.type == "meta":
            return pack()
        key = (kind, blocks, key)
        cache = _PACKED.get(w_lr, {})
        if cache.get(kind, (None,))[0] == key:
            return cache[kind][1]
        packed = pack()
    _PACKED[w_lr] = {**cache, kind: (key, packed)}
    return packed


def _pack_forward(w_lr: torch.Tensor, w_rl: torch.Tensor, block_k: int, block_n: int) -> torch.Tensor:
    """State weights (4h, h, 2, 1) x 2 -> (2, NCH, 2*BK, 4*BN), NCH = ceil(h / BN): the tile of chunk
    ``ch`` is contiguous, row ``tap*BK + k``, column ``u*4 + gate`` = w[gate*h + ch*BN + u, k, tap]
    (zero padded), so a step reads it with 16-byte loads and one dot gives all four gates."""
    four_h, hid = w_lr.shape[0], w_lr.shape[1]
    nch = triton.cdiv(hid, block_n)
    w = torch.stack((w_lr, w_rl))[..., 0].view(2, 4, hid, hid, 2)  # [d, gate, u, k, tap]
    wp = torch.zeros((2, nch * block_n, 4, 2, block_k), device=w.device, dtype=w.dtype)  # [d, u, gate, tap, k]
    wp[:, :hid, :, :, :hid] = w.permute(0, 2, 1, 4, 3)
    return wp.view(2, nch, block_n, 4, 2, block_k).permute(0, 1, 4, 5, 2, 3).contiguous()


def _pack_backward(w_lr: torch.Tensor, w_rl: torch.Tensor, block_k: int, block_n: int) -> torch.Tensor:
    """State weights (4h, h, 2, 1) x 2 -> (2, 2 taps, NCH, BN, 4*BK): the transposed conv's operand,
    tile (d, tap, ch) contiguous, row ``u``, column ``gate*BK + k`` = w[gate*h + k, ch*BN + u, tap]."""
    hid = w_lr.shape[1]
    nch = triton.cdiv(hid, block_n)
    w = torch.stack((w_lr, w_rl))[..., 0].view(2, 4, hid, hid, 2)  # [d, gate, k, u, tap]
    wt = torch.zeros((2, 2, nch * block_n, 4, block_k), device=w.device, dtype=w.dtype)  # [d, tap, u, gate, k]
    wt[:, :, :hid, :, :hid] = w.permute(0, 4, 3, 1, 2)
    return wt.view(2, 2, nch, block_n, 4 * block_k).contiguous()


def _channels_last(gates: torch.Tensor) -> torch.Tensor:
    """Gates with unit stride along the 4h channels (a copy only if they are not already)."""
    return gates if gates.stride(1) == 1 else gates.contiguous(memory_format=torch.channels_last)


def diagonal_bilstm_forward(gates_lr, w_lr, gates_rl, w_rl, *, ctas_per_scan: int | None = None,
                            num_stages: int | None = None):
    """Launch the forward scan. Returns (out (B, h, H, W), pre (2, B, H, W, 4h), c, h (2, B, H, W, h)).

    pre, c, h are the saved maps (channels-last; float32, or float64 for float64 inputs), direction 0
    left to right, direction 1 right to left, both in image coordinates. ``ctas_per_scan`` (tests)
    forces G, the CTAs sharing one (image, direction); default: _group_sync.group_size.
    ``num_stages`` (GPU tests) overrides triton's software-pipelining depth of the step's chunk loop.
    """
    batch, four_h, height, width = gates_lr.shape
    hidden = four_h // 4
    acc = acc_dtype(gates_lr.dtype)
    device = gates_lr.device
    pre = torch.empty((2, batch, height, width, four_h), device=device, dtype=acc)
    c = torch.empty((2, batch, height, width, hidden), device=device, dtype=acc)
    h = torch.empty((2, batch, height, width, hidden), device=device, dtype=acc)
    out = torch.empty((batch, height, width, hidden), device=device, dtype=gates_lr.dtype).permute(0, 3, 1, 2)
    gates_lr, gates_rl = _channels_last(gates_lr), _channels_last(gates_rl)
    if gates_rl.stride() != gates_lr.stride():  # the kernel takes one set of gate strides
        gates_lr, gates_rl = gates_lr.contiguous(), gates_rl.contiguous()
    # int32 offsets inside an image (of the gates and of the saved maps, which span as much), int64 images
    check_int32_span("diagonal_bilstm_scan", gates_lr)
    check_int32_span("diagonal_bilstm_scan", gates_rl)
    block_r, block_k, block_n = _blocks(height, hidden)
    wp = _cached("fwd", w_lr, w_rl, (block_k, block_n), lambda: _pack_forward(w_lr, w_rl, block_k, block_n))
    chunks = triton.cdiv(hidden, block_n)
    group = group_size(2 * batch, chunks, device, ctas_per_scan)
    done = torch.zeros((batch, group), device=device, dtype=torch.int32)  # directions finished per unit slice
    count = torch.zeros((2, batch), device=device, dtype=torch.int32)  # group barrier arrivals
    # float32: three TF32 MMAs per product (~1e-6 relative): an sm_90 compile of this kernel with IEEE
    # float32 dots trips an assertion in LLVM's SLP vectorizer (triton 3.9); bf16/fp16/fp64 ignore it
    precision = "tf32x3" if gates_lr.dtype == torch.float32 else "ieee"
    if num_stages is None and gates_lr.dtype == torch.float64:
        # float64 operands are 4x bf16's: at h=128 (BK=128) triton's default 3 stages need 335,872 B of
        # shared memory per CTA (sm_90 compile, triton 3.6 and 3.9), more than an H100/H200 allows
        # (232,448); 2 stages need 204,800. (launch_scan still checks the compiled kernel on the GPU.)
        num_stages = 2
    def build(g):  # grid and arguments for g CTAs per (image, direction)
        return (batch, 2, g), (gates_lr, gates_rl, wp, pre, c, h, out, done, count,
                               batch, height, width, hidden, chunks, triton.cdiv(chunks, g), g,
                               *gates_lr.stride(), *out.stride())

    launch_scan(
        _diagonal_bilstm_fwd_kernel, width + height - 1, build,
        dict(BR=block_r, BK=block_k, BN=block_n, DOT_PRECISION=precision, num_warps=_num_warps(block_k),
             **({} if num_stages is None else {"num_stages": num_stages})),
        group, device, "diagonal_bilstm_scan",
    )
    return out, pre, c, h


def diagonal_bilstm_backward(dout, pre, c, h, w_lr, w_rl, *, ctas_per_scan: int | None = None):
    """Launch the reverse scan and the weight-gradient GEMMs. Returns (dgates_lr, dw_lr, dgates_rl, dw_rl)."""
    _, batch, height, width, four_h = pre.shape
    hidden = four_h // 4
    check_int32_span("diagonal_bilstm_scan", dout)
    device = dout.device
    dg = torch.empty((2, batch, height, width, four_h), device=device, dtype=dout.dtype)
    dcf = torch.empty((2, batch, height, width, hidden), device=device, dtype=c.dtype)  # dL/dc * f
    block_r, block_k, block_n = _blocks(height, hidden)
    wt = _cached("bwd", w_lr, w_rl, (block_k, block_n), lambda: _pack_backward(w_lr, w_rl, block_k, block_n))
    chunks = triton.cdiv(hidden, block_n)
    group = group_size(2 * batch, chunks, device, ctas_per_scan)
    count = torch.zeros((2, batch), device=device, dtype=torch.int32)  # group barrier arrivals
    # the transposed dh dots are [BN, KS] x [KS, BR] = [16, 32]: 4 warps, each with its own m16n8
    # tiles; KS = two gates per dot in bf16 and no software pipelining (sm_90 compile, h = 128, G = 4:
    # 184 registers, no spill, 40 KB shared; four gates per dot or 2 stages: 251-255 registers, or
    # spills); float32: 32 rows per dot, 198 registers, no spill
    def build(g):  # grid and arguments for g CTAs per (image, direction)
        return (batch, 2, g), (dout, pre, c, wt, dg, dcf, count,
                               batch, height, width, hidden, chunks, triton.cdiv(chunks, g), g,
                               *dout.stride())

    launch_scan(
        _diagonal_bilstm_bwd_kernel, width + height - 1, build,
        dict(BR=block_r, BK=block_k, BN=block_n, KS=_reduction_step(block_k, dout.dtype), DOT_PRECISION="ieee",
             num_warps=1 if triton_interpreter_enabled() else 4, num_stages=1),
        group, device, "diagonal_bilstm_scan",
    )
    dw = _state_weight_grad(dg, h, w_lr.dtype)
    dgates = dg.permute(0, 1, 4, 2, 3)  # (2, B, 4h, H, W) views of the channels-last buffer
    return dgates[0], dw[0], dgates[1], dw[1]


def _state_weight_grad(dg: torch.Tensor, h: torch.Tensor, dtype: torch.dtype, *, split: int | None = None):
    """d state weights (2, 4h, h, 2, 1) from the gate gradients dg (2, B, H, W, 4h) and the saved h
    (2, B, H, W, h): per direction and tap a GEMM over all B*H*W pixels, split over ``split`` pixel
    chunks (split-K; default: enough CTAs to fill a GPU, 1 under the interpreter) whose float32
    partials are summed in a fixed order (deterministic; no atomics)."""
    _, batch, height, width, four_h = dg.shape
    hidden = four_h // 4
    interp = triton_interpreter_enabled()
    largest = 16 if interp else (32 if dg.dtype == torch.float64 else 64)
    block_g = min(largest, max(16, triton.next_power_of_2(four_h)))
    block_h = min(largest, max(16, triton.next_power_of_2(hidden)))
    block_p = 16 if interp else 64
    n_pix = batch * height * width
    tiles = triton.cdiv(four_h, block_g) * triton.cdiv(hidden, block_h) * 2
    if split is None:  # >= 2 CTAs per SM, each reducing at least 4 pixel blocks
        fill = triton.cdiv(2 * num_sms(dg.device), tiles)
        split = 1 if interp else max(1, min(triton.cdiv(n_pix, 4 * block_p), fill))
    chunk = triton.cdiv(triton.cdiv(n_pix, split), block_p) * block_p
    split = triton.cdiv(n_pix, chunk)
    partial = torch.empty((split, 2, four_h, hidden, 2), device=dg.device, dtype=acc_dtype(dg.dtype))
    _diagonal_bilstm_wgrad_kernel[(tiles // 2, 2, split)](
        dg, h, partial,
        batch, height, width, hidden, chunk,
        BG=block_g, BK=block_h, BP=block_p, DOT_PRECISION="ieee",
        num_warps=1 if interp else 4,
    )
    # fixed-order sum of the split-K slices (deterministic; no atomics)
    return partial.sum(0).to(dtype).view(2, four_h, hidden, 2, 1)


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
    acc = acc_dtype(gates_lr.dtype)
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
