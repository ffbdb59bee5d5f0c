"""The LSTM cell of both fast scans, forward and hand-written backward, in place on views.

Gates are stacked [o | f | i | g] along dimension ``dim`` (each ``hidden`` wide), as in
:func:`fastpixel.reference.row_lstm.lstm_cell`:

    o, f, i = sigmoid(.), g = tanh(.)
    c = f . c_prev + i . g,        h = o . tanh(c)

Only sigmoids are evaluated: PyTorch's CPU tanh is ~3-10x slower than its sigmoid (measured on
this project's machines, torch 2.13), and tanh(x) = 2 sigmoid(2x) - 1 = 1 - 2 sigmoid(-2x). So

* the g pre-activations arrive doubled (the scans fold the 2 into their weights and into the
  copy that lays out their inputs), one sigmoid covers all four gates, and the cell keeps ``s_g = sigmoid(2 g_pre)``
  in the g slot (g = 2 s_g - 1 is never formed: c = f c_prev + 2 i s_g - i);
* for the cell state it keeps ``m = sigmoid(-2c)``: tanh(c) = 1 - 2m, so h = o - 2 o m.

The differences from tanh are float rounding. Written this way a step is 7 elementwise ops
forward (each op on these small tensors costs a few microseconds of overhead beyond its
arithmetic, which is what a scan step is made of). Backward, given dL/dh and the gradient ``dc``
already flowing into c from the next step (``dc_next . f_next``), with tanh(c) = 1 - 2m,
1 - tanh(c)^2 = 4 m (1 - m), g = 2 s_g - 1, 1 - g^2 = 4 s_g (1 - s_g):

    dc      += dh . o . 4 m (1 - m)
    d o_pre  = dh . tanh(c) . o (1 - o)
    d f_pre  = dc . c_prev . f (1 - f)
    d i_pre  = dc . g . i (1 - i)
    d g_pre  = dc . i . 4 s_g (1 - s_g)          (w.r.t. the undoubled pre-activation)
    dc_prev  = dc . f

Every function writes into caller-owned buffers (views of one allocation per scan), so a scan
step allocates only a few small temporaries.
"""

from __future__ import annotations

import torch

_I_G_FACTORS: dict[tuple, torch.Tensor] = {}


def _i_g_factors(hidden: int, dim: int, ndim: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[-1] * h + [4] * h along ``dim`` (broadcastable): turns (-dc g, dc i) into (dc g, 4 dc i)."""
    key = (hidden, dim, ndim, dtype, device)
    t = _I_G_FACTORS.get(key)
    if t is None:
        shape = [1] * ndim
        shape[dim] = 2 * hidden
        t = torch.cat((torch.full((hidden,), -1.0), torch.full((hidden,), 4.0))).to(dtype=dtype, device=device)
        t = _I_G_FACTORS[key] = t.view(shape)
    return t


def cell_forward_(
    gates: torch.Tensor,
    c_prev: torch.Tensor,
    c_out: torch.Tensor,
    m_out: torch.Tensor,
    h_out: torch.Tensor,
    hidden: int,
    dim: int,
) -> None:
    """gates (.., 4h, ..): pre-activations with g doubled, overwritten by [o, f, i, s_g] (sigmoids).

    c_prev (.., h, ..) is read; c_out, m_out = sigmoid(-2 c_out) and h_out (.., h, ..) are written
    (they may be strided views, but must not overlap c_prev).
    """
    o, f, i, s_g = gates.sigmoid_().split(hidden, dim)
    torch.mul(f, c_prev, out=c_out).addcmul_(i, s_g, value=2.0).sub_(i)  # f c_prev + i (2 s_g - 1)
    torch.mul(c_out, -2.0, out=m_out).sigmoid_()
    torch.addcmul(o, o, m_out, value=-2.0, out=h_out)  # o tanh(c) = o (1 - 2m)


def cell_backward_(
    acts: torch.Tensor,
    m: torch.Tensor,
    c_prev: torch.Tensor,
    dh: torch.Tensor,
    dc: torch.Tensor,
    d_gates: torch.Tensor,
    dc_prev_out: torch.Tensor | None,
    hidden: int,
    dim: int,
) -> None:
    """Gradients of one cell step (see the module docstring).

    acts (.., 4h, ..): [o, f, i, s_g] left by :func:`cell_forward_`; m = sigmoid(-2c), c_prev, dh (.., h, ..).
    dc (.., h, ..): on entry the gradient reaching c from later steps, on exit the total dL/dc.
    d_gates (.., 4h, ..): written with dL/d(pre-activation gates), g undoubled.
    dc_prev_out (.., h, ..) or None: written with dL/dc_prev = dc . f.
    """
    o, f, i, s_g = acts.split(hidden, dim)
    d_o, d_f, d_i, d_g = d_gates.split(hidden, dim)
    dh_o = dh * o
    dc.addcmul_(dh_o, torch.addcmul(m, m, m, value=-1.0), value=4.0)  # += dh o (1 - tanh(c)^2)
    torch.addcmul(dh, dh, m, value=-2.0, out=d_o)  # dh tanh(c)
    torch.mul(dc, c_prev, out=d_f)
    torch.addcmul(dc, dc, s_g, value=-2.0, out=d_i)  # -dc g
    torch.mul(dc, i, out=d_g)
    d_gates.mul_(torch.addcmul(acts, acts, acts, value=-1.0))  # every gate's sigmoid derivative s (1 - s)
    d_gates.narrow(dim, 2 * hidden, 2 * hidden).mul_(_i_g_factors(hidden, dim, d_gates.ndim, d_gates.dtype, d_gates.device))
    if dc_prev_out is not None:
        torch.mul(dc, f, out=dc_prev_out)
