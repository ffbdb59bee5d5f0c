"""The column scan of the torch backend's Diagonal BiLSTM, forward and backward: one driver for the
scan (:mod:`fastpixel.fast.diagonal_bilstm`) and the fused layer (:mod:`fastpixel.fast.diagonal_bilstm_layer`).

Both keep, for every cell of the skewed map (:mod:`fastpixel.fast.skew`), a **feed** row holding
what that cell's gates are a product of; its last 2h channels are the two taps of the 2x1 state
kernel, ``[h(t-1, r-1) | h(t-1, r)]`` (each new h is written twice: as "same row" for row r, as
"row above" for row r + 1). Column t's gates are then ONE batched product over both directions:

    scan:   gates(t) += [K_above | K_same] @ feed(t)             feed = [taps],       K = 2h
    layer:  gates(t)  = [W_in | b | K_above | K_same] @ feed(t)  feed = [x | 1 | taps], K = Cin + 1 + 2h

(``accumulate``: the scan's input gates are already in ``acts``; the layer's come from the product),
followed by the in-place LSTM cell (:mod:`fastpixel.fast.lstm_cell`) on the column's live rows
``max(0, t-W+1) .. min(H-1, t)``. Backward: the reverse scan; each column's product with the
transposed weights gives the gradient of everything it read (``d_feed``), and the column adds its
share of the weight gradient, ``d_gates @ feed^T``, into one (D, 4h, K) accumulator.
"""

from __future__ import annotations

import torch

from fastpixel.fast.lstm_cell import cell_backward_, cell_forward_
from fastpixel.fast.skew import column, unskewed, zero_diagonal_, zero_unwritten_
from fastpixel.fast.workspace import scratch


def _rows(t: int, height: int, width: int, batch: int) -> tuple[int, int]:
    """(first live row of column t, number of live cells rows * B)."""
    lo, hi = max(0, t - width + 1), min(height - 1, t)
    return lo, (hi - lo + 1) * batch


def scan_forward_(
    feed: torch.Tensor, acts: torch.Tensor, c: torch.Tensor, m: torch.Tensor, weights: torch.Tensor,
    hidden: int, width: int, *, accumulate: bool,
) -> None:
    """Run the forward scan over every column, in place.

    feed (D, T + 1, K, H + 1, B): its first K - 2h channels filled by the caller (x, the constant 1),
      its last 2h (the state taps) written here; acts (D, T, 4h, H, B): the input gates on entry if
      ``accumulate``, the gate activations [o, f, i, sigmoid(2 g)] on exit; c (D, T + 1, h, H + 1, B):
      c(t - 1, r - 1) at [t, :, r]; m (D, T, h, H, B) = sigmoid(-2c); weights (D, 4h, K), g rows doubled.
    """
    _, columns, _, height, batch = acts.shape
    k = feed.shape[2]
    above, same = feed[:, :, k - 2 * hidden : k - hidden], feed[:, :, k - hidden :]
    above[:, :, :, 0].zero_()  # h(t-1, -1): the row above the image
    zero_diagonal_(same, height)  # h(t-1, t): left of the image
    zero_unwritten_(c, height)
    for t in range(columns):
        lo, n = _rows(t, height, width, batch)
        g = column(acts, t, lo, n)
        if accumulate:
            g.baddbmm_(weights, column(feed, t, lo, n))
        else:
            torch.bmm(weights, column(feed, t, lo, n), out=g)
        h_new = column(same, t + 1, lo, n)  # h(t, r) as read by row r of column t + 1
        cell_forward_(g, column(c, t, lo + 1, n), column(c, t + 1, lo + 1, n), column(m, t, lo, n), h_new, hidden, 1)
        column(above, t + 1, lo + 1, n).copy_(h_new)  # ... and by row r + 1


def scan_backward_(
    acts: torch.Tensor, c: torch.Tensor, m: torch.Tensor, feed: torch.Tensor, weights_t: torch.Tensor,
    d_out: torch.Tensor, d_feed: torch.Tensor, d_acts: torch.Tensor, d_weights: torch.Tensor, hidden: int,
) -> None:
    """Run the backward scan over every column, in place (the buffers of :func:`scan_forward_`).

    d_out (D, T + 1, h, H + 1, B): dL/dh(t, r) from the layer's output at [t + 1, :, r];
    d_feed (like feed), d_acts (like acts): written with dL/d(feed) and dL/d(pre-activation gates),
    g undoubled; d_weights (D, 4h, K): dL/d(weights) added; weights_t (D, K, 4h): the weights transposed, g NOT doubled.
    """
    _, columns, _, height, batch = acts.shape
    width = columns - height + 1
    k = feed.shape[2]
    d_above, d_same = d_feed[:, :, k - 2 * hidden : k - hidden], d_feed[:, :, k - hidden :]
    # Cells the scan reads but no column writes reach nothing (states right of and below the
    # image): column T, row H, and row t - W of column t >= W.
    d_feed[:, columns].zero_()
    d_feed[:, :, :, height].zero_()
    if height > 1:
        sd, st, sk, sr, _ = d_same.stride()
        d_same.as_strided((d_same.shape[0], hidden, height - 1, batch), (sd, sk, st + sr, 1),
                          d_same.storage_offset() + width * st).zero_()
    dc = scratch(tuple(c.shape), c.dtype, c.device)  # dL/dc flowing leftwards; zero after the last pixel of every row
    unskewed(dc, height, 1, width, 1).zero_()
    for t in reversed(range(columns)):
        lo, n = _rows(t, height, width, batch)
        dh = column(d_out, t + 1, lo, n).add_(column(d_same, t + 1, lo, n)).add_(column(d_above, t + 1, lo + 1, n))
        d_g = column(d_acts, t, lo, n)
        cell_backward_(
            column(acts, t, lo, n), column(m, t, lo, n), column(c, t, lo + 1, n), dh,
            column(dc, t + 1, lo + 1, n), d_g, column(dc, t, lo + 1, n) if t > 0 else None, hidden, 1,
        )
        feed_t = column(feed, t, lo, n)
        torch.bmm(weights_t, d_g, out=column(d_feed, t, lo, n))
        d_weights.baddbmm_(d_g, feed_t.transpose(1, 2))
