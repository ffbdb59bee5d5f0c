"""Fused softmax cross-entropy over the pixel levels, in one pass over the logits.

logits: (B, L, C, H, W), any strides (the models' view of the last conv, a transposed or
levels-last tensor: all read in place, never permuted or copied); targets: (B, C, H, W) integers.
A *row* is one sub-pixel (b, c, h, w): its L logits at stride ``logits.stride(1)``. With
S = C*H*W, a program owns BN rows of one image and all BL >= L levels of each, in registers:

    m      = max_l x[l]                       # [BN]
    s      = sum_l exp(x[l] - m)              # [BN]
    loss   = m + log(s) - x[t]                # [BN]   -log softmax(x)[t]
    dx[l]  = scale * (exp(x[l] - m) / s - [l == t])   # [BN, BL]   d loss_sum / d x

in float32 (float64 for float64 logits), so ``p_t - 1`` is formed in float32 and rounded once,
on the store. ``scale`` is 1/N for reduction="mean", else 1. The forward writes the loss (per row
for "none"; else one partial sum per program, added up by one ``torch.sum`` on the device) and,
when the logits need a gradient, dx; the backward only multiplies dx by ``grad_output`` (a second
Triton kernel, broadcast over the levels). With ``inplace_backward=True``, dx is written over the
logits themselves (as Liger-Kernel does): no extra L*N buffer, but the logits' values are gone
after the forward and the graph can be back-propagated once only.

Bad targets (outside [0, L)) never cause an out-of-bounds read: the kernel counts them per
program in a device buffer and writes NaN as their loss and gradient. With ``validate=True`` the
launcher reads the count (one host sync) and raises ValueError; with ``validate=False`` nothing
is read back (no sync: the op can be captured in a CUDA graph) and a bad target shows up as a
NaN loss instead of a silently wrong number.

No autotuning: the block shape follows from L (BN*BL ~ 8192 elements, see ``_block_shape``),
and autotune's replays would clobber the in-place gradient. The interpreter (TRITON_INTERPRET=1)
runs the same single configuration.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from fastpixel.kernels._common import check_int32_span, register_autocast_rule

REDUCTIONS = ("none", "sum", "mean")  # as fastpixel.reference.cross_entropy (a test holds them equal)

MAX_LEVELS = 4096  # all of a row lives in registers; beyond this it would spill
BLOCK_ELEMS = 8192  # logits held per program (BN rows x BL levels)


@triton.jit
def _row_offsets(o_s, H, W, s_c, s_h, s_w, FLAT: tl.constexpr):
    # o_s: [BN] flat sub-pixel index c*H*W + h*W + w within one image
    if FLAT:  # (C, H, W) merge into one dimension of stride s_w
        o_r = o_s * s_w
    else:
        o_c = o_s // (H * W)
        o_h = (o_s // W) % H
        o_w = o_s % W
        o_r = o_c * s_c + o_h * s_h + o_w * s_w
    return o_r


@triton.jit
def _ce_fwd_kernel(
    # pointers
    p_x, p_t, p_loss, p_dx, p_bad,
    # sizes
    S, H, W, L, N,
    # strides
    s_x_b, s_x_l, s_x_c, s_x_h, s_x_w,
    s_t_b, s_t_c, s_t_h, s_t_w,
    s_dx_b, s_dx_l, s_dx_c, s_dx_h, s_dx_w,
    # meta
    BN: tl.constexpr, BL: tl.constexpr, FLAT: tl.constexpr,
    REDUCE: tl.constexpr, MEAN: tl.constexpr, COMPUTE_GRAD: tl.constexpr,
):
    i_s, i_b = tl.program_id(0), tl.program_id(1)
    i_prog = i_b * tl.num_programs(0) + i_s
    i_b64 = i_b.to(tl.int64)
    ACC = p_loss.dtype.element_ty  # float32, or float64 for float64 logits

    o_s = i_s * BN + tl.arange(0, BN)  # [BN]
    o_l = tl.arange(0, BL)  # [BL]
    m_n = o_s < S  # [BN]
    m_l = o_l < L  # [BL]
    m_x = m_n[:, None] & m_l[None, :]  # [BN, BL]

    o_t = _row_offsets(o_s, H, W, s_t_c, s_t_h, s_t_w, FLAT)
    b_t = tl.load(p_t + i_b64 * s_t_b + o_t, mask=m_n, other=0).to(tl.int64)  # [BN]
    m_bad = m_n & ((b_t < 0) | (b_t >= L))  # [BN]

    o_x = _row_offsets(o_s, H, W, s_x_c, s_x_h, s_x_w, FLAT)
    p_xb = p_x + i_b64 * s_x_b + o_x[:, None] + o_l[None, :] * s_x_l
    b_x = tl.load(p_xb, mask=m_x, other=float("-inf")).to(ACC)  # [BN, BL]
    b_x = tl.where(m_n[:, None], b_x, 0.0)  # rows past S stay finite

    b_m = tl.max(b_x, axis=1)  # [BN]
    b_e = tl.exp(b_x - b_m[:, None])  # [BN, BL], 0 at padded levels
    b_sum = tl.sum(b_e, axis=1)  # [BN]
    m_hit = o_l[None, :] == b_t[:, None]  # [BN, BL] one-hot of the target
    b_xt = tl.sum(tl.where(m_hit, b_x, 0.0), axis=1)  # [BN]
    b_loss = b_m + tl.log(b_sum) - b_xt  # [BN]
    b_loss = tl.where(m_bad, float("nan"), b_loss)

    tl.store(p_bad + i_prog, tl.sum(m_bad.to(tl.int32), axis=0))
    if REDUCE:  # one partial sum per program; the host adds them up on the device
        b_part = tl.sum(tl.where(m_n, b_loss, 0.0), axis=0)  # []
        if MEAN:
            b_part = b_part / N
        tl.store(p_loss + i_prog, b_part)
    else:
        tl.store(p_loss + i_b64 * S + o_s, b_loss, mask=m_n)

    if COMPUTE_GRAD:
        b_p = b_e / b_sum[:, None]  # [BN, BL] softmax
        b_g = tl.where(m_hit, b_p - 1.0, b_p)  # p_t - 1 in ACC, before any rounding
        if MEAN:
            b_g = b_g / N  # in ACC: no float32 rounding of 1/N for float64 logits
        b_g = tl.where(m_bad[:, None], float("nan"), b_g)
        o_d = _row_offsets(o_s, H, W, s_dx_c, s_dx_h, s_dx_w, FLAT)
        p_db = p_dx + i_b64 * s_dx_b + o_d[:, None] + o_l[None, :] * s_dx_l
        tl.store(p_db, b_g.to(p_dx.dtype.element_ty), mask=m_x)


@triton.jit
def _ce_bwd_kernel(
    # pointers
    p_g, p_go, p_dx,
    # sizes
    S, H, W, L,
    # strides
    s_g_b, s_g_l, s_g_c, s_g_h, s_g_w,
    s_go_b, s_go_c, s_go_h, s_go_w,
    s_dx_b, s_dx_l, s_dx_c, s_dx_h, s_dx_w,
    # meta
    BN: tl.constexpr, BL: tl.constexpr, FLAT: tl.constexpr, SCALAR: tl.constexpr,
):
    i_s, i_b = tl.program_id(0), tl.program_id(1)
    i_b64 = i_b.to(tl.int64)
    ACC = p_go.dtype.element_ty

    o_s = i_s * BN + tl.arange(0, BN)  # [BN]
    o_l = tl.arange(0, BL)  # [BL]
    m_n = o_s < S  # [BN]
    m_x = m_n[:, None] & (o_l < L)[None, :]  # [BN, BL]

    if SCALAR:  # reduction "sum" / "mean": one grad_output for every row
        b_go = tl.load(p_go).to(ACC)  # []
        b_go = tl.full([BN], 0.0, ACC) + b_go  # [BN]
    else:
        o_o = _row_offsets(o_s, H, W, s_go_c, s_go_h, s_go_w, FLAT)
        b_go = tl.load(p_go + i_b64 * s_go_b + o_o, mask=m_n, other=0.0).to(ACC)  # [BN]

    o_g = _row_offsets(o_s, H, W, s_g_c, s_g_h, s_g_w, FLAT)
    b_g = tl.load(p_g + i_b64 * s_g_b + o_g[:, None] + o_l[None, :] * s_g_l, mask=m_x, other=0.0)  # [BN, BL]
    b_dx = b_g.to(ACC) * b_go[:, None]  # [BN, BL]
    o_d = _row_offsets(o_s, H, W, s_dx_c, s_dx_h, s_dx_w, FLAT)
    tl.store(p_dx + i_b64 * s_dx_b + o_d[:, None] + o_l[None, :] * s_dx_l, b_dx.to(p_dx.dtype.element_ty), mask=m_x)


# -- host side ---------------------------------------------------------------------------------


def _block_shape(levels: int, rows: int) -> tuple[int, int, int]:
    """(BN rows, BL levels, num_warps): BL = next power of two >= L, BN*BL ~ BLOCK_ELEMS."""
    bl = triton.next_power_of_2(levels)
    bn = max(1, min(BLOCK_ELEMS // bl, triton.next_power_of_2(rows)))
    return bn, bl, 4 if bn * bl <= 4096 else 8


def _flat_stride(t: torch.Tensor, lead: int) -> int | None:
    """Stride of t's last dims merged into one (C, H, W -> S), or None when they do not merge."""
    try:
        return t.view(*t.shape[:lead], -1).stride(lead)
    except RuntimeError:
        return None


