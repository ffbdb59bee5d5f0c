"""Fast discretized-mixture-of-logistics NLL: the gradient made in the forward pass, in cache-sized blocks.

Same numbers as :func:`fastpixel.reference.dmol.dmol_nll` (exact bin masses, the same stability
rules). Per pixel, with r_k = p(k | x) the posterior responsibility of component k,
q = (y - m)/s, a = q + d/s, b = q - d/s and delta = a - b = 2d/s:

    loss          = -logsumexp_k (log pi_k + sum_c log P_ck)
    log P_ck      = logsigmoid(a) + logsigmoid(-b) + log(1 - e^-delta)   (edge terms dropped at the edges)
    d loss/d logit_k   = pi_k - r_k
    d loss/d mu_ck     = r_k / s * (sigma(-a) - sigma(b))               (= d loss / d m_ck)
    d loss/d raw_s_ck  = r_k * (a sigma(-a) - b sigma(b) + delta e^-delta / (1 - e^-delta)) * [raw_s >= -7]
    d loss/d raw alpha = d loss/d m_1k * y_R * (1 - alpha^2)       (beta: m_2k, y_R; gamma: m_2k, y_G)

The forward computes the loss and, when ``params`` needs a gradient, this gradient at once, one
block of images (or rows) at a time (``BLOCK_ELEMENTS``), so the ~10 live (b, C, K, h, W)
temporaries of a block stay small and cache-resident. log P is one log of a product that can
neither underflow nor lose precision, for any a, b, s:

    log P = log(sigma(|a|) sigma(|b|) f) + min(a, 0) - max(b, 0) + log(2d) - s,   f = (1 - e^-delta)/delta

(sigma(|z|) in [1/2, 1], f in (0, 1] by expm1; the width terms on the interior only), and the log
is taken once per component, of the product over the colours (each factor is at least ~1e-4). The edge
bins enter as a standardised edge of +-1e30 (its sigmoid(|.|), min/max and x*sigmoid(-x) are exactly
the open-ended bin's), so no mask multiplies a product; tanh is 2 sigmoid(2x) - 1 (a CPU's
vectorised sigmoid is ~10x its tanh). What autograd keeps is the gradient (the params' size) and
nothing of (B, H, W, C, K) size; the backward scales it in place and hands it over (see
:class:`DMoLNLL`). Computed in promote(params.dtype, float32); the gradient in the params' dtype.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
from torch.autograd.function import once_differentiable

from fastpixel.fast.guards import reject_batched_gradients
from fastpixel.reference.dmol import LOG_SCALE_MIN, REDUCTIONS

#: Elements of one (b, C, K, h, W) temporary per block (4 images at 32x32x3, K = 10: 480 KiB each in
#: float32; ~9 live at once). Measured at B = 16, one thread, forward+backward thread CPU time
#: (minimum of 21): 2^15 7.3 ms, 2^16 5.4 ms, 2^17 4.95 ms, 2^18 4.93 ms -- per-block overhead
#: (~110 ATen calls) against cache residency; 2^17 keeps the peak extra memory near 0.2x the
#: reference's, 2^18 would not.
BLOCK_ELEMENTS = 1 << 17
#: exp and sigmoid arguments are kept in [-EXP_RANGE, EXP_RANGE]: beyond, a result is 0 or 1 to within
#: e^-80 ~ 1.8e-35 relative (nothing in float32 or float64), and computing it would produce subnormal
#: numbers, which cost a CPU ~10-50x per element (measured: exp of N(0, 100^2) values 13x slower).
EXP_RANGE = 80.0
#: A standardised bin edge "at infinity": logsigmoid(BIG) = sigmoid(-BIG) = BIG*sigmoid(-BIG) = 0.
BIG = 1e30
#: delta = 2d/s is clamped below here (a normal number) inside (1 - e^-delta)/delta, which is 1 there.
TINY_DELTA = {torch.float32: 1e-37, torch.float64: 1e-300}


def _blocks(b: int, h: int, per_row: int):
    """(batch slice, row slice or None for all rows) blocks of about BLOCK_ELEMENTS elements of
    (C*K*W)-sized rows."""
    rows = max(1, BLOCK_ELEMENTS // max(1, per_row))
    if rows >= h:
        images = max(1, rows // h)
        for i in range(0, b, images):
            yield slice(i, min(b, i + images)), None
    else:
        for i in range(b):
            for j in range(0, h, rows):
                yield slice(i, i + 1), slice(j, min(h, j + rows))


def _split(p: torch.Tensor, channels: int, k: int):
    """(logits, means, raw log-scales, raw coefficients or None) views of a (b, P, h, w) block."""
    if channels == 1:
        return p[:, :k], p[:, k : 2 * k].unsqueeze(1), p[:, 2 * k : 3 * k].unsqueeze(1), None
    return (p[:, :k], *p[:, k:].unflatten(1, (3, 3, k)).unbind(2))


def _value_terms(x: torch.Tensor, levels: int, dtype: torch.dtype):
    """Per sub-pixel, (b, C, 1, h, w) unless said: y (b, C, h, w); the open ends as additive offsets
    (BIG at the top, at the bottom), interior as a 0/1 factor and the two width constants -- a broadcast add or
    multiply costs a fraction of a broadcast masked_fill on a CPU. Made per block (small, and then
    never all alive at once)."""
    y = x.to(dtype) * (2.0 / (levels - 1)) - 1.0  # as reference.grid_values
    top, bottom = (x == levels - 1).unsqueeze(2), (x == 0).unsqueeze(2)
    top_big, bottom_big = top.to(dtype) * BIG, bottom.to(dtype) * BIG
    interior = (~(top | bottom)).to(dtype)
    half = 1.0 / (levels - 1)
    # -2d and log(2d) on the interior, 0 at the edges (whose masses have no width factor)
    return y, top_big, bottom_big, interior, interior * (-2.0 * half), interior * math.log(2.0 * half)


def _block(p: torch.Tensor, terms, levels: int, k: int, grad: torch.Tensor | None, scale: float) -> torch.Tensor:
    """Loss (b, h, w) of one block; writes ``scale`` * d loss/d params into ``grad`` (a (b, P, h, w)
    view) when given."""
    dtype = torch.promote_types(p.dtype, torch.float32)
    if p.dtype != dtype:
        p = p.to(dtype)
    y, top_big, bottom_big, interior, neg_width, log_width = terms
    channels = y.shape[1]
    half = 1.0 / (levels - 1)
    logits, mu, raw_s, raw_c = _split(p, channels, k)

    s = raw_s.clamp(min=LOG_SCALE_MIN)  # (b, C, K, h, w)
    inv = s.neg().exp_()  # 1/s
    # log(1 - e^-delta) = log(2d) - s + log f, f = (1 - e^-delta)/delta in (0, 1] by expm1; -delta is
    # clamped at -TINY_DELTA (f = 1 to rounding there: the edges, whose delta is set to 0, and
    # underflowed deltas) and at -EXP_RANGE inside expm1 (e^-delta = 0 to rounding). What the
    # gradient needs of it, delta e^-delta/(1 - e^-delta) = -d width/d s, is made here too, so that
    # delta and expm1's result need not outlive this paragraph.
    nd = torch.mul(inv, neg_width).clamp_(max=-TINY_DELTA[dtype])  # -delta
    em = torch.clamp(nd, min=-EXP_RANGE).expm1_()  # e^-delta - 1, in [-1, 0)
    f = torch.div(em, nd)
    del nd
    gw = em.add_(1.0).div_(f) if grad is not None else None  # e^-delta / f  (em's storage)
    del em
    q = y.unsqueeze(2) - mu  # y - m, the coupling below
    t = None
    if channels == 3:
        # alpha, beta, gamma = tanh(raw) = 2 sig - 1, sig = sigmoid(2 raw) (a CPU's sigmoid is ~10x its
        # tanh): the coupling's -tanh y is -2 sig y + y, and 1 - tanh^2 = 4 sig (1 - sig)
        t = torch.mul(raw_c, 2.0).sigmoid_()
        y_r, y_g = y[:, 0:1], y[:, 1:2]  # (b, 1, h, w)
        sig_alpha, sig_beta, sig_gamma = t.unbind(1)
        _, q_g, q_b = q.unbind(1)
        q_g.addcmul_(sig_alpha, y_r, value=-2.0).add_(y_r)
        q_b.addcmul_(sig_beta, y_r, value=-2.0).addcmul_(sig_gamma, y_g, value=-2.0).add_(y_r).add_(y_g)
        if grad is not None:
            t.addcmul_(t, t, value=-1.0)  # sig (1 - sig) = (1 - tanh^2)/4: the coefficients' gradient
    q.mul_(inv)
    a = torch.add(q, inv, alpha=half).add_(top_big)  # standardised upper edge, BIG at the top bin
    b = q.add_(inv, alpha=-half).sub_(bottom_big)  # lower edge, -BIG at the bottom bin (q's storage)
    # log P = log sigma(a) + log sigma(-b) + log(1 - e^-delta), with log sigma(z) = min(z, 0) + log sigma(|z|)
    # (sigma(|z|) in [1/2, 1]): one log of a product that can neither underflow nor lose precision
    prod = a.abs().clamp_(max=EXP_RANGE).sigmoid_().mul_(b.abs().clamp_(max=EXP_RANGE).sigmoid_()).mul_(f)
    del f
    linear = a.clamp(max=0.0).sub_(b.clamp(min=0.0))
    linear.addcmul_(s, interior, value=-1.0).add_(log_width)  # log(2d) - s, interior only
    del s
    # sum_c log P = log prod_c (the product of C factors each >= ~1e-4: no underflow) + sum_c linear:
    # one log per component instead of one per colour and component
    log_pi = torch.log_softmax(logits, dim=1)  # (b, K, h, w)
    w = prod.prod(dim=1).log_().add_(linear.sum(dim=1)).add_(log_pi)
    del prod, linear
    w_max = w.amax(dim=1, keepdim=True)
    e = w.sub_(w_max).clamp_(min=-EXP_RANGE).exp_()  # (b, K, h, w)
    e_sum = e.sum(dim=1, keepdim=True)
    loss = e_sum.log().add_(w_max).neg_().squeeze(1)  # -logsumexp_k w, (b, h, w)
    if grad is None:
        return loss

    r = e.div_(e_sum)  # responsibilities p(k | x), (b, K, h, w)
    if scale != 1.0:  # 1/N of "mean": every gradient below is linear in r, except pi's term
        r.mul_(scale)
    a.clamp_(max=EXP_RANGE)
    b.clamp_(min=-EXP_RANGE)
    # sigma(-a), sigma(b): ~0 at the open ends; their arguments within +-EXP_RANGE too (a and b keep
    # their values beyond it for the products below, where sigma is 1 to rounding)
    sig_na = torch.neg(a).clamp_(max=EXP_RANGE).sigmoid_()
    sig_b = torch.clamp(b, max=EXP_RANGE).sigmoid_()
    g_logits, g_mu, g_s, g_c = _split(grad, channels, k)
    torch.sub(log_pi.exp_().mul_(scale) if scale != 1.0 else log_pi.exp_(), r, out=g_logits)
    r = r.unsqueeze(1)
    # -d log P / d s = a sigma(-a) - b sigma(b) + delta e^-delta/(1 - e^-delta); d s/d raw = [raw >= -7]
    # (0 from each open end: BIG * sigmoid(-BIG) = 0, and no width term)
    d_s = a.mul_(sig_na).addcmul_(b, sig_b, value=-1.0).addcmul_(gw, interior)
    # [raw >= -7] written straight as 0/1 floats (a bool result then converted costs ~8x as much here),
    # into gw's storage, which has served
    d_s.mul_(torch.ge(raw_s, LOG_SCALE_MIN, out=gw))
    torch.mul(d_s, r, out=g_s)  # d loss / d raw_s = -r d log P / d s
    # d loss / d m = r/s (sigma(-a) - sigma(b))
    direct = g_mu.dtype == dtype  # the gradient map itself can hold the float32/float64 result
    g_m = torch.sub(sig_na, sig_b, out=g_mu) if direct else sig_na.sub_(sig_b)
    g_m.mul_(inv).mul_(r)
    if channels == 3:
        _, g_m_g, g_m_b = g_m.unbind(1)
        g_alpha, g_beta, g_gamma = g_c.unbind(1)
        o_alpha, o_beta, o_gamma = t.unbind(1)  # (1 - tanh^2)/4
        y_r4, y_g4 = y_r * 4.0, y_g * 4.0
        torch.mul(o_alpha, g_m_g, out=g_alpha).mul_(y_r4)
        torch.mul(o_beta, g_m_b, out=g_beta).mul_(y_r4)
        torch.mul(o_gamma, g_m_b, out=g_gamma).mul_(y_g4)
    if not direct:
        g_mu.copy_(g_m)
    return loss


def _forward(
    params: torch.Tensor, x: torch.Tensor, levels: int, k: int, grad: torch.Tensor | None, scale: float = 1.0
) -> torch.Tensor:
    bsz, p, h, w = params.shape
    dtype = torch.promote_types(params.dtype, torch.float32)
    loss = torch.empty((bsz, h, w), dtype=dtype, device=params.device)
    per_row = x.shape[1] * k * w
    with torch.autocast(params.device.type, enabled=False) if params.device.type in ("cpu", "cuda") else nullcontext():
        for ib, ih in _blocks(bsz, h, per_row):
            if ih is None:  # whole images: one slicing call per tensor
                g = grad[ib] if grad is not None else None
                loss[ib] = _block(params[ib], _value_terms(x[ib], levels, dtype), levels, k, g, scale)
            else:
                g = grad[ib, :, ih] if grad is not None else None
                terms = _value_terms(x[ib, :, ih], levels, dtype)
                loss[ib, ih] = _block(params[ib, :, ih], terms, levels, k, g, scale)
    return loss


class DMoLNLL(torch.autograd.Function):
    """autograd.Function of :func:`dmol_nll`; use that function.

    The gradient made in the forward is held as a ctx attribute, not a saved tensor, so the first
    backward can scale it in place and hand it over: it is then the only reference, and autograd's
    gradient accumulation takes it as ``params.grad`` without a copy. The op's whole extra memory is
    the gradient it returns plus one block's temporaries. A second backward through the same graph
    (``retain_graph=True``) recomputes the gradient from the saved params and x.
    """

    @staticmethod
    def forward(ctx, params, x, levels, k, reduction):
        grad = torch.empty_like(params, memory_format=torch.contiguous_format)
        pixels = params.shape[0] * params.shape[2] * params.shape[3]
        ctx.scale = 1.0 / pixels if reduction == "mean" else 1.0  # folded into the gradient's making
        loss = _forward(params, x, levels, k, grad, ctx.scale)
        ctx.grad = grad
        ctx.save_for_backward(params, x)
        ctx.levels, ctx.k, ctx.reduction = levels, k, reduction
        if reduction == "sum":
            return loss.sum()
        if reduction == "mean":
            return loss.mean()
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        reject_batched_gradients("dmol_nll", grad_loss)
        grad, ctx.grad = ctx.grad, None
        if grad is None:  # a second backward: the first one consumed the gradient
            params, x = ctx.saved_tensors
            grad = torch.empty_like(params, memory_format=torch.contiguous_format)
            _forward(params, x, ctx.levels, ctx.k, grad, ctx.scale)
        if ctx.reduction == "none":
            return grad.mul_(grad_loss.unsqueeze(1).to(grad.dtype)), None, None, None, None  # (B, 1, H, W)
        # "sum"/"mean" (1/N already in): a scalar cotangent; loss.backward()'s 1.0 on a CPU tensor
        # is seen without a device sync and spares the pass over the gradient
        if not (grad_loss.device.type == "cpu" and float(grad_loss) == 1.0):
            grad.mul_(grad_loss.to(grad.dtype))
        return grad, None, None, None, None


def dmol_nll(
    params: torch.Tensor, x: torch.Tensor, levels: int = 256, num_mixtures: int | None = None, reduction: str = "none"
) -> torch.Tensor:
    """Fast twin of :func:`fastpixel.reference.dmol.dmol_nll` (same signature, layout and numbers)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    channels = x.shape[1]
    k = num_mixtures if num_mixtures is not None else params.shape[1] // (10 if channels == 3 else 3)
    if torch.is_grad_enabled() and params.requires_grad:
        return DMoLNLL.apply(params, x, levels, k, reduction)
    loss = _forward(params, x, levels, k, None)
    return loss.sum() if reduction == "sum" else loss.mean() if reduction == "mean" else loss
