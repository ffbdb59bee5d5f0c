"""The LSTM cell, one definition for every place that steps it outside the torch backend's scans.

Gates are stacked [o | f | i | g] (each ``hidden`` wide) along ``dim``:

    o, f, i = sigmoid(.), g = tanh(.)
    c = f . c_prev + i . g,        h = o . tanh(c)

* :func:`lstm_cell` -- the paper's equations as written (the reference scans use it, and the Row
  LSTM's incremental step);
* :func:`lstm_cell_step_` -- the same cell in place on caller-owned buffers, for one pixel of a
  sampler (a handful of values, where each op's overhead is the cost: one ``tanh`` op rather than
  the ``2 sigmoid(2x) - 1`` the torch backend's scans use over whole columns, see
  :mod:`fastpixel.fast.lstm_cell`).

A leaf module: it imports nothing of fastpixel.
"""

from __future__ import annotations

import torch

__all__ = ["gate_views", "lstm_cell", "lstm_cell_step_"]


def lstm_cell(gates: torch.Tensor, c_prev: torch.Tensor, hidden: int, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """gates: (.., 4h, ..) laid out [o | f | i | g] along ``dim``; c_prev: (.., h, ..) -> (h, c)."""
    o, f, i, g = gates.split(hidden, dim=dim)
    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


def gate_views(gates: torch.Tensor, hidden: int) -> tuple[torch.Tensor, ...]:
    """Views (o | f | i, g, o, f, i) of gates (..., 4h), for :func:`lstm_cell_step_` on a reused buffer."""
    return (gates[..., : 3 * hidden], gates[..., 3 * hidden :], gates[..., :hidden],
            gates[..., hidden : 2 * hidden], gates[..., 2 * hidden : 3 * hidden])


def lstm_cell_step_(
    gates: torch.Tensor, c_prev: torch.Tensor, c_out: torch.Tensor, tanh_c: torch.Tensor, h_out: torch.Tensor,
    hidden: int, views: tuple[torch.Tensor, ...] | None = None,
) -> None:
    """One cell step in place: gates (..., 4h) [o | f | i | g] overwritten by their activations.

    c_prev (..., h) is read and c_out written (they may be the same tensor); tanh_c (..., h) is
    scratch; h_out (..., h) is written. ``views``: :func:`gate_views` of ``gates``, when the caller
    reuses one gates buffer (slicing costs as much as a tiny op).
    """
    sigmoids, g, o, f, i = views if views is not None else gate_views(gates, hidden)
    sigmoids.sigmoid_()
    g.tanh_()
    torch.mul(f, c_prev, out=c_out).addcmul_(i, g)
    torch.tanh(c_out, out=tanh_c)
    torch.mul(o, tanh_c, out=h_out)
