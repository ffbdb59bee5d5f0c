"""Fast pure-PyTorch Diagonal BiLSTM scan: both directions in one column scan, hand-written backward.

Same function and result as :func:`fastpixel.reference.diagonal_bilstm_scan` (see its module for
the equations). How it is computed:

* **Skewed buffers, no padded copies of maps.** Every per-pixel buffer is stored skewed, as
  ``(D, T, H, B, k)`` with D = 2 directions, T = W + H - 1 columns, pixel (r, j) at column
  t = r + j, row r. The unskewed input gates are copied into it once through an ``as_strided``
  view (pixel (r, j) has stride (T + 1)... see :func:`_unskewed_view`), and the outputs are read
  back the same way. The right-to-left direction is the left-to-right scan of the mirrored map.
* **Only the active rows.** Column t holds the pixels of rows ``max(0, t-W+1) .. min(H-1, t)``;
  a step touches only those (W/(W+H-1) of the skewed map's cells). States left of the image stay
  zero (the buffers start at zero and those cells are never written), which is the reference's
  zero padding; states right of the image are never computed (they never reach the image).
* **Few large ops per step.** h and c are kept with one zero row above row 0 and one zero column
  before column 0, so the state-to-state 2x1 conv of a column is two ``baddbmm_`` (taps "above"
  and "same row") over the contiguous block of the previous column's rows, both directions at
  once (bmm over D), all four gates in one matmul, added in place onto the input gates; the
  nonlinearities then run in place (:mod:`fastpixel.fast.lstm_cell`).
* **Backward.** The forward saves the gate activations, c, tanh(c) and h (skewed). A reverse
  column scan produces the gate gradients (two ``baddbmm_`` per column send them back to the
  previous column's h); the state-weight gradients are then one GEMM over all pixels per
  direction, and the input-gate gradients are read out of the skewed gradient buffer.
"""

from __future__ import annotations

import torch

from fastpixel.fast.layout import nchw_to_rows, rows_to_nchw
from fastpixel.fast.lstm_cell import cell_backward_, cell_forward_


def _skewed_offsets(buf: torch.Tensor) -> tuple[int, int, int]:
    """Strides (direction, column, row) of a (D, T', H', B, k) contiguous buffer."""
    return buf.stride(0), buf.stride(1), buf.stride(2)


def _unskewed_view(buf: torch.Tensor, height: int, width: int, col0: int, row0: int) -> torch.Tensor:
    """View (D, H, W, B, k) of a skewed buffer (D, T', H', B, k): [d, r, j] -> buf[d, col0 + r + j, row0 + r]."""
    d, _, _, batch, k = buf.shape
    sd, st, sr = _skewed_offsets(buf)
    offset = buf.storage_offset() + col0 * st + row0 * sr
    return buf.as_strided((d, height, width, batch, k), (sd, st + sr, st, k, 1), offset)


