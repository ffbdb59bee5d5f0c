"""The LSTM cell of both fast scans, forward and hand-written backward, in place on views.

Gates are laid out [o | f | i | g] along the last dimension (each ``hidden`` wide), as in
:func:`fastpixel.reference.row_lstm.lstm_cell`:

    o, f, i = sigmoid(.), g = tanh(.)
    c = f . c_prev + i . g,        h = o . tanh(c)

Backward, given dL/dh and the gradient ``dc`` already flowing into c from the next step
(``dc_next . f_next``):

    dc      += dh . o . (1 - tanh(c)^2)
    d o_pre  = dh . tanh(c) . o (1 - o)
    d f_pre  = dc . c_prev . f (1 - f)
    d i_pre  = dc . g . i (1 - i)
    d g_pre  = dc . i . (1 - g^2)
    dc_prev  = dc . f

Every function writes into caller-owned buffers (``out=`` views of one allocation per scan), so a
scan step allocates only a few small temporaries.
"""

from __future__ import annotations

import torch


def cell_forward_(
    gates: torch.Tensor,
    c_prev: torch.Tensor,
    c_out: torch.Tensor,
    tanh_c_out: torch.Tensor,
    h_out: torch.Tensor,
    hidden: int,
) -> None:
    """gates (..., 4h): pre-activations, overwritten by the activations [o, f, i, g].

    c_prev (..., h) is read; c_out, tanh_c_out, h_out (..., h) are written (they may be strided
    views, but must not overlap c_prev).
    """
    gates[..., : 3 * hidden].sigmoid_()
    gates[..., 3 * hidden :].tanh_()
    f = gates[..., hidden : 2 * hidden]
    i = gates[..., 2 * hidden : 3 * hidden]
    g = gates[..., 3 * hidden :]
    torch.mul(f, c_prev, out=c_out)
    c_out.addcmul_(i, g)
    torch.tanh(c_out, out=tanh_c_out)
    torch.mul(gates[..., :hidden], tanh_c_out, out=h_out)


def cell_backward_(
    acts: torch.Tensor,
    tanh_c: torch.Tensor,
    c_prev: torch.Tensor,
    dh: torch.Tensor,
    dc: torch.Tensor,
    d_gates: torch.Tensor,
    dc_prev_out: torch.Tensor | None,
    hidden: int,
) -> None:
    """Gradients of one cell step (see the module docstring).

    acts (..., 4h): the activations saved by :func:`cell_forward_`; tanh_c, c_prev, dh (..., h).
    dc (..., h): on entry the gradient reaching c from later steps, on exit the total dL/dc.
    d_gates (..., 4h): written with dL/d(pre-activation gates).
    dc_prev_out (..., h) or None: written with dL/dc_prev = dc . f.
    """
    o = acts[..., :hidden]
    f = acts[..., hidden : 2 * hidden]
    i = acts[..., 2 * hidden : 3 * hidden]
    g = acts[..., 3 * hidden :]
    dh_o = dh * o
    dh_o_tc = dh_o * tanh_c
    dc.add_(dh_o).addcmul_(dh_o_tc, tanh_c, value=-1.0)  # dc += dh o (1 - tanh(c)^2)
    torch.addcmul(dh_o_tc, dh_o_tc, o, value=-1.0, out=d_gates[..., :hidden])  # dh tanh(c) o (1 - o)
    fi = acts[..., hidden : 3 * hidden]
    sigmoid_grad = torch.addcmul(fi, fi, fi, value=-1.0)  # [f (1 - f) | i (1 - i)]
    torch.mul(dc, c_prev, out=d_gates[..., hidden : 2 * hidden])
    torch.mul(dc, g, out=d_gates[..., 2 * hidden : 3 * hidden])
    d_gates[..., hidden : 3 * hidden].mul_(sigmoid_grad)
    d_g = d_gates[..., 3 * hidden :]
    torch.mul(dc, i, out=d_g)
    d_g.addcmul_(d_g * g, g, value=-1.0)  # dc i (1 - g^2)
    if dc_prev_out is not None:
        torch.mul(dc, f, out=dc_prev_out)
