"""Row LSTM scan in Triton: one persistent launch over the H rows, Triton backward.

Computes exactly :func:`fastpixel.reference.row_lstm_scan`:

    gates_i = input_gates[:, :, i] + conv1d(h_{i-1}, state_weight[:, :, 0], padding=1)   [o|f|i|g]
    c_i = sigmoid(f) c_{i-1} + sigmoid(i) tanh(g);   h_i = sigmoid(o) tanh(c_i);   h_{-1} = c_{-1} = 0

Design (see docs/kernels.md, "Row LSTM scan"). Every kernel has grid (B,): one program owns whole
rows (all W columns, all h units) of one image, so the 1x3 conv's column halo never leaves the
program and no cross-program synchronisation is needed. It loops over the H rows.

* Register variants (``resident`` for small h and W; ``registers`` only when forced): h and c stay
  in registers. The conv is, per gate, three ``tl.dot`` of [h_{i-1} at j-1 | j | j+1] (BW, BH) with
  the (BH, BH) weight slices; the column shifts of h are themselves ``tl.dot`` with 0/1 shift matrices (exact),
  so h never round-trips through memory. ``resident`` loads the 12 weight slices once before the
  loop, ``registers`` re-reads them every row (L1/L2 hits).
* Tiled variant (any h and W, e.g. the paper's h=128): per row, (BJ columns x BU units) output
  tiles with BK-unit reduction chunks; h_{i-1} and c_{i-1} are re-read from the h / c outputs
  written the row before, the weights from L2; a CTA barrier (``tl.debug_barrier``) ends each row
  and ``num_stages=1`` keeps loads from being pipelined across it.
* Saved for the backward: h (the output) and c (float32); the gate activations are recomputed.
* Backward scan, rows in reverse (same variants): recomputes the gate pre-activations of row i from
  the saved h_{i-1} (off the dependency chain), forms d gates (written as d input_gates), and
  carries dc and the recurrent dh_{i-1} = conv1d^T(d gates_i) (three ``tl.dot`` per gate with the
  transposed weights, plus two shift-matrix dots in the register variants). The tiled variant
  re-reads row i+1's d gates from d input_gates and double-buffers dc in a (2, B, h, W) scratch.
* Weight gradient: a separate GEMM over all B*H*W pixels after the scan,
  d_state_weight[:, :, 0, k] = sum_pixels d gates (x) h_{i-1}[column j+k-1], split over pixel chunks
  (split-K) into a float32 partial buffer whose SPLIT slices are then summed (a fixed-order,
  deterministic torch.sum); no atomics.

Math is float32 (float64 for float64 inputs); bf16/fp16 inputs feed the dots in their own dtype
with float32 accumulation and a float32 state.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastpixel.backend import triton_interpreter_enabled
from fastpixel.kernels._common import cast_floating, register_autocast_rule

# The state stays in registers (and the 12 (BH, BH) weight slices are loaded once, before the row
# loop) up to this many weight bytes and row width; beyond, the tiled variant runs. The sm_90
# compile (triton 3.9, 4 warps, BW=32) spills at most 160 B per thread at BH=32 bf16 but
# 3,840 / 10,864 B (forward / backward) at BH=64 bf16 (see docs/kernels.md).
_RESIDENT_BYTES = 24 * 1024
_RESIDENT_MAX_WIDTH = 32


@triton.jit
def _tanh(x):
    # tanh(x) = 2 sigmoid(2x) - 1: core triton.language has no tanh (only the per-backend libdevice)
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


@triton.jit
def _load_w(p_w, o_v, o_u, m_vu, gate, k, HID, stride_wo, stride_wi, stride_wk):
    # [BH(v), BH(u)] = state_weight[gate*HID + u, v, 0, k]
    p = p_w + (gate * HID + o_u[None, :]) * stride_wo + o_v[:, None] * stride_wi + k * stride_wk
    return tl.load(p, mask=m_vu, other=0.0)


@triton.jit
def _load_w3(p_w, o_v, o_u, m_vu, gate, HID, stride_wo, stride_wi, stride_wk):
    b_w0 = _load_w(p_w, o_v, o_u, m_vu, gate, 0, HID, stride_wo, stride_wi, stride_wk)
    b_w1 = _load_w(p_w, o_v, o_u, m_vu, gate, 1, HID, stride_wo, stride_wi, stride_wk)
    b_w2 = _load_w(p_w, o_v, o_u, m_vu, gate, 2, HID, stride_wo, stride_wi, stride_wk)
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
    x_ptr, w_ptr, h_ptr, c_ptr,
    H, W, HID,
    stride_xb, stride_xc, stride_xh, stride_xw,
    stride_wo, stride_wi, stride_wk,
    stride_hb, stride_hc, stride_hh, stride_hw,
    BW: tl.constexpr, BH: tl.constexpr, RESIDENT: tl.constexpr,
    ACC: tl.constexpr, PRECISION: tl.constexpr,
):
    i_b = tl.program_id(0)
    DOT = w_ptr.dtype.element_ty
    o_j = tl.arange(0, BW)
    o_u = tl.arange(0, BH)
    m_j = o_j < W
    m_u = o_u < HID
    m_ju = m_j[:, None] & m_u[None, :]  # [BW, BH]
    m_vu = m_u[:, None] & m_u[None, :]  # [BH, BH]
    # row j of b_sl picks column j-1, of b_sr column j+1 (zero past either end)
    b_sl = (o_j[None, :] == o_j[:, None] - 1).to(DOT)  # [BW, BW]
    b_sr = (o_j[None, :] == o_j[:, None] + 1).to(DOT)  # [BW, BW]

    o_x = i_b * stride_xb + o_j[:, None] * stride_xw + o_u[None, :] * stride_xc  # [BW, BH]
    o_h = i_b * stride_hb + o_j[:, None] * stride_hw + o_u[None, :] * stride_hc  # [BW, BH]
    if RESIDENT:
        b_w0o, b_w1o, b_w2o = _load_w3(w_ptr, o_u, o_u, m_vu, 0, HID, stride_wo, stride_wi, stride_wk)
        b_w0f, b_w1f, b_w2f = _load_w3(w_ptr, o_u, o_u, m_vu, 1, HID, stride_wo, stride_wi, stride_wk)
        b_w0i, b_w1i, b_w2i = _load_w3(w_ptr, o_u, o_u, m_vu, 2, HID, stride_wo, stride_wi, stride_wk)
        b_w0g, b_w1g, b_w2g = _load_w3(w_ptr, o_u, o_u, m_vu, 3, HID, stride_wo, stride_wi, stride_wk)

    b_h = tl.zeros([BW, BH], dtype=ACC)
    b_c = tl.zeros([BW, BH], dtype=ACC)
    for i in range(0, H):
        if not RESIDENT:
            b_w0o, b_w1o, b_w2o = _load_w3(w_ptr, o_u, o_u, m_vu, 0, HID, stride_wo, stride_wi, stride_wk)
            b_w0f, b_w1f, b_w2f = _load_w3(w_ptr, o_u, o_u, m_vu, 1, HID, stride_wo, stride_wi, stride_wk)
            b_w0i, b_w1i, b_w2i = _load_w3(w_ptr, o_u, o_u, m_vu, 2, HID, stride_wo, stride_wi, stride_wk)
            b_w0g, b_w1g, b_w2g = _load_w3(w_ptr, o_u, o_u, m_vu, 3, HID, stride_wo, stride_wi, stride_wk)
        b_hm = b_h.to(DOT)  # [BW, BH] h_{i-1} at column j
        b_hl = tl.dot(b_sl, b_hm, input_precision=PRECISION).to(DOT)  # at j-1 (exact: one 1.0 per row)
        b_hr = tl.dot(b_sr, b_hm, input_precision=PRECISION).to(DOT)  # at j+1

        p_x = x_ptr + o_x + i * stride_xh
        b_ao = tl.load(p_x + 0 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)
        b_af = tl.load(p_x + 1 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)
        b_ai = tl.load(p_x + 2 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)
        b_ag = tl.load(p_x + 3 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)
        b_ao += _conv3(b_hl, b_hm, b_hr, b_w0o, b_w1o, b_w2o, PRECISION).to(ACC)
        b_af += _conv3(b_hl, b_hm, b_hr, b_w0f, b_w1f, b_w2f, PRECISION).to(ACC)
        b_ai += _conv3(b_hl, b_hm, b_hr, b_w0i, b_w1i, b_w2i, PRECISION).to(ACC)
        b_ag += _conv3(b_hl, b_hm, b_hr, b_w0g, b_w1g, b_w2g, PRECISION).to(ACC)

        b_c = tl.sigmoid(b_af) * b_c + tl.sigmoid(b_ai) * _tanh(b_ag)
        # padded columns/units must keep h = 0 (they feed column W-1's conv): c = 0 gives h = 0 there
        b_c = tl.where(m_ju, b_c, 0.0)
        b_h = tl.sigmoid(b_ao) * _tanh(b_c)
        tl.store(h_ptr + o_h + i * stride_hh, b_h.to(h_ptr.dtype.element_ty), mask=m_ju)
        tl.store(c_ptr + o_h + i * stride_hh, b_c.to(c_ptr.dtype.element_ty), mask=m_ju)


@triton.jit
def _row_lstm_bwd_kernel(
    x_ptr, w_ptr, h_ptr, c_ptr, dh_ptr, dx_ptr,
    H, W, HID,
    stride_xb, stride_xc, stride_xh, stride_xw,
    stride_wo, stride_wi, stride_wk,
    stride_hb, stride_hc, stride_hh, stride_hw,
    stride_dhb, stride_dhc, stride_dhh, stride_dhw,
    stride_dxb, stride_dxc, stride_dxh, stride_dxw,
    BW: tl.constexpr, BH: tl.constexpr, RESIDENT: tl.constexpr,
    ACC: tl.constexpr, PRECISION: tl.constexpr,
):
    i_b = tl.program_id(0)
    DOT = w_ptr.dtype.element_ty
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

    o_x = i_b * stride_xb + o_j[:, None] * stride_xw + o_u[None, :] * stride_xc  # [BW, BH]
    o_h = i_b * stride_hb + o_j[:, None] * stride_hw + o_u[None, :] * stride_hc  # [BW, BH]
    o_dh = i_b * stride_dhb + o_j[:, None] * stride_dhw + o_u[None, :] * stride_dhc  # [BW, BH]
    o_dx = i_b * stride_dxb + o_j[:, None] * stride_dxw + o_u[None, :] * stride_dxc  # [BW, BH]
    if RESIDENT:
        b_w0o, b_w1o, b_w2o = _load_w3(w_ptr, o_u, o_u, m_vu, 0, HID, stride_wo, stride_wi, stride_wk)
        b_w0f, b_w1f, b_w2f = _load_w3(w_ptr, o_u, o_u, m_vu, 1, HID, stride_wo, stride_wi, stride_wk)
        b_w0i, b_w1i, b_w2i = _load_w3(w_ptr, o_u, o_u, m_vu, 2, HID, stride_wo, stride_wi, stride_wk)
        b_w0g, b_w1g, b_w2g = _load_w3(w_ptr, o_u, o_u, m_vu, 3, HID, stride_wo, stride_wi, stride_wk)

    b_dh_rec = tl.zeros([BW, BH], dtype=ACC)  # conv1d^T of row i+1's d gates
    b_dc = tl.zeros([BW, BH], dtype=ACC)  # dc_i carried from row i+1 (times f_{i+1})
    for t in range(0, H):
        i = H - 1 - t
        if not RESIDENT:
            b_w0o, b_w1o, b_w2o = _load_w3(w_ptr, o_u, o_u, m_vu, 0, HID, stride_wo, stride_wi, stride_wk)
            b_w0f, b_w1f, b_w2f = _load_w3(w_ptr, o_u, o_u, m_vu, 1, HID, stride_wo, stride_wi, stride_wk)
            b_w0i, b_w1i, b_w2i = _load_w3(w_ptr, o_u, o_u, m_vu, 2, HID, stride_wo, stride_wi, stride_wk)
            b_w0g, b_w1g, b_w2g = _load_w3(w_ptr, o_u, o_u, m_vu, 3, HID, stride_wo, stride_wi, stride_wk)
        # recompute the pre-activations of row i from the saved h_{i-1} (independent of the chain)
        m_prev = tl.full([BW, BH], i, dtype=tl.int32) > 0  # [BW, BH] row i-1 exists
        p_hp = h_ptr + o_h + (i - 1) * stride_hh
        b_hm = tl.load(p_hp, mask=m_ju & m_prev, other=0.0).to(DOT)  # [BW, BH]
        b_hl = tl.load(p_hp - stride_hw, mask=m_jl & m_prev, other=0.0).to(DOT)
        b_hr = tl.load(p_hp + stride_hw, mask=m_jr & m_prev, other=0.0).to(DOT)
        p_x = x_ptr + o_x + i * stride_xh
        b_ao = tl.load(p_x + 0 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)
        b_af = tl.load(p_x + 1 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)
        b_ai = tl.load(p_x + 2 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)
        b_ag = tl.load(p_x + 3 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)
        b_o = tl.sigmoid(b_ao + _conv3(b_hl, b_hm, b_hr, b_w0o, b_w1o, b_w2o, PRECISION).to(ACC))
        b_f = tl.sigmoid(b_af + _conv3(b_hl, b_hm, b_hr, b_w0f, b_w1f, b_w2f, PRECISION).to(ACC))
        b_i = tl.sigmoid(b_ai + _conv3(b_hl, b_hm, b_hr, b_w0i, b_w1i, b_w2i, PRECISION).to(ACC))
        b_g = _tanh(b_ag + _conv3(b_hl, b_hm, b_hr, b_w0g, b_w1g, b_w2g, PRECISION).to(ACC))
        b_c = tl.load(c_ptr + o_h + i * stride_hh, mask=m_ju, other=0.0).to(ACC)
        b_cp = tl.load(c_ptr + o_h + (i - 1) * stride_hh, mask=m_ju & m_prev, other=0.0).to(ACC)

        # the chain: dh_i -> d gates_i -> (dc_{i-1}, dh_{i-1})
        b_dh = tl.load(dh_ptr + o_dh + i * stride_dhh, mask=m_ju, other=0.0).to(ACC) + b_dh_rec
        b_dh = tl.where(m_ju, b_dh, 0.0)
        b_tc = _tanh(b_c)
        b_dc = tl.where(m_ju, b_dc + b_dh * b_o * (1.0 - b_tc * b_tc), 0.0)
        b_dao = b_dh * b_tc * b_o * (1.0 - b_o)
        b_daf = b_dc * b_cp * b_f * (1.0 - b_f)
        b_dai = b_dc * b_g * b_i * (1.0 - b_i)
        b_dag = b_dc * b_i * (1.0 - b_g * b_g)
        b_dc = b_dc * b_f
        p_dx = dx_ptr + o_dx + i * stride_dxh
        DX = dx_ptr.dtype.element_ty
        tl.store(p_dx + 0 * HID * stride_dxc, b_dao.to(DX), mask=m_ju)
        tl.store(p_dx + 1 * HID * stride_dxc, b_daf.to(DX), mask=m_ju)
        tl.store(p_dx + 2 * HID * stride_dxc, b_dai.to(DX), mask=m_ju)
        tl.store(p_dx + 3 * HID * stride_dxc, b_dag.to(DX), mask=m_ju)

        # dh_{i-1}[j] = Q0[j+1] + Q1[j] + Q2[j-1],  Qk = sum_X d gates_X @ W_kX^T
        b_dao, b_daf, b_dai, b_dag = b_dao.to(DOT), b_daf.to(DOT), b_dai.to(DOT), b_dag.to(DOT)
        b_q0 = _conv3_t(b_dao, b_daf, b_dai, b_dag, b_w0o, b_w0f, b_w0i, b_w0g, PRECISION).to(ACC)
        b_q1 = _conv3_t(b_dao, b_daf, b_dai, b_dag, b_w1o, b_w1f, b_w1i, b_w1g, PRECISION).to(ACC)
        b_q2 = _conv3_t(b_dao, b_daf, b_dai, b_dag, b_w2o, b_w2f, b_w2i, b_w2g, PRECISION).to(ACC)
        b_dh_rec = b_q1 + tl.dot(b_sr, b_q0, input_precision="ieee") + tl.dot(b_sl, b_q2, input_precision="ieee")


@triton.jit
def _load_wt(p_w, o_g, o_s, m_gs, gate, k, HID, stride_wo, stride_wi, stride_wk):
    # [BK(g), BU(s)] = state_weight[gate*HID + g, s, 0, k]  (the transposed conv's operand)
    p = p_w + (gate * HID + o_g[:, None]) * stride_wo + o_s[None, :] * stride_wi + k * stride_wk
    return tl.load(p, mask=m_gs, other=0.0)


@triton.jit
def _row_lstm_fwd_tiled_kernel(
    x_ptr, w_ptr, h_ptr, c_ptr,
    H, W, HID,
    stride_xb, stride_xc, stride_xh, stride_xw,
    stride_wo, stride_wi, stride_wk,
    stride_hb, stride_hc, stride_hh, stride_hw,
    BJ: tl.constexpr, BU: tl.constexpr, BK: tl.constexpr,
    ACC: tl.constexpr, PRECISION: tl.constexpr,
):
    # Large h or W: row i-1's h and c are re-read from the h / c outputs (L2: .cg loads skip the
    # non-coherent L1) in (column, unit) tiles; a CTA barrier ends every row so that row i sees all
    # of row i-1's stores.
    i_b = tl.program_id(0)
    for i in range(0, H):
        for j0 in range(0, W, BJ):
            o_j = j0 + tl.arange(0, BJ)
            m_j = o_j < W
            m_prev = tl.full([BJ], i, dtype=tl.int32) > 0  # [BJ] row i-1 exists
            m_jm = m_j & m_prev
            m_jl = m_jm & (o_j >= 1)  # column j-1 exists
            m_jr = m_prev & (o_j + 1 < W)  # column j+1 exists
            for u0 in range(0, HID, BU):
                o_u = u0 + tl.arange(0, BU)
                m_u = o_u < HID
                m_ju = m_j[:, None] & m_u[None, :]  # [BJ, BU]
                p_x = x_ptr + i_b * stride_xb + i * stride_xh + o_j[:, None] * stride_xw + o_u[None, :] * stride_xc
                b_ao = tl.load(p_x + 0 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)  # [BJ, BU]
                b_af = tl.load(p_x + 1 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)
                b_ai = tl.load(p_x + 2 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)
                b_ag = tl.load(p_x + 3 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)
                for v0 in range(0, HID, BK):
                    o_v = v0 + tl.arange(0, BK)
                    m_v = o_v < HID
                    m_vu = m_v[:, None] & m_u[None, :]  # [BK, BU]
                    p_h = h_ptr + i_b * stride_hb + (i - 1) * stride_hh
                    p_h += o_j[:, None] * stride_hw + o_v[None, :] * stride_hc  # [BJ, BK]
                    b_hm = tl.load(p_h, mask=m_jm[:, None] & m_v[None, :], other=0.0, cache_modifier=".cg")  # [BJ, BK]
                    b_hl = tl.load(p_h - stride_hw, mask=m_jl[:, None] & m_v[None, :], other=0.0, cache_modifier=".cg")
                    b_hr = tl.load(p_h + stride_hw, mask=m_jr[:, None] & m_v[None, :], other=0.0, cache_modifier=".cg")
                    w0, w1, w2 = _load_w3(w_ptr, o_v, o_u, m_vu, 0, HID, stride_wo, stride_wi, stride_wk)
                    b_ao += _conv3(b_hl, b_hm, b_hr, w0, w1, w2, PRECISION).to(ACC)
                    w0, w1, w2 = _load_w3(w_ptr, o_v, o_u, m_vu, 1, HID, stride_wo, stride_wi, stride_wk)
                    b_af += _conv3(b_hl, b_hm, b_hr, w0, w1, w2, PRECISION).to(ACC)
                    w0, w1, w2 = _load_w3(w_ptr, o_v, o_u, m_vu, 2, HID, stride_wo, stride_wi, stride_wk)
                    b_ai += _conv3(b_hl, b_hm, b_hr, w0, w1, w2, PRECISION).to(ACC)
                    w0, w1, w2 = _load_w3(w_ptr, o_v, o_u, m_vu, 3, HID, stride_wo, stride_wi, stride_wk)
                    b_ag += _conv3(b_hl, b_hm, b_hr, w0, w1, w2, PRECISION).to(ACC)
                o_hc = i_b * stride_hb + o_j[:, None] * stride_hw + o_u[None, :] * stride_hc  # [BJ, BU]
                b_cp = tl.load(
                    c_ptr + o_hc + (i - 1) * stride_hh, mask=m_ju & m_prev[:, None], other=0.0, cache_modifier=".cg"
                ).to(ACC)
                b_c = tl.sigmoid(b_af) * b_cp + tl.sigmoid(b_ai) * _tanh(b_ag)
                b_h = tl.sigmoid(b_ao) * _tanh(b_c)
                tl.store(h_ptr + o_hc + i * stride_hh, b_h.to(h_ptr.dtype.element_ty), mask=m_ju)
                tl.store(c_ptr + o_hc + i * stride_hh, b_c.to(c_ptr.dtype.element_ty), mask=m_ju)
        tl.debug_barrier()


@triton.jit
def _row_lstm_bwd_tiled_kernel(
    x_ptr, w_ptr, h_ptr, c_ptr, dh_ptr, dx_ptr, dc_ptr,
    H, W, HID,
    stride_xb, stride_xc, stride_xh, stride_xw,
    stride_wo, stride_wi, stride_wk,
    stride_hb, stride_hc, stride_hh, stride_hw,
    stride_dhb, stride_dhc, stride_dhh, stride_dhw,
    stride_dxb, stride_dxc, stride_dxh, stride_dxw,
    stride_dcs, stride_dcb, stride_dcc, stride_dcw,
    BJ: tl.constexpr, BU: tl.constexpr, BK: tl.constexpr,
    ACC: tl.constexpr, PRECISION: tl.constexpr,
):
    # dc_ptr: (2, B, h, W) scratch for the carried dc, double-buffered by step parity (no
    # read-after-write within a step); row i+1's d gates are re-read from dx. Both are written
    # by this kernel, so they are read with .cg (from L2); a CTA barrier ends every row.
    i_b = tl.program_id(0)
    for t in range(0, H):
        i = H - 1 - t
        for j0 in range(0, W, BJ):
            o_j = j0 + tl.arange(0, BJ)
            m_j = o_j < W
            m_prev = tl.full([BJ], i, dtype=tl.int32) > 0  # [BJ] row i-1 exists
            m_next = tl.full([BJ], t, dtype=tl.int32) > 0  # [BJ] row i+1 exists
            m_jl = m_j & (o_j >= 1)  # column j-1 exists
            m_jr = o_j + 1 < W  # column j+1 exists
            for u0 in range(0, HID, BU):
                o_u = u0 + tl.arange(0, BU)
                m_u = o_u < HID
                m_ju = m_j[:, None] & m_u[None, :]  # [BJ, BU]
                # recompute row i's pre-activations from the saved h_{i-1}
                p_x = x_ptr + i_b * stride_xb + i * stride_xh + o_j[:, None] * stride_xw + o_u[None, :] * stride_xc
                b_ao = tl.load(p_x + 0 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)  # [BJ, BU]
                b_af = tl.load(p_x + 1 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)
                b_ai = tl.load(p_x + 2 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)
                b_ag = tl.load(p_x + 3 * HID * stride_xc, mask=m_ju, other=0.0).to(ACC)
                # and the recurrent dh_i = conv1d^T(d gates_{i+1}) for state units o_u
                b_dh = tl.zeros([BJ, BU], dtype=ACC)
                for v0 in range(0, HID, BK):
                    o_v = v0 + tl.arange(0, BK)
                    m_v = o_v < HID
                    m_vu = m_v[:, None] & m_u[None, :]  # [BK, BU]
                    p_h = h_ptr + i_b * stride_hb + (i - 1) * stride_hh
                    p_h += o_j[:, None] * stride_hw + o_v[None, :] * stride_hc  # [BJ, BK]
                    b_hm = tl.load(p_h, mask=(m_j & m_prev)[:, None] & m_v[None, :], other=0.0)  # [BJ, BK]
                    b_hl = tl.load(p_h - stride_hw, mask=(m_jl & m_prev)[:, None] & m_v[None, :], other=0.0)
                    b_hr = tl.load(p_h + stride_hw, mask=(m_jr & m_prev)[:, None] & m_v[None, :], other=0.0)
                    w0, w1, w2 = _load_w3(w_ptr, o_v, o_u, m_vu, 0, HID, stride_wo, stride_wi, stride_wk)
                    b_ao += _conv3(b_hl, b_hm, b_hr, w0, w1, w2, PRECISION).to(ACC)
                    w0, w1, w2 = _load_w3(w_ptr, o_v, o_u, m_vu, 1, HID, stride_wo, stride_wi, stride_wk)
                    b_af += _conv3(b_hl, b_hm, b_hr, w0, w1, w2, PRECISION).to(ACC)
                    w0, w1, w2 = _load_w3(w_ptr, o_v, o_u, m_vu, 2, HID, stride_wo, stride_wi, stride_wk)
                    b_ai += _conv3(b_hl, b_hm, b_hr, w0, w1, w2, PRECISION).to(ACC)
                    w0, w1, w2 = _load_w3(w_ptr, o_v, o_u, m_vu, 3, HID, stride_wo, stride_wi, stride_wk)
                    b_ag += _conv3(b_hl, b_hm, b_hr, w0, w1, w2, PRECISION).to(ACC)
                    # dh_i[j, s] = sum_X da_X[j+1] W[X, s, 0] + da_X[j] W[X, s, 1] + da_X[j-1] W[X, s, 2]
                    p_d = dx_ptr + i_b * stride_dxb + (i + 1) * stride_dxh
                    p_d += o_j[:, None] * stride_dxw + o_v[None, :] * stride_dxc  # [BJ, BK]
                    m_d0 = (m_jr & m_next)[:, None] & m_v[None, :]  # [BJ, BK] column j+1 of row i+1
                    m_d1 = (m_j & m_next)[:, None] & m_v[None, :]
                    m_d2 = (m_jl & m_next)[:, None] & m_v[None, :]
                    for gate in tl.static_range(4):
                        p_dg = p_d + gate * HID * stride_dxc
                        b_d0 = tl.load(p_dg + stride_dxw, mask=m_d0, other=0.0, cache_modifier=".cg")  # [BJ, BK]
                        b_d1 = tl.load(p_dg, mask=m_d1, other=0.0, cache_modifier=".cg")
                        b_d2 = tl.load(p_dg - stride_dxw, mask=m_d2, other=0.0, cache_modifier=".cg")
                        w0 = _load_wt(w_ptr, o_v, o_u, m_vu, gate, 0, HID, stride_wo, stride_wi, stride_wk)
                        w1 = _load_wt(w_ptr, o_v, o_u, m_vu, gate, 1, HID, stride_wo, stride_wi, stride_wk)
                        w2 = _load_wt(w_ptr, o_v, o_u, m_vu, gate, 2, HID, stride_wo, stride_wi, stride_wk)
                        b_dh += _conv3(b_d0, b_d1, b_d2, w0, w1, w2, PRECISION).to(ACC)
                b_o = tl.sigmoid(b_ao)
                b_f = tl.sigmoid(b_af)
                b_i = tl.sigmoid(b_ai)
                b_g = _tanh(b_ag)
                o_hc = i_b * stride_hb + o_j[:, None] * stride_hw + o_u[None, :] * stride_hc  # [BJ, BU]
                b_c = tl.load(c_ptr + o_hc + i * stride_hh, mask=m_ju, other=0.0).to(ACC)
                b_cp = tl.load(c_ptr + o_hc + (i - 1) * stride_hh, mask=m_ju & m_prev[:, None], other=0.0).to(ACC)
                o_dc = i_b * stride_dcb + o_j[:, None] * stride_dcw + o_u[None, :] * stride_dcc  # [BJ, BU]
                p_dc = dc_ptr + o_dc + (t % 2) * stride_dcs
                b_dc = tl.load(p_dc, mask=m_ju & m_next[:, None], other=0.0, cache_modifier=".cg")
                o_dy = i_b * stride_dhb + i * stride_dhh + o_j[:, None] * stride_dhw + o_u[None, :] * stride_dhc
                b_dh += tl.load(dh_ptr + o_dy, mask=m_ju, other=0.0).to(ACC)

                b_tc = _tanh(b_c)
                b_dc += b_dh * b_o * (1.0 - b_tc * b_tc)
                DX = dx_ptr.dtype.element_ty
                p_dx = dx_ptr + i_b * stride_dxb + i * stride_dxh
                p_dx += o_j[:, None] * stride_dxw + o_u[None, :] * stride_dxc  # [BJ, BU]
                tl.store(p_dx + 0 * HID * stride_dxc, (b_dh * b_tc * b_o * (1.0 - b_o)).to(DX), mask=m_ju)
                tl.store(p_dx + 1 * HID * stride_dxc, (b_dc * b_cp * b_f * (1.0 - b_f)).to(DX), mask=m_ju)
                tl.store(p_dx + 2 * HID * stride_dxc, (b_dc * b_g * b_i * (1.0 - b_i)).to(DX), mask=m_ju)
                tl.store(p_dx + 3 * HID * stride_dxc, (b_dc * b_i * (1.0 - b_g * b_g)).to(DX), mask=m_ju)
                tl.store(dc_ptr + o_dc + ((t + 1) % 2) * stride_dcs, b_dc * b_f, mask=m_ju)
        tl.debug_barrier()


@triton.jit
def _row_lstm_dw_kernel(
    dx_ptr, h_ptr, dwp_ptr,
    N, H, W, HID, CHUNK,
    stride_dxb, stride_dxc, stride_dxh, stride_dxw,
    stride_hb, stride_hc, stride_hh, stride_hw,
    stride_ps, stride_po, stride_pi, stride_pk,
    BM: tl.constexpr, BN: tl.constexpr, BP: tl.constexpr, ACC: tl.constexpr, PRECISION: tl.constexpr,
):
    # partial[s, m, n, k] = sum over pixels p of split s: dgates[m, p] * h[n, row(p)-1, col(p)+k-1]
    i_mn, k, i_s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    n_tiles = tl.cdiv(HID, BN)
    i_m, i_n = i_mn // n_tiles, i_mn % n_tiles
    DOT = h_ptr.dtype.element_ty
    o_m = i_m * BM + tl.arange(0, BM)
    o_n = i_n * BN + tl.arange(0, BN)
    m_m = o_m < 4 * HID
    m_n = o_n < HID
    b_acc = tl.zeros([BM, BN], dtype=ACC)  # [BM, BN]
    p_start = i_s * CHUNK
    for p0 in range(p_start, p_start + CHUNK, BP):
        o_p = p0 + tl.arange(0, BP)
        m_p = (o_p < N) & (o_p < p_start + CHUNK)
        o_b = o_p // (H * W)
        o_i = (o_p // W) % H
        o_jj = o_p % W + k - 1  # the column of h_{i-1} paired with tap k
        o_pix = o_b * stride_dxb + o_i * stride_dxh + (o_p % W) * stride_dxw  # [BP]
        p_dx = dx_ptr + o_m[:, None] * stride_dxc + o_pix[None, :]
        b_dx = tl.load(p_dx, mask=m_m[:, None] & m_p[None, :], other=0.0).to(DOT)  # [BM, BP]
        m_h = m_p & (o_i >= 1) & (o_jj >= 0) & (o_jj < W)
        p_h = h_ptr + (o_b * stride_hb + (o_i - 1) * stride_hh + o_jj * stride_hw)[:, None] + o_n[None, :] * stride_hc
        b_h = tl.load(p_h, mask=m_h[:, None] & m_n[None, :], other=0.0)  # [BP, BN]
        b_acc += tl.dot(b_dx, b_h, input_precision=PRECISION)
    p_out = dwp_ptr + i_s * stride_ps + o_m[:, None] * stride_po + o_n[None, :] * stride_pi + k * stride_pk
    tl.store(p_out, b_acc, mask=m_m[:, None] & m_n[None, :])


def _block(n: int) -> int:
    """Power-of-two block >= n and >= 16 (tl.dot's smallest tile on GPUs)."""
    return max(16, triton.next_power_of_2(n))


def _precision(dtype: torch.dtype) -> str:
    # float32/float64 parity with the reference needs IEEE dots (no TF32); ignored for 16-bit inputs
    return "ieee" if dtype in (torch.float32, torch.float64) else "tf32"


def _acc_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _num_warps() -> int:
    # 4 warps: the compile check in docs/kernels.md found 8 no better for the tiled kernels; the
    # resident variant's largest row block (32 x 32) is 1,024 elements
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


# (BJ columns, BU state units, BK reduction units) of the tiled variant at most, by element size:
# 16-bit dots run on tensor cores; IEEE float32 dots run on FMAs and spill at 32-wide tiles (sm_90
# compile: 6,336 B/thread at (32, 32, 32), 16 B at (16, 16, 16)). Tests shrink them below 16 (the
# interpreter only) to run several tiles per row on tiny shapes.
TILED_MAX_TILES = {2: (32, 32, 32), 4: (16, 16, 16), 8: (16, 16, 16)}


def _tiles(width: int, hid: int, dtype: torch.dtype) -> tuple[int, int, int]:
    bj, bu, bk = TILED_MAX_TILES[dtype.itemsize]
    return min(bj, _block(width)), min(bu, _block(hid)), min(bk, _block(hid))


def row_lstm_forward(input_gates: torch.Tensor, state_weight: torch.Tensor, *, variant: str | None = None):
    """Forward scan. input_gates (B, 4h, H, W), state_weight (4h, h, 1, 3)
    -> h (B, h, H, W) in the input dtype, c (B, h, H, W) in float32 (float64 for float64 inputs).

    ``variant`` ('resident', 'registers', 'tiled'; see :func:`_variant`) forces a kernel variant;
    None picks by size.
    """
    batch, four_h, height, width = input_gates.shape
    hid = four_h // 4
    acc_torch = torch.float64 if input_gates.dtype == torch.float64 else torch.float32
    h = torch.empty(batch, hid, height, width, device=input_gates.device, dtype=input_gates.dtype)
    c = torch.empty(batch, hid, height, width, device=input_gates.device, dtype=acc_torch)
    if h.numel() == 0:
        return h, c
    x, w = input_gates, state_weight
    args = (
        x, w, h, c,
        height, width, hid,
        x.stride(0), x.stride(1), x.stride(2), x.stride(3),
        w.stride(0), w.stride(1), w.stride(3),
        h.stride(0), h.stride(1), h.stride(2), h.stride(3),
    )
    meta = dict(ACC=_acc_dtype(x.dtype), PRECISION=_precision(x.dtype))
    variant = _variant(width, hid, w.dtype, variant)
    if variant == "tiled":
        bj, bu, bk = _tiles(width, hid, w.dtype)
        _row_lstm_fwd_tiled_kernel[(batch,)](
            *args, BJ=bj, BU=bu, BK=bk, **meta, num_warps=_num_warps(), num_stages=1
        )
    else:
        bw, bh = _block(width), _block(hid)
        _row_lstm_fwd_kernel[(batch,)](
            *args, BW=bw, BH=bh, RESIDENT=variant == "resident", **meta, num_warps=_num_warps()
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
):
    """Backward of :func:`row_lstm_forward` given h, c (its outputs) and grad_h (B, h, H, W)
    -> (d input_gates (B, 4h, H, W), d state_weight (4h, h, 1, 3) or None)."""
    batch, four_h, height, width = input_gates.shape
    hid = four_h // 4
    dx = torch.empty(batch, four_h, height, width, device=input_gates.device, dtype=input_gates.dtype)
    if dx.numel() == 0:
        dw = torch.zeros_like(state_weight) if need_weight_grad else None
        return dx, dw
    x, w, dy = input_gates, state_weight, grad_h
    args = (
        x.stride(0), x.stride(1), x.stride(2), x.stride(3),
        w.stride(0), w.stride(1), w.stride(3),
        h.stride(0), h.stride(1), h.stride(2), h.stride(3),
        dy.stride(0), dy.stride(1), dy.stride(2), dy.stride(3),
        dx.stride(0), dx.stride(1), dx.stride(2), dx.stride(3),
    )
    meta = dict(ACC=_acc_dtype(x.dtype), PRECISION=_precision(x.dtype))
    variant = _variant(width, hid, w.dtype, variant)
    if variant == "tiled":
        bj, bu, bk = _tiles(width, hid, w.dtype)
        dc = torch.empty(2, batch, hid, width, device=x.device, dtype=c.dtype)  # carried dc, 2 buffers
        _row_lstm_bwd_tiled_kernel[(batch,)](
            x, w, h, c, dy, dx, dc,
            height, width, hid,
            *args,
            dc.stride(0), dc.stride(1), dc.stride(2), dc.stride(3),
            BJ=bj, BU=bu, BK=bk, **meta, num_warps=_num_warps(), num_stages=1,
        )
    else:
        bw, bh = _block(width), _block(hid)
        _row_lstm_bwd_kernel[(batch,)](
            x, w, h, c, dy, dx,
            height, width, hid,
            *args,
            BW=bw, BH=bh, RESIDENT=variant == "resident", **meta, num_warps=_num_warps(),
        )
    dw = _state_weight_grad(dx, h, state_weight) if need_weight_grad else None
    return dx, dw


def _state_weight_grad(
    dx: torch.Tensor, h: torch.Tensor, state_weight: torch.Tensor, *, split: int | None = None
) -> torch.Tensor:
    """d state_weight (4h, h, 1, 3) = sum over all pixels of d gates (x) shifted h_{i-1}: split-K GEMM.

    dx: d input_gates (B, 4h, H, W); h: (B, h, H, W). ``split`` (pixel chunks reduced by separate
    programs) defaults to 1 under the interpreter and to enough programs to fill a GPU otherwise."""
    batch, four_h, height, width = dx.shape
    hid = four_h // 4
    n_pix = batch * height * width
    interp = triton_interpreter_enabled()
    bm = min(64, _block(four_h))
    bn = min(64, _block(hid))
    bp = 16 if interp else 64
    tiles = triton.cdiv(four_h, bm) * triton.cdiv(hid, bn)
    # enough programs to fill the GPU, each reducing at least a few BP-chunks of pixels
    if split is None:
        split = 1 if interp else max(1, min(triton.cdiv(n_pix, 4 * bp), triton.cdiv(264, 3 * tiles)))
    chunk = triton.cdiv(triton.cdiv(n_pix, split), bp) * bp
    split = triton.cdiv(n_pix, chunk)
    acc_torch = torch.float64 if dx.dtype == torch.float64 else torch.float32
    partial = torch.empty(split, four_h, hid, 3, device=dx.device, dtype=acc_torch)
    _row_lstm_dw_kernel[(tiles, 3, split)](
        dx, h, partial,
        n_pix, height, width, hid, chunk,
        dx.stride(0), dx.stride(1), dx.stride(2), dx.stride(3),
        h.stride(0), h.stride(1), h.stride(2), h.stride(3),
        partial.stride(0), partial.stride(1), partial.stride(2), partial.stride(3),
        BM=bm, BN=bn, BP=bp, ACC=_acc_dtype(dx.dtype), PRECISION=_precision(dx.dtype),
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
    acc = torch.float64 if input_gates.dtype == torch.float64 else torch.float32
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