class DiagonalBiLSTMScan(torch.autograd.Function):
    """autograd.Function of :func:`diagonal_bilstm_scan`; use that function."""

    @staticmethod
    def forward(ctx, gates_lr, w_lr, gates_rl, w_rl):
        batch, four_h, height, width = gates_lr.shape
        hidden = four_h // 4
        columns = width + height - 1
        dtype, device = gates_lr.dtype, gates_lr.device
        # acts: the input gates, skewed; the scan adds the recurrent term and applies the
        # nonlinearities in place, so after the scan it holds the gate activations.
        acts = torch.empty(2, columns, height, batch, four_h, dtype=dtype, device=device)
        view = _unskewed_view(acts, height, width, 0, 0)  # (D, H, W, B, 4h)
        view[0].copy_(nchw_to_rows(gates_lr).permute(1, 2, 0, 3))
        view[1].copy_(nchw_to_rows(gates_rl).flip(2).permute(1, 2, 0, 3))
        # h and c with a zero column before column 0 (index 0) and a zero row above row 0 (index 0).
        h = torch.empty(2, columns + 1, height + 1, batch, hidden, dtype=dtype, device=device)
        c = torch.empty_like(h)
        for state in (h, c):
            _zero_left_of_image(state, height)
        tanh_c = torch.empty(2, columns, height, batch, hidden, dtype=dtype, device=device)
        w_above_t = torch.stack((w_lr[:, :, 0, 0].t(), w_rl[:, :, 0, 0].t()))  # (D, h, 4h)
        w_same_t = torch.stack((w_lr[:, :, 1, 0].t(), w_rl[:, :, 1, 0].t()))
        for t in range(columns):
            lo, hi = max(0, t - width + 1), min(height - 1, t)
            rows = (hi - lo + 1) * batch
            g = acts[:, t, lo : hi + 1]  # (D, n, B, 4h)
            g_mat = g.view(2, rows, four_h)
            g_mat.baddbmm_(h[:, t, lo : hi + 1].view(2, rows, hidden), w_above_t)  # h(t-1, r-1)
            g_mat.baddbmm_(h[:, t, lo + 1 : hi + 2].view(2, rows, hidden), w_same_t)  # h(t-1, r)
            cell_forward_(
                g, c[:, t, lo + 1 : hi + 2], c[:, t + 1, lo + 1 : hi + 2], tanh_c[:, t, lo : hi + 1],
                h[:, t + 1, lo + 1 : hi + 2], hidden,
            )
        rows_h = _unskewed_view(h, height, width, 1, 1).permute(0, 3, 1, 2, 4).contiguous()  # (D, B, H, W, h)
        rows_h[0, :, 1:].add_(rows_h[1, :, : height - 1].flip(2))  # + h_rl(r - 1, j)
        ctx.save_for_backward(acts, c, tanh_c, h, w_lr, w_rl)
        return rows_to_nchw(rows_h[0])

    @staticmethod
    def backward(ctx, grad_out):
        acts, c, tanh_c, h, w_lr, w_rl = ctx.saved_tensors
        _, columns, height, batch, four_h = acts.shape
        hidden = four_h // 4
        width = columns - height + 1
        dtype, device = acts.dtype, acts.device
        # dL/dh, skewed like h; starts as the output's gradient (the right-to-left map was shifted
        # down one row, so its gradient is the output's shifted up), gains the recurrent terms.
        dh = torch.empty_like(h)
        dh_view = _unskewed_view(dh, height, width, 1, 1)
        grad_rows = nchw_to_rows(grad_out.contiguous())  # (B, H, W, h)
        dh_view[0].copy_(grad_rows.permute(1, 2, 0, 3))
        dh_view[1, : height - 1].copy_(grad_rows[:, 1:].flip(2).permute(1, 2, 0, 3))
        dh_view[1, height - 1].zero_()
        # dL/dc flowing left to right, skewed like c; zero after the last pixel of every row.
        dc = torch.empty_like(c)
        _unskewed_view(dc, height, 1, width, 1).zero_()
        d_acts = torch.empty_like(acts)
        w_above = torch.stack((w_lr[:, :, 0, 0], w_rl[:, :, 0, 0]))  # (D, 4h, h)
        w_same = torch.stack((w_lr[:, :, 1, 0], w_rl[:, :, 1, 0]))
        for t in reversed(range(columns)):
            lo, hi = max(0, t - width + 1), min(height - 1, t)
            rows = (hi - lo + 1) * batch
            d_g = d_acts[:, t, lo : hi + 1]
            cell_backward_(
                acts[:, t, lo : hi + 1], tanh_c[:, t, lo : hi + 1], c[:, t, lo + 1 : hi + 2],
                dh[:, t + 1, lo + 1 : hi + 2], dc[:, t + 1, lo + 1 : hi + 2], d_g,
                dc[:, t, lo + 1 : hi + 2] if t > 0 else None, hidden,
            )
            if t > 0:
                d_mat = d_g.view(2, rows, four_h)
                dh[:, t, lo : hi + 1].view(2, rows, hidden).baddbmm_(d_mat, w_above)
                dh[:, t, lo + 1 : hi + 2].view(2, rows, hidden).baddbmm_(d_mat, w_same)
        # Weight gradients: one GEMM over every pixel per direction, [above | same] taps side by side.
        pixels = height * width * batch
        d_gates = _unskewed_view(d_acts, height, width, 0, 0).permute(0, 3, 1, 2, 4).contiguous()  # (D, B, H, W, 4h)
        taps = torch.empty(2, batch, height, width, 2 * hidden, dtype=dtype, device=device)
        taps[..., :hidden].copy_(_unskewed_view(h, height, width, 0, 0).permute(0, 3, 1, 2, 4))  # h(r - 1, j)
        taps[..., hidden:].copy_(_unskewed_view(h, height, width, 0, 1).permute(0, 3, 1, 2, 4))  # h(r, j - 1)
        d_w = torch.bmm(d_gates.view(2, pixels, four_h).transpose(1, 2), taps.view(2, pixels, 2 * hidden))
        d_w = d_w.view(2, four_h, 2, hidden).transpose(2, 3).unsqueeze(-1)  # (D, 4h, h, 2, 1)
        grad_lr = rows_to_nchw(d_gates[0])
        grad_rl = rows_to_nchw(d_gates[1].flip(2))
        return grad_lr, d_w[0], grad_rl, d_w[1]


def _zero_left_of_image(state: torch.Tensor, height: int) -> None:
    """Zero the cells of a (D, T + 1, H + 1, B, k) state buffer that the scan reads but never writes.

    Row index 0 (the row above the image), and cell [t, t + 1] (row t at column t - 1, left of the
    image) for t < H; column index 0 is covered by both.
    """
    state[:, :, 0].zero_()
    _, _, rows, batch, k = state.shape
    sd, st, sr = _skewed_offsets(state)
    diag = state.as_strided((2, height, batch, k), (sd, st + sr, k, 1), state.storage_offset() + sr)
    diag.zero_()


def diagonal_bilstm_scan(
    input_gates_lr: torch.Tensor,
    state_weight_lr: torch.Tensor,
    input_gates_rl: torch.Tensor,
    state_weight_rl: torch.Tensor,
) -> torch.Tensor:
    """Both directions of the Diagonal BiLSTM, the right-to-left one shifted down a row and added.

    input_gates_*: (B, 4h, H, W) input-to-state gates [o | f | i | g], bias included;
    state_weight_*: (4h, h, 2, 1) column kernels (tap 0: row above, tap 1: same row).
    Returns (B, h, H, W) = h_lr(r, j) + h_rl(r - 1, j). Equal to the reference up to rounding.
    """
    return DiagonalBiLSTMScan.apply(input_gates_lr, state_weight_lr, input_gates_rl, state_weight_rl)