def _row_strides(tensors: list[tuple[torch.Tensor, int]]) -> tuple[bool, list[tuple[int, ...]]]:
    """FLAT and each tensor's strides in kernel order (batch, [levels,] c, h, w).

    tensors: (t, lead) pairs, lead = number of dims before (C, H, W). FLAT when every tensor's
    (C, H, W) merge; then (c, h) strides are unused and the w slot holds the merged stride.
    """
    flats = [_flat_stride(t, lead) for t, lead in tensors]
    flat = all(f is not None for f in flats)
    strides = []
    for (t, lead), f in zip(tensors, flats):
        head = t.stride()[:lead]
        strides.append(head + ((0, 0, f) if flat else t.stride()[lead:]))
    return flat, strides


def _non_overlapping(t: torch.Tensor) -> bool:
    """True when no two elements of t share memory (required to write the gradient over it)."""
    dims = sorted((s, n) for s, n in zip(t.stride(), t.shape) if n > 1)
    span = 1
    for stride, size in dims:
        if stride < span:
            return False
        span = stride * size
    return True


def cross_entropy_fwd(
    logits: torch.Tensor, targets: torch.Tensor, reduction: str, *, compute_grad: bool, inplace: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """One pass: (loss, dx or None, bad) -- bad: int32 per-program counts of targets outside [0, L).

    loss is (B, C, H, W) for "none", else a 0-dim tensor, in promote(logits.dtype, float32).
    dx has the logits' shape and dtype (the logits themselves when ``inplace``) and is
    d(reduced loss)/d(logits), i.e. already divided by N for "mean".
    """
    b, levels, c, h, w = logits.shape
    s = c * h * w
    acc = torch.promote_types(logits.dtype, torch.float32)
    bn, bl, num_warps = _block_shape(levels, s)
    grid = (triton.cdiv(s, bn), b)
    n_prog = grid[0] * grid[1]
    reduce = reduction != "none"

    loss = torch.empty(n_prog if reduce else (b, c, h, w), device=logits.device, dtype=acc)
    bad = torch.empty(n_prog, device=logits.device, dtype=torch.int32)
    dx = None
    if compute_grad:
        dx = logits if inplace else torch.empty_like(logits)
    flat, (s_x, s_t, s_d) = _row_strides([(logits, 2), (targets, 1), (dx if dx is not None else logits, 2)])
    _ce_fwd_kernel[grid](
        logits, targets, loss, dx if dx is not None else logits, bad,
        s, h, w, levels, b * s,
        *s_x, *s_t, *s_d,
        BN=bn, BL=bl, FLAT=flat, REDUCE=reduce, MEAN=reduction == "mean", COMPUTE_GRAD=compute_grad,
        num_warps=num_warps,
    )  # fmt: skip
    if reduce:
        loss = loss.sum()  # n_prog partials (already divided by N for "mean"): one small device op
    return loss, dx, bad


def cross_entropy_bwd(g: torch.Tensor, grad_output: torch.Tensor, *, inplace: bool) -> torch.Tensor:
    """dx = g * grad_output (broadcast over the levels): g (B, L, C, H, W) from the forward;
    grad_output 0-dim ("sum"/"mean") or (B, C, H, W) ("none"). Written over g when ``inplace``."""
    b, levels, c, h, w = g.shape
    s = c * h * w
    bn, bl, num_warps = _block_shape(levels, s)
    scalar = grad_output.ndim == 0
    dx = g if inplace else torch.empty_like(g)
    go_4d = grad_output.expand(b, c, h, w) if scalar else grad_output  # strides only; SCALAR reads [0]
    flat, (s_g, s_o, s_d) = _row_strides([(g, 2), (go_4d, 1), (dx, 2)])
    _ce_bwd_kernel[(triton.cdiv(s, bn), b)](
        g, grad_output, dx,
        s, h, w, levels,
        *s_g, *s_o, *s_d,
        BN=bn, BL=bl, FLAT=flat, SCALAR=scalar,
        num_warps=num_warps,
    )  # fmt: skip
    return dx


# -- registered ops ----------------------------------------------------------------------------
# fastpixel::pixel_cross_entropy_forward / _backward are opaque custom ops (docs/architecture.md,
# "Kernels as PyTorch ops"); autograd is registered on the forward. The in-place variant mutates the
# logits, and PyTorch registers no autograd formula on a mutating op, so it keeps a small
# autograd.Function around its two mutating ops (eager-only option; see pixel_cross_entropy).
Tensor = torch.Tensor


@torch.library.custom_op("fastpixel::pixel_cross_entropy_forward", mutates_args=())
def pixel_cross_entropy_forward(
    logits: Tensor, targets: Tensor, reduction: str, compute_grad: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """-> (loss, grad, bad): loss (B, C, H, W) for "none" else 0-dim, in promote(logits, float32);
    grad = d(loss reduced)/d(logits) in the logits' shape and dtype (an empty (0,) tensor when not
    compute_grad); bad = 0-dim int64 count of targets outside [0, L) (their loss and grad are NaN)."""
    loss, dx, bad = cross_entropy_fwd(logits, targets, reduction, compute_grad=compute_grad, inplace=False)
    return loss, (dx if dx is not None else logits.new_empty(0)), bad.sum()


@pixel_cross_entropy_forward.register_fake
def _(logits, targets, reduction, compute_grad):
    b, _, c, h, w = logits.shape
    acc = torch.promote_types(logits.dtype, torch.float32)
    loss = logits.new_empty((b, c, h, w) if reduction == "none" else (), dtype=acc)
    grad = torch.empty_like(logits) if compute_grad else logits.new_empty(0)
    return loss, grad, logits.new_empty((), dtype=torch.int64)


@torch.library.custom_op("fastpixel::pixel_cross_entropy_backward", mutates_args=())
def pixel_cross_entropy_backward(grad: Tensor, grad_output: Tensor) -> Tensor:
    """grad (B, L, C, H, W) from the forward times grad_output (0-dim, or (B, C, H, W) for "none"),
    broadcast over the levels -> a new tensor like grad."""
    return cross_entropy_bwd(grad, grad_output, inplace=False)


@pixel_cross_entropy_backward.register_fake
def _(grad, grad_output):
    return torch.empty_like(grad)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(output[1])


def _backward(ctx, grad_loss, _grad_grad, _grad_bad):
    (grad,) = ctx.saved_tensors
    if grad.numel() == 0:
        raise RuntimeError("pixel_cross_entropy_forward: called with compute_grad=False, it has no gradient")
    return pixel_cross_entropy_backward(grad, grad_loss), None, None, None


pixel_cross_entropy_forward.register_autograd(_backward, setup_context=_setup_context)
# Under autocast the logits are read in whatever dtype they come (the reference promotes them to
# float32 itself, and log_softmax autocasts to float32): the op runs with autocast off, loss float32.
register_autocast_rule(pixel_cross_entropy_forward, lambda dtype, args: (args, lambda out: out))


@torch.library.custom_op("fastpixel::pixel_cross_entropy_forward_inplace_", mutates_args=("logits",))
def pixel_cross_entropy_forward_inplace_(logits: Tensor, targets: Tensor, reduction: str) -> tuple[Tensor, Tensor]:
    """As pixel_cross_entropy_forward with compute_grad, the gradient written over ``logits`` -> (loss, bad)."""
    loss, _, bad = cross_entropy_fwd(logits, targets, reduction, compute_grad=True, inplace=True)
    return loss, bad.sum()


@pixel_cross_entropy_forward_inplace_.register_fake
def _(logits, targets, reduction):
    b, _, c, h, w = logits.shape
    acc = torch.promote_types(logits.dtype, torch.float32)
    return logits.new_empty((b, c, h, w) if reduction == "none" else (), dtype=acc), logits.new_empty((), dtype=torch.int64)


@torch.library.custom_op("fastpixel::pixel_cross_entropy_backward_inplace_", mutates_args=("grad",))
def pixel_cross_entropy_backward_inplace_(grad: Tensor, grad_output: Tensor) -> None:
    """grad *= grad_output (broadcast over the levels), in place."""
    cross_entropy_bwd(grad, grad_output, inplace=True)


@pixel_cross_entropy_backward_inplace_.register_fake
def _(grad, grad_output):
    return None


class _InplaceCrossEntropy(torch.autograd.Function):
    """inplace_backward=True: the gradient lives in the logits' storage; one backward only."""

    @staticmethod
    def forward(ctx, logits, targets, reduction):
        loss, bad = pixel_cross_entropy_forward_inplace_(logits, targets, reduction)
        ctx.mark_non_differentiable(bad)
        ctx.used = False
        ctx.save_for_backward(logits.detach())
        return loss, bad

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, _grad_bad):
        if ctx.used:
            raise RuntimeError(
                "pixel_cross_entropy(inplace_backward=True): the gradient was written over the logits and "
                "already scaled by a first backward; it cannot be back-propagated twice (use inplace_backward=False)"
            )
        ctx.used = True
        (grad,) = ctx.saved_tensors
        pixel_cross_entropy_backward_inplace_(grad, grad_loss)
        return grad, None, None


def pixel_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    reduction: str = "sum",
    *,
    validate: bool = True,
    inplace_backward: bool = False,
) -> torch.Tensor:
    """Triton twin of :func:`fastpixel.reference.cross_entropy.pixel_cross_entropy`.

    logits: (B, L, C, H, W) float (any strides, 1 <= L <= 4096); targets: (B, C, H, W) integers.
    Returns (B, C, H, W) for reduction="none", else a 0-dim tensor; dtype promote(logits, float32)
    (float32 under autocast too, as the reference). Runs ``fastpixel::pixel_cross_entropy_forward``.
    validate: raise ValueError when a target lies outside [0, L) (one host sync, after the kernel);
      skipped while torch.compile traces (no sync in a graph). False: no sync at all, and a bad
      target's loss and gradient are NaN.
    inplace_backward: write the gradient over ``logits`` (their values are lost after this call;
      one backward only). Needs logits without overlapping elements. Eager only: under
      torch.compile the option is ignored (the graph owns its buffers).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"pixel_cross_entropy: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    b, levels, c, h, w = logits.shape
    if tuple(targets.shape) != (b, c, h, w):
        raise ValueError(f"pixel_cross_entropy: targets shape {tuple(targets.shape)} != {(b, c, h, w)}")
    if not 1 <= levels <= MAX_LEVELS:
        raise ValueError(f"pixel_cross_entropy (triton): levels must be in [1, {MAX_LEVELS}], got {levels}")
    if targets.dtype == torch.bool or targets.is_floating_point() or targets.is_complex():
        raise TypeError(f"pixel_cross_entropy: targets must be an integer tensor, got {targets.dtype}")
    if logits.numel() == 0:  # no rows: nothing to launch; the reference's values (0 sum, NaN mean)
        loss = logits.new_zeros((b, c, h, w), dtype=torch.promote_types(logits.dtype, torch.float32))
        return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()
    check_int32_span("pixel_cross_entropy", logits)
    compute_grad = torch.is_grad_enabled() and logits.requires_grad
    compiling = torch.compiler.is_compiling()
    if inplace_backward and compute_grad and not compiling:
        if not _non_overlapping(logits):
            raise ValueError("pixel_cross_entropy: inplace_backward=True needs logits whose elements do not overlap")
        loss, bad = _InplaceCrossEntropy.apply(logits, targets, reduction)
    else:
        loss, _, bad = pixel_cross_entropy_forward(logits, targets, reduction, compute_grad)
    if validate and not compiling and int(bad) > 0:  # the one host sync, only when asked for
        lo, hi = int(targets.min()), int(targets.max())
        raise ValueError(
            f"pixel_cross_entropy: targets must lie in [0, {levels}), got values in [{lo}, {hi}]"
        )
    return loss
