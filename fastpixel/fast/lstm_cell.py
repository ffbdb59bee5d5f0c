"""The LSTM cell of both fast scans, forward and hand-written backward, in place on views.

Gates are stacked [o | f | i | g] along dimension ``dim`` (each ``hidden`` wide), as in
:func:`fastpixel.reference.row_lstm.lstm_cell`:

    o, f, i = sigmoid(.), g = tanh(.)
    c = f . c_prev + i . g,        h = o . tanh(c)

tanh is computed as 2 sigmoid(2x) - 1: PyTorch's CPU tanh is ~10x slower than its sigmoid
(measured on this project's AVX-512 machine, torch 2.13), so the g pre-activations arrive
already doubled (the scans fold the 2 into their inputs and weights, see :func:`double_g_`) and
one sigmoid covers all four gates. The difference from tanh is float rounding.

Backward, given dL/dh and the gradient ``dc`` already flowing into c from the next step
(``dc_next . f_next``):

    dc      += dh . o . (1 - tanh(c)^2)
    d o_pre  = dh . tanh(c) . o (1 - o)
    d f_pre  = dc . c_prev . f (1 - f)
    d i_pre  = dc . g . i (1 - i)
    d g_pre  = dc . i . (1 - g^2)            (w.r.t. the undoubled pre-activation)
    dc_prev  = dc . f

Every function writes into caller-owned buffers (views of one allocation per scan), so a scan
step allocates only a few small temporaries.
"""

from __future__ import annotations

import torch


def double_g_(gates: torch.Tensor, hidden: int, dim: int) -> torch.Tensor:
    """Multiply the g block (the last ``hidden`` along ``dim``) by 2 in place; returns ``gates``."""
    gates.narrow(dim, 3 * hidden, hidden).mul_(2.0)
    return gates


def tanh_(x: torch.Tensor) -> torch.Tensor:
    """tanh in place, as 2 sigmoid(2x) - 1 (see the module docstring)."""
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


def cell_forward_(
    gates: torch.Tensor,
    c_prev: torch.Tensor,
    c_out: torch.Tensor,
    tanh_c_out: torch.Tensor,
    h_out: torch.Tensor,
    hidden: int,
    dim: int,
) -> None:
    """gates (.., 4h, ..): pre-activations with g doubled, overwritten by the activations [o, f, i, g].

    c_prev (.., h, ..) is read; c_out, tanh_c_out, h_out (.., h, ..) are written (they may be
    strided views, but must not overlap c_prev).
    """
    gates.sigmoid_()
    g = gates.narrow(dim, 3 * hidden, hidden)
    g.mul_(2.0).sub_(1.0)  # 2 sigmoid(2x) - 1 = tanh(x)
    torch.mul(gates.narrow(dim, hidden, hidden), c_prev, out=c_out)
    c_out.addcmul_(gates.narrow(dim, 2 * hidden, hidden), g)
    torch.mul(c_out, 2.0, out=tanh_c_out)
    tanh_c_out.sigmoid_().mul_(2.0).sub_(1.0)
    torch.mul(gates.narrow(dim, 0, hidden), tanh_c_out, out=h_out)


def cell_backward_(
    acts: torch.Tensor,
    tanh_c: torch.Tensor,
    c_prev: torch.Tensor,
    dh: torch.Tensor,
    dc: torch.Tensor,
    d_gates: torch.Tensor,
    dc_prev_out: torch.Tensor | None,
    hidden: int,
    dim: int,
) -> None:
    """Gradients of one cell step (see the module docstring).

    acts (.., 4h, ..): the activations left by :func:`cell_forward_`; tanh_c, c_prev, dh (.., h, ..).
    dc (.., h, ..): on entry the gradient reaching c from later steps, on exit the total dL/dc.
    d_gates (.., 4h, ..): written with dL/d(pre-activation gates).
    dc_prev_out (.., h, ..) or None: written with dL/dc_prev = dc . f.
    """
    o = acts.narrow(dim, 0, hidden)
    f = acts.narrow(dim, hidden, hidden)
    i = acts.narrow(dim, 2 * hidden, hidden)
    g = acts.narrow(dim, 3 * hidden, hidden)
    dh_o = dh * o
    dh_o_tc = dh_o * tanh_c
    dc.add_(dh_o).addcmul_(dh_o_tc, tanh_c, value=-1.0)  # dc += dh o (1 - tanh(c)^2)
    torch.addcmul(dh_o_tc, dh_o_tc, o, value=-1.0, out=d_gates.narrow(dim, 0, hidden))  # dh tanh(c) o (1 - o)
    fi = acts.narrow(dim, hidden, 2 * hidden)
    sigmoid_grad = torch.addcmul(fi, fi, fi, value=-1.0)  # [f (1 - f) | i (1 - i)]
    torch.mul(dc, c_prev, out=d_gates.narrow(dim, hidden, hidden))
    torch.mul(dc, g, out=d_gates.narrow(dim, 2 * hidden, hidden))
    d_gates.narrow(dim, hidden, 2 * hidden).mul_(sigmoid_grad)
    d_g = d_gates.narrow(dim, 3 * hidden, hidden)
    torch.mul(dc, i, out=d_g)
    d_g.addcmul_(d_g * g, g, value=-1.0)  # dc i (1 - g^2)
    if dc_prev_out is not None:
        torch.mul(dc, f, out=dc_prev_out)


def gate_views(gates: torch.Tensor, hidden: int) -> tuple[torch.Tensor, ...]:
    """Views (o | f | i, g, o, f, i) of gates (..., 4h), for :func:`cell_step_` on a reused buffer."""
    return (gates[..., : 3 * hidden], gates[..., 3 * hidden :], gates[..., :hidden],
            gates[..., hidden : 2 * hidden], gates[..., 2 * hidden : 3 * hidden])


def cell_step_(
    gates: torch.Tensor, c_prev: torch.Tensor, c_out: torch.Tensor, tanh_c: torch.Tensor, h_out: torch.Tensor,
    hidden: int, views: tuple[torch.Tensor, ...] | None = None,
) -> None:
    """One cell step on tiny tensors (a sampler's pixel): gates (..., 4h) [o | f | i | g] overwritten.

    c_prev (..., h) is read and c_out written (they may be the same tensor); tanh_c (..., h) is
    scratch; h_out (..., h) is written. ``views``: :func:`gate_views` of ``gates``, when the caller
    reuses one gates buffer (slicing costs as much as a tiny op). For a handful of values op
    overhead dominates, so this uses torch.tanh (one op) rather than the 2 sigmoid(2x) - 1 of
    :func:`cell_forward_`.
    """
    sigmoids, g, o, f, i = views if views is not None else gate_views(gates, hidden)
    sigmoids.sigmoid_()
    g.tanh_()
    torch.mul(f, c_prev, out=c_out).addcmul_(i, g)
    torch.tanh(c_out, out=tanh_c)
    torch.mul(o, tanh_c, out=h_out)
