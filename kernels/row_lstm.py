"""Row LSTM scan in Triton: one persistent launch over the H rows, Triton backward.

Computes exactly :func:`fastpixel.reference.row_lstm_scan`:

    gates_i = input_gates[:, :, i] + conv1d(h_{i-1}, state_weight[:, :, 0], padding=1)   [o|f|i|g]
    c_i = sigmoid(f) c_{i-1} + sigmoid(i) tanh(g);   h_i = sigmoid(o) tanh(c_i);   h_{-1} = c_{-1} = 0

Design (see docs/kernels.md, "Row LSTM scan"). The register variants have grid (B,): one program
owns whole rows (all W columns, all h units) of one image, so the 1x3 conv's column halo never
leaves the program. The tiled variant has grid (B, G): the G CTAs of an image's group own whole
rows of a share of the hidden units each and exchange every row's h through L2 behind a
release/acquire group barrier (``_group_sync.py``; G = 1, no atomics, when the GPU cannot hold
them all at once). Every kernel loops over the H rows.

* Register variants (``resident`` for small h and W; ``registers`` only when forced): h and c stay
  in registers. The conv is, per gate, three ``tl.dot`` of [h_{i-1} at j-1 | j | j+1] (BW, BH) with
  the (BH, BH) weight slices; the column shifts of h are themselves ``tl.dot`` with 0/1 shift matrices (exact),
  so h never round-trips through memory. ``resident`` loads the 12 weight slices once before the
  loop, ``registers`` re-reads them every row (L1/L2 hits).
* Tiled variant (any h and W, e.g. the paper's h=128): per row, column tile (BJ) and chunk of BU
  hidden units, the 1x3 conv of all four gates is one ``tl.dot`` per tap (and BK-chunk of h_{i-1})
  against weights packed host-side (``_pack_forward``: contiguous [BK, 4*BU] tiles, column
  ``unit*4 + gate``, read with 16-byte loads; cached on the weight's ``_version`` so optimizer steps
  repack); h_{i-1} is re-read from a channels-last copy of h (B, H, W, h) that the kernel writes
  beside the (B, h, H, W) output, so the three shifted taps stay 16-byte aligned; c_{i-1} from the
  c output. A barrier of the CTA group (``_group_sync.group_barrier``) ends each row and ``num_stages=1`` keeps loads
  from being pipelined across it.
* Saved for the backward: h (the output) and c (float32); the gate activations are recomputed.
* Backward scan, rows in reverse (same variants): recomputes the gate pre-activations of row i from
  the saved h_{i-1} (off the dependency chain), forms d gates (written as d input_gates), and
  carries dc and the recurrent dh_{i-1} = conv1d^T(d gates_i) (three ``tl.dot`` per gate with the
  transposed weights, plus two shift-matrix dots in the register variants). The tiled variant
  computes it transposed, [BU, BJ], one dot per tap over all four gates against ``_pack_backward``
  tiles, from row i+1's d gates kept channels-last in a double-buffered (2, B, W, 4h) scratch
  (with the carried dc in a (2, B, W, h) one).
* Weight gradient: a separate GEMM over all B*H*W pixels after the scan,
  d_state_weight[:, :, 0, k] = sum_pixels d gates (x) h_{i-1}[column j+k-1] (h read channels-last),
  split over blocks of pixels (split-K) into a float32 partial buffer whose SPLIT slices are then summed (a fixed-order,
  deterministic torch.sum); no atomics.

Math is float32 (float64 for float64 inputs); bf16/fp16 inputs feed the dots in their own dtype
with float32 accumulation and a float32 state.
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
    dot_precision,
    num_sms,
    register_autocast_rule,
    sigmoid,
    tanh,
    tl_dtype,
)
from fastpixel.kernels._group_sync import group_barrier, group_size, launch_scan

# The state stays in registers (and the 12 (BH, BH) weight slices are loaded once, before the row
# loop) up to this many weight bytes and row width; beyond, the tiled variant runs. The sm_90
# compile (triton 3.9, 4 warps, BW=32) spills at most 160 B per thread at BH=32 bf16 but
# 3,840 / 10,864 B (forward / backward) at BH=64 bf16 (see docs/kernels.md).
_RESIDENT_BYTES = 24 * 1024
_RESIDENT_MAX_WIDTH = 32


@triton.jit
def _load_w(p_w, o_v, o_u, m_vu, gate, k, HID, s_w_o, s_w_i, s_w_k):
    # [BH(v), BH(u)] = state_weight[gate*HID + u, v, 0, k]
    p_w_blk = p_w + (gate * HID + o_u[None, :]) * s_w_o + o_v[:, None] * s_w_i + k * s_w_k
    return tl.load(p_w_blk, mask=m_vu, other=0.0)


@triton.jit
def _load_w3(p_w, o_v, o_u, m_vu, gate, HID, s_w_o, s_w_i, s_w_k):
    b_w0 = _load_w(p_w, o_v, o_u, m_vu, gate, 0, HID, s_w_o, s_w_i, s_w_k)
    b_w1 = _load_w(p_w, o_v, o_u, m_vu, gate, 1, HID, s_w_o, s_w_i, s_w_k)
    b_w2 = _load_w(p_w, o_v, o_u, m_vu, gate, 2, HID, s_w_o, s_w_i, s_w_k)
    return b_w0, b_w1, b_w2


@triton.jit
def _conv3(b_hl, b_hm, b_hr, b_w0, b_w1, b_w2, PRECISION: tl.constexpr):
    # [BW, BH]: h_{i-1}[j-1] W0 + h_{i-1}[j] W1 + h_{i-1}[j+1] W2
    b_a = tl.dot(b_hl, b_w0, input_precision=PRECISION)
    b_a += tl.dot(b_hm, b_w1, input_precision=PRECISION)
    b_a += tl.dot(b_hr, b_w2, input_precision=PRECISION)
    return b_a


@triton.jit
def _conv3_t(b_dao, b_daf, b_dai, b_dag, b_wo, b_wf, b_wi, b_wg, PRECISION: tl.constexpr):
    # [BW, BH(v)]: sum over gates of d gates_X (BW, BH(u)) @ W_kX^T (BH(u), BH(v))
    b_q = tl.dot(b_dao, tl.trans(b_wo), input_precision=PRECISION)
    b_q += tl.dot(b_daf, tl.trans(b_wf), input_precision=PRECISION)
    b_q += tl.dot(b_dai, tl.trans(b_wi), input_precision=PRECISION)
    b_q += tl.dot(b_dag, tl.trans(b_wg), input_precision=PRECISION)
    return b_q


@triton.jit
def _row_lstm_fwd_kernel(
    p_x, p_w, p_h, p_c,
    H, W, HID,
    s_x_b, s_x_c, s_x_h, s_x_w,
    s_w_o, s_w_i, s_w_k,
    s_h_b, s_h_c, s_h_h, s_h_w,
    BW: tl.constexpr, BH: tl.constexpr, RESIDENT: tl.constexpr,
    ACC: tl.constexpr, PRECISION: tl.constexpr,
):
    i_b = tl.program_id(0).to(tl.int64)
    DOT = p_w.dtype.element_ty
    o_j = tl.arange(0, BW)
    o_u = tl.arange(0, BH)
    m_j = o_j < W
    m_u = o_u < HID
    m_ju = m_j[:, None] & m_u[None, :]  # [BW, BH]
    m_vu = m_u[:, None] & m_u[None, :]  # [BH, BH]
    # row j of b_sl picks column j-1, of b_sr column j+1 (zero past either end)
    b_sl = (o_j[None, :] == o_j[:, None] - 1).to(DOT)  # [BW, BW]
    b_sr = (o_j[None, :] == o_j[:, None] + 1).to(DOT)  # [BW, BW]

    # this image's planes (int64 image offset; offsets inside an image are int32: check_int32_span)
    p_x += i_b * s_x_b
    p_h += i_b * s_h_b
    p_c += i_b * s_h_b  # c has h's strides
    o_x = o_j[:, None] * s_x_w + o_u[None, :] * s_x_c  # [BW, BH]
    o_h = o_j[:, None] * s_h_w + o_u[None, :] * s_h_c  # [BW, BH]
    if RESIDENT:
        b_w0o, b_w1o, b_w2o = _load_w3(p_w, o_u, o_u, m_vu, 0, HID, s_w_o, s_w_i, s_w_k)
        b_w0f, b_w1f, b_w2f = _load_w3(p_w, o_u, o_u, m_vu, 1, HID, s_w_o, s_w_i, s_w_k)
        b_w0i, b_w1i, b_w2i = _load_w3(p_w, o_u, o_u, m_vu, 2, HID, s_w_o, s_w_i, s_w_k)
        b_w0g, b_w1g, b_w2g = _load_w3(p_w, o_u, o_u, m_vu, 3, HID, s_w_o, s_w_i, s_w_k)

    b_h = tl.zeros([BW, BH], dtype=ACC)
    b_c = tl.zeros([BW, BH], dtype=ACC)
    for i in range(0, H):
        if not RESIDENT:
            b_w0o, b_w1o, b_w2o = _load_w3(p_w, o_u, o_u, m_vu, 0, HID, s_w_o, s_w_i, s_w_k)
            b_w0f, b_w1f, b_w2f = _load_w3(p_w, o_u, o_u, m_vu, 1, HID, s_w_o, s_w_i, s_w_k)
            b_w0i, b_w1i, b_w2i = _load_w3(p_w, o_u, o_u, m_vu, 2, HID, s_w_o, s_w_i, s_w_k)
            b_w0g, b_w1g, b_w2g = _load_w3(p_w, o_u, o_u, m_vu, 3, HID, s_w_o, s_w_i, s_w_k)
        b_hm = b_h.to(DOT)  # [BW, BH] h_{i-1} at column j
        b_hl = tl.dot(b_sl, b_hm, input_precision=PRECISION).to(DOT)  # at j-1 (exact: one 1.0 per row)
        b_hr = tl.dot(b_sr, b_hm, input_precision=PRECISION).to(DOT)  # at j+1

        p_x_row = p_x + o_x + i * s_x_h
        b_ao = tl.load(p_x_row + 0 * HID * s_x_c, mask=m_ju, other=0.0).to(ACC)
        b_af = tl.load(p_x_row + 1 * HID * s_x_c, mask=m_ju, other=0.0).to(ACC)
        b_ai = tl.load(p_x_row + 2 * HID * s_x_c, mask=m_ju, other=0.0).to(ACC)
        b_ag = tl.load(p_x_row + 3 * HID * s_x_c, mask=m_ju, other=0.0).to(ACC)
        b_ao += _conv3(b_hl, b_hm, b_hr, b_w0o, b_w1o, b_w2o, PRECISION).to(ACC)
        b_af += _conv3(b_hl, b_hm, b_hr, b_w0f, b_w1f, b_w2f, PRECISION).to(ACC)
        b_ai += _conv3(b_hl, b_hm, b_hr, b_w0i, b_w1i, b_w2i, PRECISION).to(ACC)
        b_ag += _conv3(b_hl, b_hm, b_hr, b_w0g, b_w1g, b_w2g, PRECISION).to(ACC)

        b_c = sigmoid(b_af) * b_c + sigmoid(b_ai) * tanh(b_ag)
        # padded columns/units must keep h = 0 (they feed column W-1's conv): c = 0 gives h = 0 there
        b_c = tl.where(m_ju, b_c, 0.0)
        b_h = sigmoid(b_ao) * tanh(b_c)
        tl.store(p_h + o_h + i * s_h_h, b_h.to(p_h.dtype.element_ty), mask=m_ju)
        tl.store(p_c + o_h + i * s_h_h, b_c.to(p_c.dtype.element_ty), mask=m_ju)


@triton.jit
def _row_lstm_bwd_kernel(
    p_x, p_w, p_h, p_c, p_dh, p_dx,
    H, W, HID,
    s_x_b, s_x_c, s_x_h, s_x_w,
    s_w_o, s_w_i, s_w_k,
    s_h_b, s_h_c, s_h_h, s_h_w,
    s_dh_b, s_dh_c, s_dh_h, s_dh_w,
    s_dx_b, s_dx_c, s_dx_h, s_dx_w,
    BW: tl.constexpr, BH: tl.constexpr, RESIDENT: tl.constexpr,
    ACC: tl.constexpr, PRECISION: tl.constexpr,
):
    i_b = tl.program_id(0).to(tl.int64)
    DOT = p_w.dtype.element_ty
    o_j = tl.arange(0, BW)
    o_u = tl.arange(0, BH)
    m_j = o_j < W
    m_u = o_u < HID
    m_ju = m_j[:, None] & m_u[None, :]  # [BW, BH]
    m_vu = m_u[:, None] & m_u[None, :]  # [BH, BH]
    m_jl = ((o_j >= 1) & (o_j - 1 < W))[:, None] & m_u[None, :]  # [BW, BH] column j-1 exists
    m_jr = (o_j + 1 < W)[:, None] & m_u[None, :]  # [BW, BH] column j+1 exists
    b_sl = (o_j[None, :] == o_j[:, None] - 1).to(ACC)  # [BW, BW]
    b_sr = (o_j[None, :] == o_j[:, None] + 1).to(ACC)  # [BW, BW]

    # this image's planes (int64 image offset; offsets inside an image are int32: check_int32_span)
    p_x += i_b * s_x_b
    p_h += i_b * s_h_b
    p_c += i_b * s_h_b  # c has h's strides
    p_dh += i_b * s_dh_b
    p_dx += i_b * s_dx_b
    o_x = o_j[:, None] * s_x_w + o_u[None, :] * s_x_c  # [BW, BH]
    o_h = o_j[:, None] * s_h_w + o_u[None, :] * s_h_c  # [BW, BH]
    o_dh = o_j[:, None] * s_dh_w + o_u[None, :] * s_dh_c  # [BW, BH]
    o_dx = o_j[:, None] * s_dx_w + o_u[None, :] * s_dx_c  # [BW, BH]
    if RESIDENT:
        b_w0o, b_w1o, b_w2o = _load_w3(p_w, o_u, o_u, m_vu, 0, HID, s_w_o, s_w_i, s_w_k)
        b_w0f, b_w1f, b_w2f = _load_w3(p_w, o_u, o_u, m_vu, 1, HID, s_w_o, s_w_i, s_w_k)
        b_w0i, b_w1i, b_w2i = _load_w3(p_w, o_u, o_u, m_vu, 2, HID, s_w_o, s_w_i, s_w_k)
        b_w0g, b_w1g, b_w2g = _load_w3(p_w, o_u, o_u, m_vu, 3, HID, s_w_o, s_w_i, s_w_k)

    b_dh_rec = tl.zeros([BW, BH], dtype=ACC)  # conv1d^T of row i+1's d gates
    b_dc = tl.zeros([BW, BH], dtype=ACC)  # dc_i carried from row i+1 (times f_{i+1})
    for t in range(0, H):
        i = H - 1 - t
        if not RESIDENT:
            b_w0o, b_w1o, b_w2o = _load_w3(p_w, o_u, o_u, m_vu, 0, HID, s_w_o, s_w_i, s_w_k)
            b_w0f, b_w1f, b_w2f = _load_w3(p_w, o_u, o_u, m_vu, 1, HID, s_w_o, s_w_i, s_w_k)
            b_w0i, b_w1i, b_w2i = _load_w3(p_w, o_u, o_u, m_vu, 2, HID, s_w_o, s_w_i, s_w_k)
            b_w0g, b_w1g, b_w2g = _load_w3(p_w, o_u, o_u, m_vu, 3, HID, s_w_o, s_w_i, s_w_k)
        # recompute the pre-activations of row i from the saved h_{i-1} (independent of the chain)
        m_prev = tl.full([BW, BH], i, dtype=tl.int32) > 0  # [BW, BH] row i-1 exists
        p_h_prev = p_h + o_h + (i - 1) * s_h_h
        b_hm = tl.load(p_h_prev, mask=m_ju & m_prev, other=0.0).to(DOT)  # [BW, BH]
        b_hl = tl.load(p_h_prev - s_h_w, mask=m_jl & m_prev, other=0.0).to(DOT)
        b_hr = tl.load(p_h_prev + s_h_w, mask=m_jr & m_prev, other=0.0).to(DOT)
        p_x_row = p_x + o_x + i * s_x_h
        b_ao = tl.load(p_x_row + 0 * HID * s_x_c, mask=m_ju, other=0.0).to(ACC)
        b_af = tl.load(p_x_row + 1 * HID * s_x_c, mask=m_ju, other=0.0).to(ACC)
        b_ai = tl.load(p_x_row + 2 * HID * s_x_c, mask=m_ju, other=0.0).to(ACC)
        b_ag = tl.load(p_x_row + 3 * HID * s_x_c, mask=m_ju, other=0.0).to(ACC)
        b_o = sigmoid(b_ao + _conv3(b_hl, b_hm, b_hr, b_w0o, b_w1o, b_w2o, PRECISION).to(ACC))
        b_f = sigmoid(b_af + _conv3(b_hl, b_hm, b_hr, b_w0f, b_w1f, b_w2f, PRECISION).to(ACC))
        b_i = sigmoid(b_ai + _conv3(b_hl, b_hm, b_hr, b_w0i, b_w1i, b_w2i, PRECISION).to(ACC))
        b_g = tanh(b_ag + _conv3(b_hl, b_hm, b_hr, b_w0g, b_w1g, b_w2g, PRECISION).to(ACC))
        b_c = tl.load(p_c + o_h + i * s_h_h, mask=m_ju, other=0.0).to(ACC)
        b_cp = tl.load(p_c + o_h + (i - 1) * s_h_h, mask=m_ju & m_prev, other=0.0).to(ACC)

        # the chain: dh_i -> d gates_i -> (dc_{i-1}, dh_{i-1})
        b_dh = tl.load(p_dh + o_dh + i * s_dh_h, mask=m_ju, other=0.0).to(ACC) + b_dh_rec
        b_dh = tl.where(m_ju, b_dh, 0.0)
        b_tc = tanh(b_c)
        b_dc = tl.where(m_ju, b_dc + b_dh * b_o * (1.0 - b_tc * b_tc), 0.0)
        b_dao = b_dh * b_tc * b_o * (1.0 - b_o)
        b_daf = b_dc * b_cp * b_f * (1.0 - b_f)
        b_dai = b_dc * b_g * b_i * (1.0 - b_i)
        b_dag = b_dc * b_i * (1.0 - b_g * b_g)
        b_dc = b_dc * b_f
        p_dx_row = p_dx + o_dx + i * s_dx_h
        DX = p_dx.dtype.element_ty
        tl.store(p_dx_row + 0 * HID * s_dx_c, b_dao.to(DX), mask=m_ju)
        tl.store(p_dx_row + 1 * HID * s_dx_c, b_daf.to(DX), mask=m_ju)
        tl.store(p_dx_row + 2 * HID * s_dx_c, b_dai.to(DX), mask=m_ju)
        tl.store(p_dx_row + 3 * HID * s_dx_c, b_dag.to(DX), mask=m_ju)

        # dh_{i-1}[j] = Q0[j+1] + Q1[j] + Q2[j-1],  Qk = sum_X d gates_X @ W_kX^T
        b_dao, b_daf, b_dai, b_dag = b_dao.to(DOT), b_daf.to(DOT), b_dai.to(DOT), b_dag.to(DOT)
        b_q0 = _conv3_t(b_dao, b_daf, b_dai, b_dag, b_w0o, b_w0f, b_w0i, b_w0g, PRECISION).to(ACC)
        b_q1 = _conv3_t(b_dao, b_daf, b_dai, b_dag, b_w1o, b_w1f, b_w1i, b_w1g, PRECISION).to(ACC)
        b_q2 = _conv3_t(b_dao, b_daf, b_dai, b_dag, b_w2o, b_w2f, b_w2i, b_w2g, PRECISION).to(ACC)
        b_dh_rec = b_q1 + tl.dot(b_sr, b_q0, input_precision="ieee") + tl.dot(b_sl, b_q2, input_precision="ieee")


@triton.jit
def _split_gates(b_s, BJ: tl.constexpr, BU: tl.constexpr):
    # [BJ, 4*BU] with column u*4 + gate -> the four [BJ, BU] gates o, f, i, g
    b_even, b_odd = tl.split(tl.reshape(b_s, [BJ, BU, 2, 2]))  # gates (0, 2) and (1, 3)
    b_o, b_i = tl.split(b_even)
    b_f, b_g = tl.split(b_odd)
    return b_o, b_f, b_i, b_g


@triton.jit
def _state_conv_gates(p_wp, p_hs, o_hs_row, o_j, m_j, m_prev, ch, HID, W, NCH, KP,
                      BJ: tl.constexpr, BU: tl.constexpr, BK: tl.constexpr, ACC: tl.constexpr,
                      PRECISION: tl.constexpr, CACHE: tl.constexpr):
    # [BJ, 4*BU] = conv1d(h_{i-1}, K^ss) for the four gates of hidden units ch*BU .. ch*BU + BU,
    # column u*4 + gate: per BK-chunk of h_{i-1}, one dot per tap over all four gates. h_{i-1} is
    # read from the channels-last state map hs (row offset o_hs_row, written by the previous row,
    # by this CTA's whole group: CACHE ".cg" reads it from L2), the weights from the packed
    # (3, NCH, KP, 4*BU) tiles.
    o_k = tl.arange(0, BK)
    o_q = tl.arange(0, 4 * BU)
    m_jl = m_prev & m_j & (o_j >= 1)  # column j-1 exists
    m_jm = m_prev & m_j
    m_jr = m_prev & (o_j + 1 < W)  # column j+1 exists
    TAP = NCH * KP * 4 * BU
    b_s = tl.zeros([BJ, 4 * BU], dtype=ACC)
    for v0 in range(0, HID, BK):
        o_v = v0 + o_k
        m_v = o_v < HID
        p_h_blk = p_hs + o_hs_row + o_j[:, None] * HID + o_v[None, :]  # [BJ, BK]
        b_hl = tl.load(p_h_blk - HID, mask=m_jl[:, None] & m_v[None, :], other=0.0, cache_modifier=CACHE)
        b_hm = tl.load(p_h_blk, mask=m_jm[:, None] & m_v[None, :], other=0.0, cache_modifier=CACHE)
        b_hr = tl.load(p_h_blk + HID, mask=m_jr[:, None] & m_v[None, :], other=0.0, cache_modifier=CACHE)
        p_w_blk = p_wp + (ch * KP + o_v[:, None]) * (4 * BU) + o_q[None, :]  # [BK, 4*BU] tap 0, contiguous
        b_s += tl.dot(b_hl, tl.load(p_w_blk), input_precision=PRECISION)
        b_s += tl.dot(b_hm, tl.load(p_w_blk + TAP), input_precision=PRECISION)
        b_s += tl.dot(b_hr, tl.load(p_w_blk + 2 * TAP), input_precision=PRECISION)
    return b_s


@triton.jit
def _row_lstm_fwd_tiled_kernel(
    p_x, p_wp, p_h, p_c, p_hs, p_count,
    H, W, HID, NCH, KP, NCG, G,
    s_x_b, s_x_c, s_x_h, s_x_w,
    s_h_b, s_h_c, s_h_h, s_h_w,
    T_BEGIN, T_END,
    BJ: tl.constexpr, BU: tl.constexpr, BK: tl.constexpr,
    ACC: tl.constexpr, PRECISION: tl.constexpr, GRID_SYNC: tl.constexpr, CACHE: tl.constexpr,
):
    # Large h or W. x (B, 4h, H, W) any strides; wp the packed weights (_pack_forward); h, c
    # (B, h, H, W) outputs with the same strides; hs (B, H, W, h) channels-last copy of h, the
    # state the next row's conv reads (its shifted taps stay 16-byte aligned). Grid (B, G): CTA i_g
    # of image i_b's group owns chunks [i_g * NCG, i_g * NCG + NCG) of BU hidden units and runs rows
    # [T_BEGIN, T_END) (_group_sync.py). Per row, column tile and chunk: the gates from
    # _state_conv_gates, the input gates, the cell. A group barrier ends every row so that row i
    # sees all of row i-1's stores (count: (B,) int32 zeros).
    i_b = tl.program_id(0).to(tl.int64)
    i_g = tl.program_id(1)
    ch_begin = i_g * NCG
    ch_end = tl.minimum(ch_begin + NCG, NCH)
    o_u = tl.arange(0, BU)
    for i in range(T_BEGIN, T_END):
        m_prev = tl.full([BJ], i, dtype=tl.int32) > 0  # [BJ] row i-1 exists
        o_hs_row = (i_b * H + i - 1) * W * HID
        for j0 in range(0, W, BJ):
            o_j = j0 + tl.arange(0, BJ)
            m_j = o_j < W
            for ch in range(ch_begin, ch_end):
                b_s = _state_conv_gates(p_wp, p_hs, o_hs_row, o_j, m_j, m_prev, ch, HID, W, NCH, KP,
                                        BJ, BU, BK, ACC, PRECISION, CACHE)
                b_so, b_sf, b_si, b_sg = _split_gates(b_s, BJ, BU)
                o_n = ch * BU + o_u
                m_jn = m_j[:, None] & (o_n < HID)[None, :]  # [BJ, BU]
                p_x_blk = p_x + i_b * s_x_b + i * s_x_h + o_j[:, None] * s_x_w + o_n[None, :] * s_x_c
                b_ao = tl.load(p_x_blk + 0 * HID * s_x_c, mask=m_jn, other=0.0).to(ACC) + b_so.to(ACC)
                b_af = tl.load(p_x_blk + 1 * HID * s_x_c, mask=m_jn, other=0.0).to(ACC) + b_sf.to(ACC)
                b_ai = tl.load(p_x_blk + 2 * HID * s_x_c, mask=m_jn, other=0.0).to(ACC) + b_si.to(ACC)
                b_ag = tl.load(p_x_blk + 3 * HID * s_x_c, mask=m_jn, other=0.0).to(ACC) + b_sg.to(ACC)
                # int64 (i_b): rebasing p_h / p_c per image instead costs this kernel a register (sm_90)
                o_hc = i_b * s_h_b + o_j[:, None] * s_h_w + o_n[None, :] * s_h_c  # [BJ, BU]
                b_cp = tl.load(p_c + o_hc + (i - 1) * s_h_h, mask=m_jn & m_prev[:, None], other=0.0,
                               cache_modifier=".cg").to(ACC)
                b_c = sigmoid(b_af) * b_cp + sigmoid(b_ai) * tanh(b_ag)
                b_h = sigmoid(b_ao) * tanh(b_c)
                tl.store(p_h + o_hc + i * s_h_h, b_h.to(p_h.dtype.element_ty), mask=m_jn)
                tl.store(p_c + o_hc + i * s_h_h, b_c.to(p_c.dtype.element_ty), mask=m_jn)
                p_hs_blk = p_hs + o_hs_row + W * HID + o_j[:, None] * HID + o_n[None, :]
                tl.store(p_hs_blk, b_h.to(p_hs.dtype.element_ty), mask=m_jn)
        group_barrier(p_count + i_b, (i + 1) * G, GRID_SYNC)


@triton.jit
def _row_lstm_bwd_tiled_kernel(
    p_x, p_wp, p_wt, p_hs, p_c, p_dh, p_dx, p_dc, p_dgs, p_count,
    B, H, W, HID, NCH, KP, NCG, G,
    s_x_b, s_x_c, s_x_h, s_x_w,
    s_c_b, s_c_c, s_c_h, s_c_w,
    s_dh_b, s_dh_c, s_dh_h, s_dh_w,
    s_dx_b, s_dx_c, s_dx_h, s_dx_w,
    T_BEGIN, T_END,
    BJ: tl.constexpr, BU: tl.constexpr, BK: tl.constexpr,
    ACC: tl.constexpr, PRECISION: tl.constexpr, GRID_SYNC: tl.constexpr, CACHE: tl.constexpr,
):
    # wp / wt: the packed forward / transposed weights (_pack_forward, _pack_backward); hs (B, H, W, h)
    # channels-last h; dc (2, B, W, h) and dgs (2, B, W, 4h) scratch for the carried dc and row i+1's
    # d gates (channels-last, so the transposed conv's shifted taps stay aligned), double-buffered by
    # step parity (read slot t%2, write slot (t+1)%2: no read-after-write within a step). Both are
    # written by this kernel, so they are read with .cg (from L2). Grid (B, G) as the forward; a
    # group barrier ends every row.
    i_b = tl.program_id(0).to(tl.int64)
    i_g = tl.program_id(1)
    # this image's planes (int64 image offset; offsets inside an image are int32: check_int32_span)
    p_x += i_b * s_x_b
    p_c += i_b * s_c_b
    p_dh += i_b * s_dh_b
    p_dx += i_b * s_dx_b
    ch_begin = i_g * NCG
    ch_end = tl.minimum(ch_begin + NCG, NCH)
    o_u = tl.arange(0, BU)
    o_q = tl.arange(0, 4 * BK)  # gate*BK + k: the transposed conv's reduction over all four gates
    o_qg = o_q // BK
    o_qk = o_q % BK
    NV = KP // BK
    TAPT = NCH * NV * BU * 4 * BK
    for t in range(T_BEGIN, T_END):
        i = H - 1 - t
        m_prev = tl.full([BJ], i, dtype=tl.int32) > 0  # [BJ] row i-1 exists
        m_next = tl.full([BJ], t, dtype=tl.int32) > 0  # [BJ] row i+1 exists
        o_hs_row = (i_b * H + i - 1) * W * HID
        o_rd = (t % 2) * B + i_b  # scratch slot read this step
        o_wr = ((t + 1) % 2) * B + i_b  # and written
        for j0 in range(0, W, BJ):
            o_j = j0 + tl.arange(0, BJ)
            m_j = o_j < W
            for ch in range(ch_begin, ch_end):
                # recompute row i's pre-activations from the saved h_{i-1}
                b_s = _state_conv_gates(p_wp, p_hs, o_hs_row, o_j, m_j, m_prev, ch, HID, W, NCH, KP,
                                        BJ, BU, BK, ACC, PRECISION, "")
                b_so, b_sf, b_si, b_sg = _split_gates(b_s, BJ, BU)
                o_n = ch * BU + o_u
                m_jn = m_j[:, None] & (o_n < HID)[None, :]  # [BJ, BU]
                p_x_blk = p_x + i * s_x_h + o_j[:, None] * s_x_w + o_n[None, :] * s_x_c
                b_o = sigmoid(tl.load(p_x_blk + 0 * HID * s_x_c, mask=m_jn, other=0.0).to(ACC) + b_so.to(ACC))
                b_f = sigmoid(tl.load(p_x_blk + 1 * HID * s_x_c, mask=m_jn, other=0.0).to(ACC) + b_sf.to(ACC))
                b_i = sigmoid(tl.load(p_x_blk + 2 * HID * s_x_c, mask=m_jn, other=0.0).to(ACC) + b_si.to(ACC))
                b_g = tanh(tl.load(p_x_blk + 3 * HID * s_x_c, mask=m_jn, other=0.0).to(ACC) + b_sg.to(ACC))
                # the recurrent dh_i[j, s] = sum_X da_X[j+1] W[X, s, 0] + da_X[j] W[X, s, 1] + da_X[j-1] W[X, s, 2],
                # transposed ([BU, BJ]) so each dot's warps tile it without overlap: per BK-chunk, one
                # dot per tap over all four gates of row i+1's d gates
                b_dht = tl.zeros([BU, BJ], dtype=ACC)
                for v0 in range(0, HID, BK):
                    o_v = v0 + o_qk
                    m_q = o_v < HID
                    p_dg_blk = p_dgs + (o_rd * W + o_j[None, :]) * 4 * HID + (o_qg * HID + o_v)[:, None]  # [4*BK, BJ]
                    b_d0 = tl.load(p_dg_blk + 4 * HID, mask=m_q[:, None] & (m_next & (o_j + 1 < W))[None, :], other=0.0,
                                   cache_modifier=CACHE)
                    b_d1 = tl.load(p_dg_blk, mask=m_q[:, None] & (m_next & m_j)[None, :], other=0.0,
                                   cache_modifier=CACHE)
                    b_d2 = tl.load(p_dg_blk - 4 * HID, mask=m_q[:, None] & (m_next & m_j & (o_j >= 1))[None, :],
                                   other=0.0, cache_modifier=CACHE)
                    p_wt_blk = p_wt + ((ch * NV + v0 // BK) * BU + o_u[:, None]) * (4 * BK) + o_q[None, :]  # [BU, 4*BK]
                    b_dht += tl.dot(tl.load(p_wt_blk), b_d0, input_precision=PRECISION).to(ACC)
                    b_dht += tl.dot(tl.load(p_wt_blk + TAPT), b_d1, input_precision=PRECISION).to(ACC)
                    b_dht += tl.dot(tl.load(p_wt_blk + 2 * TAPT), b_d2, input_precision=PRECISION).to(ACC)
                o_c = o_j[:, None] * s_c_w + o_n[None, :] * s_c_c  # [BJ, BU]
                b_c = tl.load(p_c + o_c + i * s_c_h, mask=m_jn, other=0.0).to(ACC)
                b_cp = tl.load(p_c + o_c + (i - 1) * s_c_h, mask=m_jn & m_prev[:, None], other=0.0).to(ACC)
                p_dc_blk = p_dc + o_j[:, None] * HID + o_n[None, :]  # [BJ, BU]
                b_dc = tl.load(p_dc_blk + o_rd * W * HID, mask=m_jn & m_next[:, None], other=0.0, cache_modifier=".cg")
                o_dy = i * s_dh_h + o_j[:, None] * s_dh_w + o_n[None, :] * s_dh_c  # [BJ, BU]
                b_dh = tl.trans(b_dht) + tl.load(p_dh + o_dy, mask=m_jn, other=0.0).to(ACC)

                b_tc = tanh(b_c)
                b_dc += b_dh * b_o * (1.0 - b_tc * b_tc)
                b_dao = b_dh * b_tc * b_o * (1.0 - b_o)
                b_daf = b_dc * b_cp * b_f * (1.0 - b_f)
                b_dai = b_dc * b_g * b_i * (1.0 - b_i)
                b_dag = b_dc * b_i * (1.0 - b_g * b_g)
                DX = p_dx.dtype.element_ty
                p_dx_blk = p_dx + i * s_dx_h
                p_dx_blk += o_j[:, None] * s_dx_w + o_n[None, :] * s_dx_c  # [BJ, BU]
                tl.store(p_dx_blk + 0 * HID * s_dx_c, b_dao.to(DX), mask=m_jn)
                tl.store(p_dx_blk + 1 * HID * s_dx_c, b_daf.to(DX), mask=m_jn)
                tl.store(p_dx_blk + 2 * HID * s_dx_c, b_dai.to(DX), mask=m_jn)
                tl.store(p_dx_blk + 3 * HID * s_dx_c, b_dag.to(DX), mask=m_jn)
                p_dgs_blk = p_dgs + (o_wr * W + o_j[:, None]) * 4 * HID + o_n[None, :]  # [BJ, BU]
                DS = p_dgs.dtype.element_ty
                tl.store(p_dgs_blk, b_dao.to(DS), mask=m_jn)
                tl.store(p_dgs_blk + HID, b_daf.to(DS), mask=m_jn)
                tl.store(p_dgs_blk + 2 * HID, b_dai.to(DS), mask=m_jn)
                tl.store(p_dgs_blk + 3 * HID, b_dag.to(DS), mask=m_jn)
                tl.store(p_dc_blk + o_wr * W * HID, b_dc * b_f, mask=m_jn)
        group_barrier(p_count + i_b, (t + 1) * G, GRID_SYNC)


@triton.jit
def _row_lstm_dw_kernel(
    p_dx, p_hs, p_dwp,
    B, H, W, HID, BLOCKS,
    BM: tl.constexpr, BN: tl.constexpr, BP: tl.constexpr, ACC: tl.constexpr, PRECISION: tl.constexpr,
):
    # partial[s, m, n, k] = sum over the pixel blocks of split s: dgates[m, p] * h[n, row(p)-1, col(p)+k-1]
    # dx: d input_gates (B, 4h, H, W) contiguous (a pixel block is contiguous in an image plane);
    # hs: (B, H, W, h) channels-last h. Pixel blocks are (image, BP pixels of its plane), BLOCKS per split.
    i_mn, k, i_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    n_tiles = tl.cdiv(HID, BN)
    i_m, i_n = i_mn // n_tiles, i_mn % n_tiles
    DOT = p_hs.dtype.element_ty
    o_m = i_m * BM + tl.arange(0, BM)
    o_n = i_n * BN + tl.arange(0, BN)
    m_m = o_m < 4 * HID
    m_n = o_n < HID
    n_plane = H * W
    per_image = tl.cdiv(n_plane, BP)
    n_blocks = B * per_image
    b_acc = tl.zeros([BM, BN], dtype=ACC)  # [BM, BN]
    for blk in range(i_s * BLOCKS, i_s * BLOCKS + BLOCKS):
        o_b = (blk // per_image).to(tl.int64)
        o_q = (blk % per_image) * BP + tl.arange(0, BP)  # [BP] pixels i*W + j of image o_b
        m_p = (o_q < n_plane) & (tl.full([BP], blk, dtype=tl.int32) < n_blocks)
        o_i = o_q // W
        o_jj = o_q % W + k - 1  # the column of h_{i-1} paired with tap k
        p_dx_blk = p_dx + (o_b * 4 * HID + o_m[:, None]) * n_plane + o_q[None, :]
        b_dx = tl.load(p_dx_blk, mask=m_m[:, None] & m_p[None, :], other=0.0).to(DOT)  # [BM, BP]
        m_h = m_p & (o_i >= 1) & (o_jj >= 0) & (o_jj < W)
        p_h_blk = p_hs + ((o_b * H + o_i - 1) * W + o_jj)[:, None] * HID + o_n[None, :]
        b_h = tl.load(p_h_blk, mask=m_h[:, None] & m_n[None, :], other=0.0)  # [BP, BN]
        b_acc += tl.dot(b_dx, b_h, input_precision=PRECISION)
    p_out_blk = p_dwp + ((i_s * 4 * HID + o_m[:, None]) * HID + o_n[None, :]) * 3 + k
    tl.store(p_out_blk, b_acc, mask=m_m[:, None] & m_n[None, :])


def _block(n: int) -> int:
    """Power-of-two block >= n and >= 16 (tl.dot's smallest tile on GPUs)."""
    return max(16, triton.next_power_of_2(n))


def _num_warps() -> int:
    # 4 warps: the resident variant's largest row block (32 x 32) is 1,024 elements; the tiled
    # variant's dots ([32, 64] and the transposed [16, 32]) give 4 warps each their own MMA tiles
    return 1 if triton_interpreter_enabled() else 4


VARIANTS = ("resident", "registers", "tiled")


def _variant(width: int, hid: int, dtype: torch.dtype, variant: str | None) -> str:
    """'resident': state and the 12 weight slices in registers (chosen for BW <= 32 and
    12 BH^2 itemsize <= 24 KB: h <= 32 in 16-bit, h <= 16 in float32); 'tiled': any h and W, state
    re-read from L2 in tiles (chosen otherwise, e.g. the paper's h=128); 'registers': state in
    registers, weights re-read every row (never chosen: it spills at BH=64 on sm_90; kept to be
    forced for comparison on the GPU)."""
    if variant is not None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        return variant
    bw, bh = _block(width), _block(hid)
    fits = bw <= _RESIDENT_MAX_WIDTH and 12 * bh * bh * dtype.itemsize <= _RESIDENT_BYTES
    return "resident" if fits else "tiled"


# (BJ columns, BU hidden units per chunk, BK reduction units) of the tiled variant at most, by element
# size: 16-bit dots run on tensor cores and take the whole h = 128 per K step; IEEE float32 dots run
# on FMAs and take smaller tiles. Tests shrink them below 16 (the interpreter only) to run several
# tiles per row on tiny shapes.
TILED_MAX_TILES = {2: (32, 16, 128), 4: (16, 16, 16), 8: (16, 16, 16)}
# the backward's reduction chunk at most: its transposed conv reads [4*BK, BJ] d-gate tiles per tap
# (sm_90 compile, h = 128 bf16, 4 warps: 255 registers + 104 B spill with BK = 128, 168 + 40 B with
# 64, 224 and no spill with 32)
TILED_BWD_MAX_K = 32


def _tiles(width: int, hid: int, dtype: torch.dtype) -> tuple[int, int, int]:
    bj, bu, bk = TILED_MAX_TILES[dtype.itemsize]
    return min(bj, _block(width)), min(bu, _block(hid)), min(bk, _block(hid))


# packed weight layouts by weight tensor (dropped with it): {kind: (version key, packed)}
_PACKED: WeakIdKeyDictionary = WeakIdKeyDictionary()


def _version_key(tensor: torch.Tensor):
    """(storage, version) of the weight, or None where it keeps no version counter (inference
    tensors) or a CUDA graph is being captured (the packing must then be captured too)."""
    if tensor.is_cuda and torch.cuda.is_current_stream_capturing():
        return None
    try:
        return (tensor.data_ptr(), tensor._version, tensor.shape, tensor.dtype, tensor.device, tensor.stride())
    except RuntimeError:  # inference tensors have no version counter
        return None


def _cached(kind: str, weight: torch.Tensor, blocks: tuple, pack):
    """pack(), cached on the weight until it changes (an optimizer step bumps its _version)."""
    key = _version_key(weight)
    with torch.no_grad():
        if key is None or weight.device.type == "meta":
            return pack()
        key = (blocks, key)
        cache = _PACKED.get(weight, {})
        if cache.get(kind, (None,))[0] == key:
            return cache[kind][1]
        packed = pack()
    _PACKED[weight] = {**cache, kind: (key, packed)}
    return packed


def _pack_forward(state_weight: torch.Tensor, block_u: int, block_k: int) -> torch.Tensor:
    """(4h, h, 1, 3) -> (3 taps, NCH, KP, 4*BU), NCH = ceil(h / BU), KP = h padded to BK: row v,
    column u*4 + gate of tile (tap, ch) = w[gate*h + ch*BU + u, v, 0, tap] (zero padded), so one
    contiguous [BK, 4*BU] slice feeds one dot for all four gates."""
    hid = state_weight.shape[1]
    nch, kp = triton.cdiv(hid, block_u), triton.cdiv(hid, block_k) * block_k
    w = state_weight[:, :, 0, :].reshape(4, hid, hid, 3)  # [gate, u, v, tap]
    wp = torch.zeros((3, kp, nch * block_u, 4), device=w.device, dtype=w.dtype)  # [tap, v, u, gate]
    wp[:, :hid, :hid, :] = w.permute(3, 2, 1, 0)
    return wp.view(3, kp, nch, block_u * 4).permute(0, 2, 1, 3).contiguous()


def _pack_backward(state_weight: torch.Tensor, block_u: int, block_k: int) -> torch.Tensor:
    """(4h, h, 1, 3) -> (3 taps, NCH, NV, BU, 4*BK): row s, column gate*BK + k of tile (tap, ch, vc)
    = w[gate*h + vc*BK + k, ch*BU + s, 0, tap]: the transposed conv's [BU, 4*BK] operand, contiguous."""
    hid = state_weight.shape[1]
    nch, nv = triton.cdiv(hid, block_u), triton.cdiv(hid, block_k)
    w = state_weight[:, :, 0, :].reshape(4, hid, hid, 3)  # [gate, k, s, tap]
    wt = torch.zeros((3, nch * block_u, 4, nv * block_k), device=w.device, dtype=w.dtype)  # [tap, s, gate, k]
    wt[:, :hid, :, :hid] = w.permute(3, 2, 0, 1)
    wt = wt.view(3, nch, block_u, 4, nv, block_k).permute(0, 1, 4, 2, 3, 5)  # [tap, ch, vc, s, gate, k]
    return wt.contiguous()


def _channels_last_h(h: torch.Tensor) -> torch.Tensor:
    """h (B, h, H, W) as a contiguous (B, H, W, h) map (a view when h is already channels-last)."""
    return h.permute(0, 2, 3, 1).contiguous()


def row_lstm_forward(
    input_gates: torch.Tensor, state_weight: torch.Tensor, *, variant: str | None = None,
    ctas_per_scan: int | None = None, num_stages: int | None = 1,
):
    """Forward scan. input_gates (B, 4h, H, W), state_weight (4h, h, 1, 3)
    -> h (B, h, H, W) in the input dtype, c (B, h, H, W) in float32 (float64 for float64 inputs).

    ``variant`` ('resident', 'registers', 'tiled'; see :func:`_variant`) forces a kernel variant;
    None picks by size. ``ctas_per_scan`` (tests) forces G, the CTAs sharing one image in the tiled
    variant; default: _group_sync.group_size. ``num_stages``: the tiled kernel's software pipelining
    (pinned to 1: no load is hoisted across a row's barrier; None = triton's default, for the GPU
    test that compares the two bit for bit).
    """
    batch, four_h, height, width = input_gates.shape
    hid = four_h // 4
    check_int32_span("row_lstm_scan", input_gates)  # h and c span less per image
    acc_torch = acc_dtype(input_gates.dtype)
    h = torch.empty(batch, hid, height, width, device=input_gates.device, dtype=input_gates.dtype)
    c = torch.empty(batch, hid, height, width, device=input_gates.device, dtype=acc_torch)
    if h.numel() == 0:
        return h, c
    x, w = input_gates, state_weight
    meta = dict(ACC=tl_dtype(acc_dtype(x.dtype)), PRECISION=dot_precision(x.dtype))
    x_strides = (x.stride(0), x.stride(1), x.stride(2), x.stride(3))
    h_strides = (h.stride(0), h.stride(1), h.stride(2), h.stride(3))
    variant = _variant(width, hid, w.dtype, variant)
    if variant == "tiled":
        bj, bu, bk = _tiles(width, hid, w.dtype)
        wp = _cached("fwd", w, (bu, bk), lambda: _pack_forward(w, bu, bk))
        hs = torch.empty(batch, height, width, hid, device=x.device, dtype=x.dtype)  # channels-last state
        chunks = triton.cdiv(hid, bu)
        group = group_size(batch, chunks, x.device, ctas_per_scan)
        count = torch.zeros(batch, device=x.device, dtype=torch.int32)  # group barrier arrivals

        def build(g):  # grid and arguments for g CTAs per image
            return (batch, g), (x, wp, h, c, hs, count,
                                height, width, hid, chunks, triton.cdiv(hid, bk) * bk, triton.cdiv(chunks, g), g,
                                *x_strides, *h_strides)

        launch_scan(
            _row_lstm_fwd_tiled_kernel, height, build,
            dict(BJ=bj, BU=bu, BK=bk, **meta, num_warps=_num_warps(),
                 **({} if num_stages is None else {"num_stages": num_stages})),
            group, x.device, "row_lstm_scan",
        )
    else:
        bw, bh = _block(width), _block(hid)
        _row_lstm_fwd_kernel[(batch,)](
            x, w, h, c,
            height, width, hid,
            *x_strides, w.stride(0), w.stride(1), w.stride(3), *h_strides,
            BW=bw, BH=bh, RESIDENT=variant == "resident", **meta, num_warps=_num_warps()
        )
    return h, c


def row_lstm_backward(
    input_gates: torch.Tensor,
    state_weight: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    grad_h: torch.Tensor,
    *,
    need_weight_grad: bool = True,
    variant: str | None = None,
    ctas_per_scan: int | None = None,
):
    """Backward of :func:`row_lstm_forward` given h, c (its outputs) and grad_h (B, h, H, W)
    -> (d input_gates (B, 4h, H, W), d state_weight (4h, h, 1, 3) or None)."""
    batch, four_h, height, width = input_gates.shape
    hid = four_h // 4
    check_int32_span("row_lstm_scan", input_gates)
    check_int32_span("row_lstm_scan", grad_h)
    dx = torch.empty(batch, four_h, height, width, device=input_gates.device, dtype=input_gates.dtype)
    if dx.numel() == 0:
        dw = torch.zeros_like(state_weight) if need_weight_grad else None
        return dx, dw
    x, w, dy = input_gates, state_weight, grad_h
    meta = dict(ACC=tl_dtype(acc_dtype(x.dtype)), PRECISION=dot_precision(x.dtype))
    strides = (
        x.stride(0), x.stride(1), x.stride(2), x.stride(3),
        w.stride(0), w.stride(1), w.stride(3),
        h.stride(0), h.stride(1), h.stride(2), h.stride(3),
        dy.stride(0), dy.stride(1), dy.stride(2), dy.stride(3),
        dx.stride(0), dx.stride(1), dx.stride(2), dx.stride(3),
    )
    hs = _channels_last_h(h)  # (B, H, W, h): the tiled kernel's and the weight gradient's h operand
    variant = _variant(width, hid, w.dtype, variant)
    if variant == "tiled":
        bj, bu, bk = _tiles(width, hid, w.dtype)
        bk = min(bk, TILED_BWD_MAX_K)
        wp = _cached("fwd", w, (bu, bk), lambda: _pack_forward(w, bu, bk))
        wt = _cached("bwd", w, (bu, bk), lambda: _pack_backward(w, bu, bk))
        dc = torch.empty(2, batch, width, hid, device=x.device, dtype=c.dtype)  # carried dc, 2 buffers
        dgs = torch.empty(2, batch, width, four_h, device=x.device, dtype=dx.dtype)  # row i+1's d gates
        chunks = triton.cdiv(hid, bu)
        group = group_size(batch, chunks, x.device, ctas_per_scan)
        count = torch.zeros(batch, device=x.device, dtype=torch.int32)  # group barrier arrivals

        def build(g):  # grid and arguments for g CTAs per image
            return (batch, g), (x, wp, wt, hs, c, dy, dx, dc, dgs, count,
                                batch, height, width, hid, chunks, triton.cdiv(hid, bk) * bk, triton.cdiv(chunks, g), g,
                                *strides[:4], c.stride(0), c.stride(1), c.stride(2), c.stride(3), *strides[11:])

        launch_scan(
            _row_lstm_bwd_tiled_kernel, height, build,
            dict(BJ=bj, BU=bu, BK=bk, **meta, num_warps=_num_warps(), num_stages=1),
            group, x.device, "row_lstm_scan",
        )
    else:
        bw, bh = _block(width), _block(hid)
        _row_lstm_bwd_kernel[(batch,)](
            x, w, h, c, dy, dx,
            height, width, hid,
            *strides,
            BW=bw, BH=bh, RESIDENT=variant == "resident", **meta, num_warps=_num_warps(),
        )
    dw = _state_weight_grad(dx, hs.permute(0, 3, 1, 2), state_weight) if need_weight_grad else None
    return dx, dw


def _state_weight_grad(
    dx: torch.Tensor, h: torch.Tensor, state_weight: torch.Tensor, *, split: int | None = None
) -> torch.Tensor:
    """d state_weight (4h, h, 1, 3) = sum over all pixels of d gates (x) shifted h_{i-1}: split-K GEMM.

    dx: d input_gates (B, 4h, H, W); h: (B, h, H, W) (read channels-last: no copy when it already
    is). ``split`` (pixel-block ranges reduced by separate programs) defaults to 1 under the
    interpreter and to enough programs to fill a GPU otherwise; the float32 partials are summed in
    a fixed order (deterministic, no atomics)."""
    batch, four_h, height, width = dx.shape
    hid = four_h // 4
    dx = dx.contiguous()
    hs = _channels_last_h(h)
    interp = triton_interpreter_enabled()
    bm = min(64, _block(four_h))
    bn = min(64, _block(hid))
    bp = 16 if interp else 64
    tiles = triton.cdiv(four_h, bm) * triton.cdiv(hid, bn)
    n_blocks = batch * triton.cdiv(height * width, bp)
    # enough programs to fill the GPU (two per SM), each reducing at least a few pixel blocks
    if split is None:
        fill = triton.cdiv(2 * num_sms(dx.device), 3 * tiles)
        split = 1 if interp else max(1, min(triton.cdiv(n_blocks, 4), fill))
    per_split = triton.cdiv(n_blocks, split)
    split = triton.cdiv(n_blocks, per_split)
    acc_torch = acc_dtype(dx.dtype)
    partial = torch.empty(split, four_h, hid, 3, device=dx.device, dtype=acc_torch)
    _row_lstm_dw_kernel[(tiles, 3, split)](
        dx, hs, partial,
        batch, height, width, hid, per_split,
        BM=bm, BN=bn, BP=bp, ACC=tl_dtype(acc_dtype(dx.dtype)), PRECISION=dot_precision(dx.dtype),
        num_warps=_num_warps(),
    )
    # fixed-order sum of the split-K slices (deterministic; no atomics)
    return partial.sum(0).to(state_weight.dtype).view(four_h, hid, 1, 3)


# -- registered ops ----------------------------------------------------------------------------
# fastpixel::row_lstm_scan_forward / _backward wrap the launchers above as opaque custom ops
# (docs/architecture.md, "Kernels as PyTorch ops"); the fakes give the launchers' allocations
# (shapes, strides, dtypes) and must follow them if they change (tests/kernels/test_custom_ops.py
# runs torch.library.opcheck on both).
Tensor = torch.Tensor


@torch.library.custom_op("fastpixel::row_lstm_scan_forward", mutates_args=())
def row_lstm_scan_forward(input_gates: Tensor, state_weight: Tensor) -> tuple[Tensor, Tensor]:
    """input_gates (B, 4h, H, W), state_weight (4h, h, 1, 3) -> (h (B, h, H, W) in the input dtype,
    c (B, h, H, W) float32, float64 for float64 inputs; saved for the backward)."""
    return row_lstm_forward(input_gates, state_weight)


@row_lstm_scan_forward.register_fake
def _(input_gates, state_weight):
    batch, four_h, height, width = input_gates.shape
    acc = acc_dtype(input_gates.dtype)
    h = input_gates.new_empty((batch, four_h // 4, height, width))
    return h, input_gates.new_empty((batch, four_h // 4, height, width), dtype=acc)


@torch.library.custom_op("fastpixel::row_lstm_scan_backward", mutates_args=())
def row_lstm_scan_backward(
    input_gates: Tensor, state_weight: Tensor, h: Tensor, c: Tensor, grad_h: Tensor, need_weight_grad: bool
) -> tuple[Tensor, Tensor]:
    """-> (d input_gates (B, 4h, H, W), d state_weight (4h, h, 1, 3), or an empty (0,) tensor
    when not need_weight_grad)."""
    dx, dw = row_lstm_backward(input_gates, state_weight, h, c, grad_h, need_weight_grad=need_weight_grad)
    return dx, (dw if dw is not None else state_weight.new_empty(0))


@row_lstm_scan_backward.register_fake
def _(input_gates, state_weight, h, c, grad_h, need_weight_grad):
    dw = state_weight.new_empty(state_weight.shape) if need_weight_grad else state_weight.new_empty(0)
    return input_gates.new_empty(input_gates.shape), dw


def _setup_context(ctx, inputs, output):
    input_gates, state_weight = inputs
    ctx.save_for_backward(input_gates, state_weight, *output)


def _backward(ctx, grad_h, _grad_c):
    input_gates, state_weight, h, c = ctx.saved_tensors
    need_x, need_w = ctx.needs_input_grad
    dx, dw = row_lstm_scan_backward(input_gates, state_weight, h, c, grad_h, need_w)
    return (dx if need_x else None), (dw if need_w else None)


row_lstm_scan_forward.register_autograd(_backward, setup_context=_setup_context)


def _autocast_rule(dtype: torch.dtype, args: tuple):
    # The reference's conv1d runs in the autocast dtype and its sum with the input gates promotes:
    # h comes back in promote(input_gates, autocast dtype). The kernel gets both in the autocast dtype.
    input_gates, state_weight = args
    out_dtype = torch.promote_types(input_gates.dtype, dtype) if input_gates.dtype != torch.float64 else torch.float64

    def finish(out):
        h, c = out
        return (h.to(out_dtype) if h.dtype != out_dtype else h), c

    return (cast_floating(input_gates, dtype), cast_floating(state_weight, dtype)), finish


register_autocast_rule(row_lstm_scan_forward, _autocast_rule)


def row_lstm_scan(input_gates: torch.Tensor, state_weight: torch.Tensor) -> torch.Tensor:
    """Triton twin of :func:`fastpixel.reference.row_lstm_scan`.

    input_gates: (B, 4h, H, W) input-to-state gates [o | f | i | g], bias included;
    state_weight: (4h, h, 1, 3) -> h: (B, h, H, W). Differentiable in both arguments.
    Runs ``fastpixel::row_lstm_scan_forward`` (h and a float32 c saved; the backward recomputes
    the gate activations from them instead of storing the 4h gates per pixel).
    """
    return row_lstm_scan_forward(input_gates, state_weight)[0]
