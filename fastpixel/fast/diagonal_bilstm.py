"""Fast pure-PyTorch Diagonal BiLSTM scan: both directions in one column scan, hand-written backward.

Same function and result as :func:`fastpixel.reference.diagonal_bilstm_scan` (see its module for
the equations), up to float rounding. How it is computed:

* **Skewed buffers, batch innermost.** Every per-pixel buffer is ``(D, T, C, H, B)``: D = 2
  directions, T = W + H - 1 columns of the skewed map, C channels, H rows, the B images
  innermost; pixel (r, j) is column t = r + j, row r. The input gates are copied in, and the
  output read back, through ``as_strided`` views of these buffers (no padded copies of maps; see
  :func:`_unskewed`), after one 2-D transpose each (:mod:`fastpixel.fast.layout`). The
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
  A reverse column scan gives the gate gradients; one ``baddbmm_`` per column sends them to both
  taps of the previous column, and dL/dh(t, r) is the "same row" gradient of row r plus the "row
  above" gradient of row r + 1. The state-weight gradients are then one GEMM over all pixels per
  direction (the taps buffer read unskewed is exactly the GEMM's other operand), and the
  input-gate gradients are read out of the skewed gradient buffer.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from fastpixel.fast.autocast import autocast_boundary
from fastpixel.fast.layout import batch_last_to_nchw, nchw_to_batch_last
from fastpixel.fast.lstm_cell import cell_backward_, cell_forward_
from fastpixel.fast.guards import reject_batched_gradients
from fastpixel.fast.workspace import scratch


def _unskewed(buf: torch.Tensor, height: int, width: int, col0: int, row0: int) -> torch.Tensor:
    """View (D, C, H, W, B) of a skewed buffer (D, T', C, H', B): [d, k, r, j, b] -> buf[d, col0 + r + j, k, row0 + r, b]."""
    d, _, k, _, batch = buf.shape
    sd, st, sk, sr, _ = buf.stride()
    offset = buf.storage_offset() + col0 * st + row0 * sr
    return buf.as_strided((d, k, height, width, batch), (sd, sk, st + sr, st, 1), offset)


def _zero_unwritten_(state: torch.Tensor, height: int) -> None:
    """Zero the cells of a (D, T + 1, k, H + 1, B) state buffer that the scan reads but never writes:
    row index 0 (above the image), and [t, :, t + 1] (row t at column t - 1, left of the image), t < H.
    """
    state[:, :, :, 0].zero_()
    d, _, k, _, batch = state.shape
    sd, st, sk, sr, _ = state.stride()
    state.as_strided((d, k, height, batch), (sd, sk, st + sr, 1), state.storage_offset() + sr).zero_()


def _zero_diagonal_(buf: torch.Tensor, height: int) -> None:
    """Zero [t, :, t] of a (D, T + 1, k, H + 1, B) buffer for t < H (row t at column t - 1: left of the image)."""
    d, _, k, _, batch = buf.shape
    sd, st, sk, sr, _ = buf.stride()
    buf.as_strided((d, k, height, batch), (sd, sk, st + sr, 1), buf.storage_offset()).zero_()


def _column(buf: torch.Tensor, t: int, row: int, n: int) -> torch.Tensor:
    """(D, C, n) view of a (D, T', C, H', B) buffer: column index t, the n = rows * B cells from row index ``row``.

    One ``as_strided`` (slicing and viewing would be three ops, and a scan step needs a dozen views).
    """
    sd, st, sk, sr, _ = buf.stride()
    return buf.as_strided((buf.shape[0], buf.shape[2], n), (sd, sk, 1), buf.storage_offset() + t * st + row * sr)


def _state_weights(w_lr: torch.Tensor, w_rl: torch.Tensor, tap: int) -> torch.Tensor:
    """(D, 4h, h): one tap of both directions' (4h, h, 2, 1) kernels."""
    return torch.stack((w_lr[:, :, tap, 0], w_rl[:, :, tap, 0]))


def _copy_doubling_g_(dst: torch.Tensor, src: torch.Tensor, hidden: int) -> None:
    """dst = src with the g block (the last h of dimension 0's 4h gates) doubled; any strides."""
    dst[: 3 * hidden].copy_(src[: 3 * hidden])
    torch.mul(src[3 * hidden :], 2.0, out=dst[3 * hidden :])


def _sum_of_directions(buf: torch.Tensor, height: int, width: int, col0: int, shift: int) -> torch.Tensor:
    """(B, C, H, W) = left-to-right + right-to-left map, the latter mirrored back and shifted down ``shift`` rows.

    buf: a (D, T', C, H', B) skewed buffer holding pixel (r, j) of each direction's scan at
    [col0 + r + j, :, r] (the right-to-left direction scans the mirrored map). The output sums h
    of both directions (``shift`` = 1); the input gradient of the layer sums its two readings of x
    (``shift`` = 0).
    """
    _, _, channels, _, batch = buf.shape
    out = scratch((channels, height, width, batch), buf.dtype, buf.device)
    both = _unskewed(buf, height, width, col0, 0)  # (D, C, H, W, B)
    out.copy_(both[0])
    for j in range(width):  # column W - 1 - j of the mirrored map
        out[:, shift:, j].add_(both[1, :, : height - shift, width - 1 - j])
    return batch_last_to_nchw(out)


