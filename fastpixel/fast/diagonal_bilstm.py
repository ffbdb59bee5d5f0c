"""Fast pure-PyTorch Diagonal BiLSTM scan: both directions in one column scan, hand-written backward.

Same function and result as :func:`fastpixel.reference.diagonal_bilstm_scan` (see its module for
the equations), up to float rounding. How it is computed:

* **Skewed buffers, batch innermost.** Every per-pixel buffer is ``(D, T, C, H, B)``: D = 2
  directions, T = W + H - 1 columns of the skewed map, C channels, H rows, the B images
  innermost; pixel (r, j) is column t = r + j, row r. The input gates are copied in, and the
  output read back, through ``as_strided`` views of these buffers (no padded copies of maps; see
  :mod:`fastpixel.fast.skew`), after one 2-D transpose each (:mod:`fastpixel.fast.layout`). The
  right-to-left direction is the left-to-right scan of the mirrored map.
* **Only the active rows.** Column t holds rows ``max(0, t-W+1) .. min(H-1, t)``; a step touches
  only those (W/(W+H-1) of the skewed cells), i.e. one contiguous run of ``n*B`` pixels per
  channel. States left of the image read as zero (the cells the scan reads but never writes are
  zeroed, as the reference's zero padding); states right of the image are never computed (they
  never reach the image).
* **Few large ops per step.** Column t's rows read the previous column's h at rows r - 1 and r
  (the 2x1 state-to-state conv). h is kept in a buffer ``taps`` that stores, for every row r of
  column t, both ``[h(t-1, r-1) | h(t-1, r)]`` (each new h is written twice: as "same row" for
  row r, as "row above" for row r + 1), so a column's recurrent term is one ``baddbmm_`` with
  K = 2h: all four gates, both taps, both directions (bmm over D), added in place onto the input
  gates; then the in-place cell (:mod:`fastpixel.fast.lstm_cell`). (Measured level with two
  K = h products per column, which skip the duplicate write.)
* **Backward.** The forward saves the gate activations, c, m = sigmoid(-2c) (see
  :mod:`fastpixel.fast.lstm_cell`) and the taps buffer (skewed).
  A reverse column scan gives the gate gradients; one ``bmm`` per column sends them to both
  taps of the previous column, and dL/dh(t, r) is the "same row" gradient of row r plus the "row
  above" gradient of row r + 1; each column adds its share of the state-weight gradient
  (``d_gates @ taps^T``). The input-gate gradients are read out of the skewed gradient buffer.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from fastpixel.fast.autocast import autocast_boundary
from fastpixel.fast.column_scan import scan_backward_, scan_forward_
from fastpixel.fast.guards import reject_batched_gradients
from fastpixel.fast.layout import batch_last_to_nchw, nchw_to_batch_last
from fastpixel.fast.skew import skew_both_directions_, sum_of_directions, unskewed
from fastpixel.fast.workspace import scratch


def _state_weights(w_lr: torch.Tensor, w_rl: torch.Tensor) -> torch.Tensor:
    """(D, 4h, 2h): [K_above | K_same] of both directions' (4h, h, 2, 1) kernels."""
    return torch.stack([torch.cat((w[:, :, 0, 0], w[:, :, 1, 0]), dim=1) for w in (w_lr, w_rl)])


def _copy_doubling_g_(dst: torch.Tensor, src: torch.Tensor, hidden: int) -> None:
    """dst = src with the g block (the last h of dimension 0's 4h gates) doubled; any strides."""
    dst[: 3 * hidden].copy_(src[: 3 * hidden])
    torch.mul(src[3 * hidden :], 2.0, out=dst[3 * hidden :])


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
        acts = scratch((2, columns, four_h, height, batch), dtype, device)
        view = unskewed(acts, height, width, 0, 0)  # (D, 4h, H, W, B)
        # The g pre-activations are doubled (tanh(x) = 2 sigmoid(2x) - 1) in the same pass as the
        # skewing copy, and the right-to-left map is mirrored column by column in that pass too
        # (a flip of the NCHW map would be one more full copy, into fresh memory).
        for d, gates in enumerate((gates_lr, gates_rl)):
            rows = nchw_to_batch_last(gates)  # (4h, H, W, B)
            if d == 0:
                _copy_doubling_g_(view[0], rows, hidden)
            else:
                for j in range(width):
                    _copy_doubling_g_(view[1, :, :, j], rows[:, :, width - 1 - j], hidden)
        taps = scratch((2, columns + 1, 2 * hidden, height + 1, batch), dtype, device)  # the feed: state taps only
        c = scratch((2, columns + 1, hidden, height + 1, batch), dtype, device)
        m = scratch((2, columns, hidden, height, batch), dtype, device)
        weights = _state_weights(w_lr, w_rl)
        weights[:, 3 * hidden :].mul_(2.0)
        scan_forward_(taps, acts, c, m, weights, hidden, width, accumulate=True)
        ctx.save_for_backward(acts, c, m, taps, w_lr, w_rl)
        return sum_of_directions(taps[:, :, hidden:], height, width, 1, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        reject_batched_gradients("diagonal_bilstm_scan", grad_out)
        acts, c, m, taps, w_lr, w_rl = ctx.saved_tensors
        _, columns, four_h, height, batch = acts.shape
        hidden = four_h // 4
        width = columns - height + 1
        dtype, device = acts.dtype, acts.device
        d_out = scratch((2, columns + 1, hidden, height + 1, batch), dtype, device)
        skew_both_directions_(d_out, grad_out, 1, 1)  # dL/dh(t, r) at [t + 1, :, r]
        d_taps = scratch(tuple(taps.shape), dtype, device)
        d_acts = scratch(tuple(acts.shape), dtype, device)
        d_weights = torch.zeros(2, four_h, 2 * hidden, dtype=dtype, device=device)
        scan_backward_(acts, c, m, taps, _state_weights(w_lr, w_rl).transpose(1, 2), d_out, d_taps, d_acts,
                       d_weights, hidden)
        d_gates = scratch((2, four_h, height, width, batch), dtype, device)
        d_gates.copy_(unskewed(d_acts, height, width, 0, 0))
        d_w = d_weights.view(2, four_h, 2, hidden).transpose(2, 3).unsqueeze(-1).contiguous()  # (D, 4h, h, 2, 1)
        grad_lr = batch_last_to_nchw(d_gates[0])
        grad_rl = batch_last_to_nchw(d_gates[1]).flip(3)
        return grad_lr, d_w[0], grad_rl, d_w[1]


@autocast_boundary("promote")
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
