"""Fused discretized-mixture-of-logistics NLL (PixelCNN++): loss and gradient in one kernel.

params: (B, P, H, W), any strides (the layout of fastpixel.reference.dmol: K logits, then per colour
K means, K log-scales, K coefficients; grey: K logits, K means, K log-scales); x: (B, C, H, W)
integers. A program owns BN pixels of one image and all BK >= K components of each, in registers:

    pass 1, per colour c:  s = max(raw_s, -7), m = mu + coupling(y of the colours before c in x),
                           a = (y + d - m)/s, b = (y - d - m)/s,
                           log P = logsigmoid(a) + logsigmoid(-b) + log(2d) - s + log f,
                           f = (1 - e^-delta)/delta (its series below delta = 1/2), delta = 2d/s
                           (the edge terms dropped at v = 0 and v = L-1, as in the reference)
             w = log_softmax(logits) + sum_c log P          # [BN, BK]
             loss = -logsumexp_k w                           # [BN]
    pass 2 (when a gradient is wanted), r = exp(w + loss) the responsibilities:
             d logits = pi - r;  per colour, recomputed from the (cached) parameters:
             d mu = r/s (sigma(-a) - sigma(b)),  d raw_s = -r (-a sigma(-a) + b sigma(b) - u delta/(1 - u)) [raw_s >= -7]
             d alpha = d m_G y_R (1 - alpha^2), d beta = d m_B y_R (1 - beta^2), d gamma = d m_B y_G (1 - gamma^2)

in float32 (float64 for float64 params), each of the P gradient maps written once, in the params'
dtype, already divided by the pixel count for "mean". Pass 2 recomputes a colour's terms rather than
keeping the six [BN, BK] tiles of pass 1 alive (registers; the reloads hit L1). The loss is written
per pixel ("none") or as one partial sum per program (float32; float64 for float64 params), added
by one ``torch.sum`` on the device (deterministic, no atomics). The backward multiplies the saved gradient by ``grad_output``
(a second kernel, broadcast over the P maps). Core ``triton.language`` has no log1p or expm1:
log1p is Goldberg's ``log(v) u/(v - 1)``, and f's series stands in for expm1 where it matters.

No autotuning: BN follows from K (BN*BK = 512 per program, 4 warps); the interpreter runs the same config.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastpixel.kernels._common import acc_dtype, check_int32_span, register_autocast_rule, tanh, tl_dtype

REDUCTIONS = ("none", "sum", "mean")  # as fastpixel.reference.dmol (a test holds them equal)
LOG_SCALE_MIN = -7.0  # as fastpixel.reference.dmol.LOG_SCALE_MIN (a test holds them equal)
_LOG_SCALE_MIN = tl.constexpr(LOG_SCALE_MIN)  # the same, as a global the kernels may read
# BN pixels x BK components per program, 4 per thread: at the CIFAR preset (K = 10 -> BK = 16) the
# forward kernel compiles for sm_90 to ~105 registers, no spills, 128-bit (fp32) / 64-bit (bf16) loads
# of the params; 1024 per 4 warps spilled 596 bytes (``python -m bench.dmol --static``).
BLOCK_ELEMS = 512
NUM_WARPS = 4
MAX_MIXTURES = 256


@triton.jit
def _log1p(u):
    # log(1 + u) for u >= 0 to full precision (Goldberg): log(v) * u / (v - 1), v = 1 + u rounded
    v = 1.0 + u
    v_safe = tl.where(v == 1.0, 2.0, v)  # the unused side stays finite
    return tl.where(v == 1.0, u, tl.log(v_safe) * (u / (v_safe - 1.0)))


@triton.jit
def _one_minus_exp_over(d):
    # (1 - e^-d)/d = 1 - d/2 (1 - d/3 (1 - d/4 (...))) for 0 <= d <= 1/2, to d^15/16! (< 2e-18):
    # divisions by exact integers, so float64 keeps float64 precision
    t = 1.0 - d / 16.0
    t = 1.0 - d / 15.0 * t
    t = 1.0 - d / 14.0 * t
    t = 1.0 - d / 13.0 * t
    t = 1.0 - d / 12.0 * t
    t = 1.0 - d / 11.0 * t
    t = 1.0 - d / 10.0 * t
    t = 1.0 - d / 9.0 * t
    t = 1.0 - d / 8.0 * t
    t = 1.0 - d / 7.0 * t
    t = 1.0 - d / 6.0 * t
    t = 1.0 - d / 5.0 * t
    t = 1.0 - d / 4.0 * t
    t = 1.0 - d / 3.0 * t
    return 1.0 - d / 2.0 * t


@triton.jit
def _logsigmoid(z):
    return tl.minimum(z, 0.0) - _log1p(tl.exp(-tl.abs(z)))


@triton.jit
def _sigmoid_neg(z):
    # sigmoid(-z) = 1/(1 + e^z) = e^-z/(1 + e^-z), each form where its exp cannot overflow
    e = tl.exp(-tl.abs(z))
    return tl.where(z > 0, e / (1.0 + e), 1.0 / (1.0 + e))


@triton.jit
def _colour(b_mu, b_raw_s, b_v, b_shift, two_over, half, log_2d, L):
    # one colour of BN pixels x BK components: b_mu, b_raw_s [BN, BK]; b_v [BN] value indices;
    # b_shift [BN, BK] the coupling added to the mean. Returns the pieces both passes need.
    b_y = b_v.to(b_mu.dtype) * two_over - 1.0  # [BN]
    b_s = tl.maximum(b_raw_s, _LOG_SCALE_MIN)  # rule 1 of the reference
    b_inv = tl.exp(-b_s)
    b_q = (b_y[:, None] - (b_mu + b_shift)) * b_inv  # [BN, BK]
    b_a = b_q + half * b_inv
    b_b = b_q - half * b_inv
    m_top = (b_v == L - 1)[:, None]
    m_bot = (b_v == 0)[:, None]
    b_delta = 2.0 * half * b_inv
    b_u = tl.exp(-tl.minimum(b_delta, 80.0))  # e^-delta (0 to rounding beyond 80)
    # f = (1 - e^-delta)/delta: below delta = 1/2 by its series (1 - u cancels there; on sm_90 tl.exp
    # is ex2.approx.f32, tl.log libdevice's logf); above, 1 - u >= 0.39 and (1 - u)/delta keeps the
    # exp's few-ulp accuracy
    b_f_series = _one_minus_exp_over(tl.minimum(b_delta, 0.5))
    b_f = tl.where(b_delta < 0.5, b_f_series, (1.0 - b_u) / tl.maximum(b_delta, 0.5))
    b_width = log_2d - b_s + tl.log(b_f)
    b_logp = tl.where(m_top, 0.0, _logsigmoid(b_a)) + tl.where(m_bot, 0.0, _logsigmoid(-b_b))
    b_logp += tl.where(m_top | m_bot, 0.0, b_width)
    return b_logp, b_a, b_b, b_s, b_inv, b_u, b_f, b_delta, m_top, m_bot


@triton.jit
def _dmol_fwd_kernel(
    # pointers
    p_p, p_x, p_loss, p_g,
    # sizes
    N, W, K, L,
    # strides
    s_p_b, s_p_c, s_p_h, s_p_w,
    s_x_b, s_x_c, s_x_h, s_x_w,
    s_g_b, s_g_c, s_g_h, s_g_w,
    # meta
    C: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, FLAT: tl.constexpr, ACC: tl.constexpr,
    REDUCE: tl.constexpr, MEAN: tl.constexpr, COMPUTE_GRAD: tl.constexpr,
):
    i_n, i_b = tl.program_id(0), tl.program_id(1)
    i_prog = i_b * tl.num_programs(0) + i_n
    i_b64 = i_b.to(tl.int64)

    o_n = i_n * BN + tl.arange(0, BN)  # [BN] pixel index h*W + w
    o_k = tl.arange(0, BK)  # [BK]
    m_n = o_n < N
    m_k = o_k < K
    m_nk = m_n[:, None] & m_k[None, :]  # [BN, BK]
    if FLAT:
        o_pp = o_n * s_p_w
        o_px = o_n * s_x_w
        o_pg = o_n * s_g_w
    else:
        o_h = o_n // W
        o_w = o_n % W
        o_pp = o_h * s_p_h + o_w * s_p_w
        o_px = o_h * s_x_h + o_w * s_x_w
        o_pg = o_h * s_g_h + o_w * s_g_w
    p_pb = p_p + i_b64 * s_p_b + o_pp[:, None]  # [BN, 1]: channel ch at + ch * s_p_c
    p_xb = p_x + i_b64 * s_x_b + o_px  # [BN]

    Lm1 = (L - 1).to(ACC)
    two_over = 2.0 / Lm1
    half = 1.0 / Lm1
    log_2d = tl.log(2.0 * half)

    # logits -> log pi; padded components get -inf so they vanish from every sum
    b_lg = tl.load(p_pb + o_k[None, :] * s_p_c, mask=m_nk, other=0.0).to(ACC)  # [BN, BK]
    b_lg = tl.where(m_k[None, :], b_lg, float("-inf"))
    b_lmax = tl.max(b_lg, axis=1)  # [BN]
    b_lse_pi = b_lmax + tl.log(tl.sum(tl.exp(b_lg - b_lmax[:, None]), axis=1))
    b_w = b_lg - b_lse_pi[:, None]  # log pi, [BN, BK]

    b_v0 = tl.load(p_xb, mask=m_n, other=0).to(tl.int32)  # [BN]
    b_y0 = b_v0.to(ACC) * two_over - 1.0
    b_zero = tl.zeros([BN, BK], dtype=ACC)
    if C == 3:
        b_v1 = tl.load(p_xb + s_x_c, mask=m_n, other=0).to(tl.int32)
        b_v2 = tl.load(p_xb + 2 * s_x_c, mask=m_n, other=0).to(tl.int32)
        b_y1 = b_v1.to(ACC) * two_over - 1.0
        # coefficients: colour block c holds its K coefficients at K + 3K*c + 2K
        b_t0 = tanh(tl.load(p_pb + (3 * K + o_k[None, :]) * s_p_c, mask=m_nk, other=0.0).to(ACC))  # alpha
        b_t1 = tanh(tl.load(p_pb + (6 * K + o_k[None, :]) * s_p_c, mask=m_nk, other=0.0).to(ACC))  # beta
        b_t2 = tanh(tl.load(p_pb + (9 * K + o_k[None, :]) * s_p_c, mask=m_nk, other=0.0).to(ACC))  # gamma
        b_sh1 = b_t0 * b_y0[:, None]
        b_sh2 = b_t1 * b_y0[:, None] + b_t2 * b_y1[:, None]
        o_mu0, o_s0 = K, 2 * K
        o_mu1, o_s1 = 4 * K, 5 * K
        o_mu2, o_s2 = 7 * K, 8 * K
    else:
        o_mu0, o_s0 = K, 2 * K

    # pass 1: log P of each colour under each component
    b_mu = tl.load(p_pb + (o_mu0 + o_k[None, :]) * s_p_c, mask=m_nk, other=0.0).to(ACC)
    b_rs = tl.load(p_pb + (o_s0 + o_k[None, :]) * s_p_c, mask=m_nk, other=0.0).to(ACC)
    b_lp, _a, _b, _s, _i, _u, _f, _d, _t, _o = _colour(b_mu, b_rs, b_v0, b_zero, two_over, half, log_2d, L)
    b_w += b_lp
    if C == 3:
        b_mu = tl.load(p_pb + (o_mu1 + o_k[None, :]) * s_p_c, mask=m_nk, other=0.0).to(ACC)
        b_rs = tl.load(p_pb + (o_s1 + o_k[None, :]) * s_p_c, mask=m_nk, other=0.0).to(ACC)
        b_lp, _a, _b, _s, _i, _u, _f, _d, _t, _o = _colour(b_mu, b_rs, b_v1, b_sh1, two_over, half, log_2d, L)
        b_w += b_lp
        b_mu = tl.load(p_pb + (o_mu2 + o_k[None, :]) * s_p_c, mask=m_nk, other=0.0).to(ACC)
        b_rs = tl.load(p_pb + (o_s2 + o_k[None, :]) * s_p_c, mask=m_nk, other=0.0).to(ACC)
        b_lp, _a, _b, _s, _i, _u, _f, _d, _t, _o = _colour(b_mu, b_rs, b_v2, b_sh2, two_over, half, log_2d, L)
        b_w += b_lp
    b_w = tl.where(m_n[:, None], b_w, tl.where(m_k[None, :], 0.0, float("-inf")))  # pixels past N stay finite
    b_wmax = tl.max(b_w, axis=1)  # [BN]
    b_loss = -(b_wmax + tl.log(tl.sum(tl.exp(b_w - b_wmax[:, None]), axis=1)))  # [BN]

    if REDUCE:
        b_part = tl.sum(tl.where(m_n, b_loss, 0.0), axis=0)  # float32 (float64 for float64 params)
        if MEAN:
            b_part = b_part / (N * tl.num_programs(1)).to(ACC)
        tl.store(p_loss + i_prog, b_part)
    else:
        tl.store(p_loss + i_b64 * N + o_n, b_loss, mask=m_n)

    if COMPUTE_GRAD:
        b_scale = 1.0
        if MEAN:
            b_scale = 1.0 / (N * tl.num_programs(1)).to(ACC)
        b_r = tl.exp(b_w + b_loss[:, None])  # responsibilities, [BN, BK]; 0 at padded k
        b_pi = tl.exp(b_lg - b_lse_pi[:, None])
        p_gb = p_g + i_b64 * s_g_b + o_pg[:, None]
        G_TY = p_g.dtype.element_ty
        tl.store(p_gb + o_k[None, :] * s_g_c, ((b_pi - b_r) * b_scale).to(G_TY), mask=m_nk)
        for c in tl.static_range(C):
            if c == 0:
                o_mu, o_s, b_v, b_sh = o_mu0, o_s0, b_v0, b_zero
            elif c == 1:
                o_mu, o_s, b_v, b_sh = o_mu1, o_s1, b_v1, b_sh1
            else:
                o_mu, o_s, b_v, b_sh = o_mu2, o_s2, b_v2, b_sh2
            b_mu = tl.load(p_pb + (o_mu + o_k[None, :]) * s_p_c, mask=m_nk, other=0.0).to(ACC)
            b_rs = tl.load(p_pb + (o_s + o_k[None, :]) * s_p_c, mask=m_nk, other=0.0).to(ACC)
            _lp, b_a, b_b, b_s, b_inv, b_u, b_f, b_delta, m_top, m_bot = _colour(
                b_mu, b_rs, b_v, b_sh, two_over, half, log_2d, L
            )
            b_sna = tl.where(m_top, 0.0, _sigmoid_neg(b_a))  # sigma(-a), 0 at the open top
            b_sb = tl.where(m_bot, 0.0, _sigmoid_neg(-b_b))  # sigma(b), 0 at the open bottom
            b_gm = b_r * b_inv * (b_sna - b_sb) * b_scale  # d loss / d m
            # d log P / d s: -a sigma(-a) + b sigma(b) - delta e^-delta / (1 - e^-delta) = ... - u/f
            b_ds = tl.where(m_top, 0.0, -b_a * b_sna) + tl.where(m_bot, 0.0, b_b * b_sb)
            b_ds += tl.where(m_top | m_bot, 0.0, -b_u / b_f)
            b_gs = tl.where(b_rs >= _LOG_SCALE_MIN, -b_r * b_ds * b_scale, 0.0)
            tl.store(p_gb + (o_mu + o_k[None, :]) * s_g_c, b_gm.to(G_TY), mask=m_nk)
            tl.store(p_gb + (o_s + o_k[None, :]) * s_g_c, b_gs.to(G_TY), mask=m_nk)
            if c == 1:  # alpha (colour 0's coefficient block): m_G = mu_G + alpha y_R
                b_ga = b_gm * b_y0[:, None] * (1.0 - b_t0 * b_t0)
                tl.store(p_gb + (3 * K + o_k[None, :]) * s_g_c, b_ga.to(G_TY), mask=m_nk)
            if c == 2:  # beta, gamma: m_B = mu_B + beta y_R + gamma y_G
                b_gb = b_gm * b_y0[:, None] * (1.0 - b_t1 * b_t1)
                b_gc = b_gm * b_y1[:, None] * (1.0 - b_t2 * b_t2)
                tl.store(p_gb + (6 * K + o_k[None, :]) * s_g_c, b_gb.to(G_TY), mask=m_nk)
                tl.store(p_gb + (9 * K + o_k[None, :]) * s_g_c, b_gc.to(G_TY), mask=m_nk)


@triton.jit
def _dmol_bwd_kernel(
    # pointers
    p_g, p_go, p_dx,
    # sizes
    N, P,
    # strides (g and dx are contiguous (B, P, H*W); grad_output (B, H*W) through its own strides)
    s_go_b, s_go_n,
    # meta
    BN: tl.constexpr, BP: tl.constexpr, SCALAR: tl.constexpr, ACC: tl.constexpr,
):
    i_n, i_p, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b64 = i_b.to(tl.int64)
    o_n = i_n * BN + tl.arange(0, BN)  # [BN]
    o_p = i_p * BP + tl.arange(0, BP)  # [BP]
    m_n = o_n < N
    m = (o_p < P)[:, None] & m_n[None, :]  # [BP, BN]
    if SCALAR:
        b_go = tl.load(p_go).to(ACC) + tl.zeros([BN], dtype=ACC)
    else:
        b_go = tl.load(p_go + i_b64 * s_go_b + o_n * s_go_n, mask=m_n, other=0.0).to(ACC)  # [BN]
    o = i_b64 * P * N + o_p[:, None] * N + o_n[None, :]
    b_g = tl.load(p_g + o, mask=m, other=0.0).to(ACC)  # [BP, BN]
    tl.store(p_dx + o, (b_g * b_go[None, :]).to(p_dx.dtype.element_ty), mask=m)


# -- host side ---------------------------------------------------------------------------------


def _block_shape(k: int, n: int) -> tuple[int, int, int]:
    """(BN pixels, BK components, num_warps): BK = next_pow2(K), BN*BK ~ BLOCK_ELEMS."""
    bk = triton.next_power_of_2(k)
    bn = max(1, min(max(1, BLOCK_ELEMS // bk), triton.next_power_of_2(n)))
    return bn, bk, NUM_WARPS


def _merges(t: torch.Tensor) -> bool:
    """Whether (H, W) of a 4-d tensor merge into one dimension (of stride t.stride(3))."""
    return t.shape[2] == 1 or t.stride(2) == t.shape[3] * t.stride(3)


def dmol_fwd(params: torch.Tensor, x: torch.Tensor, levels: int, k: int, reduction: str, *, compute_grad: bool):
    """One pass: (loss, grad or None). loss: (B, H, W) in promote(params, float32) for "none", else a
    0-dim float32 (float64 for float64 params) tensor; grad: d(reduced loss)/d params, contiguous
    (B, P, H, W) in the params' dtype."""
    b, p, h, w = params.shape
    c = x.shape[1]
    n = h * w
    acc = acc_dtype(params.dtype)
    bn, bk, num_warps = _block_shape(k, n)
    grid = (triton.cdiv(n, bn), b)
    reduce = reduction != "none"
    loss = torch.empty(grid[0] * grid[1] if reduce else (b, h, w), device=params.device, dtype=acc)
    grad = torch.empty((b, p, h, w), device=params.device, dtype=params.dtype) if compute_grad else None
    g = grad if grad is not None else params
    flat = _merges(params) and _merges(x) and _merges(g)

    def hw(t):  # (h, w) strides; with FLAT the w slot holds the merged stride and h is unused
        return (0, t.stride(3)) if flat else (t.stride(2), t.stride(3))

    _dmol_fwd_kernel[grid](
        params, x, loss, g,
        n, w, k, levels,
        params.stride(0), params.stride(1), *hw(params),
        x.stride(0), x.stride(1), *hw(x),
        g.stride(0), g.stride(1), *hw(g),
        C=c, BN=bn, BK=bk, FLAT=flat, ACC=tl_dtype(acc),
        REDUCE=reduce, MEAN=reduction == "mean", COMPUTE_GRAD=compute_grad,
        num_warps=num_warps,
    )  # fmt: skip
    if reduce:
        loss = loss.sum()
    return loss, grad