def _skew_both_directions_(buf: torch.Tensor, x: torch.Tensor, col0: int, shift: int) -> None:
    """The adjoint layout of :func:`_sum_of_directions`: write the NCHW map x (B, C, H, W) into both
    directions of the skewed buffer ``buf`` (D, T', C, H', B), the right-to-left copy mirrored and
    read ``shift`` rows lower (its last ``shift`` rows, which read nothing, zero)."""
    height, width = x.shape[2:]
    rows = nchw_to_batch_last(x)  # (C, H, W, B)
    both = _unskewed(buf, height, width, col0, 0)
    both[0].copy_(rows)
    for j in range(width):
        both[1, :, : height - shift, j].copy_(rows[:, shift:, width - 1 - j])
    both[1, :, height - shift :].zero_()


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
        view = _unskewed(acts, height, width, 0, 0)  # (D, 4h, H, W, B)
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
        # taps[:, t, :, r] = [h(t-1, r-1) | h(t-1, r)]: what row r of column t reads, both 2x1-conv
        # taps side by side, so the state-to-state product is one baddbmm with K = 2h.
        taps = scratch((2, columns + 1, 2 * hidden, height + 1, batch), dtype, device)
        above, same = taps[:, :, :hidden], taps[:, :, hidden:]
        above[:, :, :, 0].zero_()  # h(t-1, -1): the row above the image
        _zero_diagonal_(same, height)  # h(t-1, t): left of the image
        c = scratch((2, columns + 1, hidden, height + 1, batch), dtype, device)  # c(t-1, r-1) at [t, :, r]
        _zero_unwritten_(c, height)
        m = scratch((2, columns, hidden, height, batch), dtype, device)  # sigmoid(-2c), see lstm_cell
        w_taps = torch.cat((_state_weights(w_lr, w_rl, 0), _state_weights(w_lr, w_rl, 1)), dim=2)  # (D, 4h, 2h)
        w_taps[:, 3 * hidden :].mul_(2.0)
        for t in range(columns):
            lo, hi = max(0, t - width + 1), min(height - 1, t)
            n = (hi - lo + 1) * batch
            g = _column(acts, t, lo, n)
            g.baddbmm_(w_taps, _column(taps, t, lo, n))
            h_new = _column(same, t + 1, lo, n)  # h(t, r) as read by row r of column t + 1
            cell_forward_(
                g, _column(c, t, lo + 1, n), _column(c, t + 1, lo + 1, n), _column(m, t, lo, n), h_new, hidden, 1,
            )
            _column(above, t + 1, lo + 1, n).copy_(h_new)  # ... and by row r + 1
        ctx.save_for_backward(acts, c, m, taps, w_lr, w_rl)
        return _sum_of_directions(same, height, width, 1, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        reject_batched_gradients("diagonal_bilstm_scan", grad_out)
        acts, c, m, taps, w_lr, w_rl = ctx.saved_tensors
        _, columns, four_h, height, batch = acts.shape
        hidden = four_h // 4
        width = columns - height + 1
        # d_taps[:, t, :, r]: dL/d[h(t-1, r-1) | h(t-1, r)] through row r of column t (one baddbmm per
        # column). The "same row" half starts as the output's gradient (shifted up a row for the
        # right-to-left map, which was shifted down); the "row above" half starts at zero.
        d_taps = scratch(tuple(taps.shape), taps.dtype, taps.device)
        d_above, d_same = d_taps[:, :, :hidden], d_taps[:, :, hidden:]
        d_above.zero_()
        _skew_both_directions_(d_same, grad_out, 1, 1)  # dL/dh(t, r) at [t + 1, :, r]
        dc = scratch(tuple(c.shape), c.dtype, c.device)  # dL/dc flowing leftwards; zero after the last pixel of every row
        _unskewed(dc, height, 1, width, 1).zero_()
        d_acts = scratch(tuple(acts.shape), acts.dtype, acts.device)
        w_taps_t = torch.cat((_state_weights(w_lr, w_rl, 0), _state_weights(w_lr, w_rl, 1)), dim=2).transpose(1, 2)
        for t in reversed(range(columns)):
            lo, hi = max(0, t - width + 1), min(height - 1, t)
            n = (hi - lo + 1) * batch
            dh = _column(d_same, t + 1, lo, n).add_(_column(d_above, t + 1, lo + 1, n))  # dL/dh(t, r)
            d_g = _column(d_acts, t, lo, n)
            cell_backward_(
                _column(acts, t, lo, n), _column(m, t, lo, n), _column(c, t, lo + 1, n), dh,
                _column(dc, t + 1, lo + 1, n), d_g, _column(dc, t, lo + 1, n) if t > 0 else None, hidden, 1,
            )
            if t > 0:
                _column(d_taps, t, lo, n).baddbmm_(w_taps_t, d_g)
        # State weights: one GEMM over every pixel per direction, taps [row above | same row].
        pixels = height * width * batch
        d_gates = scratch((2, four_h, height, width, batch), acts.dtype, acts.device)
        d_gates.copy_(_unskewed(d_acts, height, width, 0, 0))
        reads = scratch((2, 2 * hidden, height, width, batch), acts.dtype, acts.device)
        reads.copy_(_unskewed(taps, height, width, 0, 0))  # [h(r - 1, j) | h(r, j - 1)]
        d_w = torch.bmm(d_gates.view(2, four_h, pixels), reads.view(2, 2 * hidden, pixels).transpose(1, 2))
        d_w = d_w.view(2, four_h, 2, hidden).transpose(2, 3).unsqueeze(-1).contiguous()  # (D, 4h, h, 2, 1)
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