def dmol_bwd(grad: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    """grad (B, P, H, W) contiguous times grad_output (0-dim, or (B, H, W)), broadcast over P."""
    b, p, h, w = grad.shape
    n = h * w
    scalar = grad_output.ndim == 0
    dx = torch.empty_like(grad)
    if scalar:
        s_go = (0, 0)
    else:
        go = grad_output
        flat = h == 1 or go.stride(1) == w * go.stride(2)
        if not flat:
            go = go.contiguous()
        grad_output, s_go = go, (go.stride(0), go.stride(2))
    bn = min(256, triton.next_power_of_2(n))
    bp = 8
    _dmol_bwd_kernel[(triton.cdiv(n, bn), triton.cdiv(p, bp), b)](
        grad, grad_output, dx,
        n, p,
        *s_go,
        BN=bn, BP=bp, SCALAR=scalar, ACC=tl_dtype(acc_dtype(grad.dtype)),
        num_warps=4,
    )  # fmt: skip
    return dx


# -- registered ops ----------------------------------------------------------------------------
Tensor = torch.Tensor


@torch.library.custom_op("fastpixel::dmol_nll_forward", mutates_args=())
def dmol_nll_forward(
    params: Tensor, x: Tensor, levels: int, num_mixtures: int, reduction: str, compute_grad: bool
) -> tuple[Tensor, Tensor]:
    """-> (loss, grad): loss (B, H, W) for "none" else 0-dim, in promote(params, float32); grad =
    d(loss reduced)/d(params), contiguous, in the params' dtype (an empty (0,) tensor when not compute_grad)."""
    loss, grad = dmol_fwd(params, x, levels, num_mixtures, reduction, compute_grad=compute_grad)
    return loss, (grad if grad is not None else params.new_empty(0))


@dmol_nll_forward.register_fake
def _(params, x, levels, num_mixtures, reduction, compute_grad):
    b, p, h, w = params.shape
    acc = acc_dtype(params.dtype)
    loss = params.new_empty((b, h, w) if reduction == "none" else (), dtype=acc)
    grad = params.new_empty((b, p, h, w)) if compute_grad else params.new_empty(0)
    return loss, grad


@torch.library.custom_op("fastpixel::dmol_nll_backward", mutates_args=())
def dmol_nll_backward(grad: Tensor, grad_output: Tensor) -> Tensor:
    """grad (B, P, H, W) from the forward times grad_output (0-dim, or (B, H, W) for "none") -> a new tensor."""
    return dmol_bwd(grad, grad_output)


@dmol_nll_backward.register_fake
def _(grad, grad_output):
    return torch.empty_like(grad)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(output[1])


def _backward(ctx, grad_loss, _grad_grad):
    (grad,) = ctx.saved_tensors
    if grad.numel() == 0:
        raise RuntimeError("dmol_nll_forward: called with compute_grad=False, it has no gradient")
    return dmol_nll_backward(grad, grad_loss), None, None, None, None, None


dmol_nll_forward.register_autograd(_backward, setup_context=_setup_context)
# Under autocast the params are read in whatever dtype they come (bf16/fp16 included) and every
# formula runs in float32: the op runs with autocast off and returns a float32 loss, as the reference.
register_autocast_rule(dmol_nll_forward, lambda dtype, args: (args, lambda out: out))


def dmol_nll(
    params: torch.Tensor, x: torch.Tensor, levels: int = 256, num_mixtures: int | None = None, reduction: str = "none"
) -> torch.Tensor:
    """Triton twin of :func:`fastpixel.reference.dmol.dmol_nll` (same signature, layout, numbers).

    params: (B, P, H, W) float, any strides; x: (B, C, H, W) integers in [0, levels) (not checked
    here: fastpixel.ops.dmol_nll validates). Returns (B, H, W) for "none", else a 0-dim tensor, in
    promote(params, float32). Runs ``fastpixel::dmol_nll_forward``.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"dmol_nll: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    channels = x.shape[1]
    k = num_mixtures if num_mixtures is not None else params.shape[1] // (10 if channels == 3 else 3)
    if not 1 <= k <= MAX_MIXTURES:
        raise ValueError(f"dmol_nll (triton): num_mixtures must be in [1, {MAX_MIXTURES}], got {k}")
    if x.dtype == torch.bool or x.is_floating_point() or x.is_complex():
        raise TypeError(f"dmol_nll: x must be an integer tensor, got {x.dtype}")
    if params.numel() == 0 or x.numel() == 0:  # nothing to launch; the reference's values (0 sum, NaN mean)
        b, _, h, w = params.shape
        loss = params.new_zeros((b, h, w), dtype=torch.promote_types(params.dtype, torch.float32))
        return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()
    check_int32_span("dmol_nll", params)
    compute_grad = torch.is_grad_enabled() and params.requires_grad
    loss, _ = dmol_nll_forward(params, x, levels, k, reduction, compute_grad)
    return loss
