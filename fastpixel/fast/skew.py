"""The skewed layout of the torch backend's Diagonal BiLSTM, shared by its scan and its fused layer.

Every per-pixel buffer of the scan is ``(D, T', C, H', B)``: D = 2 directions, T' >= W + H - 1
columns of the skewed map, C channels, H' >= H rows, the B images innermost. Pixel (r, j) of a
direction's map is column ``col0 + r + j``, row ``row0 + r``; the right-to-left direction is the
left-to-right scan of the map mirrored left-right. Everything here is a strided view or an
in-place copy: no padded copies of maps.

* :func:`column` -- the cells one scan step touches (column t, rows lo.., the images innermost);
* :func:`unskewed` -- a (D, C, H, W, B) view of a skewed buffer, pixel (r, j) where it lives;
* :func:`skew_both_directions_` / :func:`sum_of_directions` -- an NCHW map into both directions
  (the right-to-left copy mirrored, read ``shift`` rows lower) and its adjoint (both directions
  summed back into one NCHW map, the right-to-left one mirrored back and shifted down);
* :func:`zero_unwritten_` / :func:`zero_diagonal_` -- the cells a scan reads but never writes
  (states above and left of the image), zeroed as the reference's zero padding.
"""

from __future__ import annotations

import torch

from fastpixel.fast.layout import batch_last_to_nchw, nchw_to_batch_last
from fastpixel.fast.workspace import scratch

__all__ = ["column", "skew_both_directions_", "sum_of_directions", "unskewed", "zero_diagonal_", "zero_unwritten_"]


def unskewed(buf: torch.Tensor, height: int, width: int, col0: int, row0: int) -> torch.Tensor:
    """View (D, C, H, W, B) of a skewed buffer (D, T', C, H', B): [d, k, r, j, b] -> buf[d, col0 + r + j, k, row0 + r, b]."""
    d, _, k, _, batch = buf.shape
    sd, st, sk, sr, _ = buf.stride()
    offset = buf.storage_offset() + col0 * st + row0 * sr
    return buf.as_strided((d, k, height, width, batch), (sd, sk, st + sr, st, 1), offset)


def column(buf: torch.Tensor, t: int, row: int, n: int) -> torch.Tensor:
    """(D, C, n) view of a (D, T', C, H', B) buffer: column index t, the n = rows * B cells from row index ``row``.

    One ``as_strided`` (slicing and viewing would be three ops, and a scan step needs a dozen views).
    """
    sd, st, sk, sr, _ = buf.stride()
    return buf.as_strided((buf.shape[0], buf.shape[2], n), (sd, sk, 1), buf.storage_offset() + t * st + row * sr)


def zero_unwritten_(state: torch.Tensor, height: int) -> None:
    """Zero the cells of a (D, T + 1, k, H + 1, B) state buffer that the scan reads but never writes:
    row index 0 (above the image), and [t, :, t + 1] (row t at column t - 1, left of the image), t < H.
    """
    state[:, :, :, 0].zero_()
    d, _, k, _, batch = state.shape
    sd, st, sk, sr, _ = state.stride()
    state.as_strided((d, k, height, batch), (sd, sk, st + sr, 1), state.storage_offset() + sr).zero_()


def zero_diagonal_(buf: torch.Tensor, height: int) -> None:
    """Zero [t, :, t] of a (D, T + 1, k, H + 1, B) buffer for t < H (row t at column t - 1: left of the image)."""
    d, _, k, _, batch = buf.shape
    sd, st, sk, sr, _ = buf.stride()
    buf.as_strided((d, k, height, batch), (sd, sk, st + sr, 1), buf.storage_offset()).zero_()


def sum_of_directions(buf: torch.Tensor, height: int, width: int, col0: int, shift: int) -> torch.Tensor:
    """(B, C, H, W) = left-to-right + right-to-left map, the latter mirrored back and shifted down ``shift`` rows.

    buf: a (D, T', C, H', B) skewed buffer holding pixel (r, j) of each direction's scan at
    [col0 + r + j, :, r] (the right-to-left direction scans the mirrored map). The output sums h
    of both directions (``shift`` = 1); the input gradient of the layer sums its two readings of x
    (``shift`` = 0).
    """
    _, _, channels, _, batch = buf.shape
    out = scratch((channels, height, width, batch), buf.dtype, buf.device)
    both = unskewed(buf, height, width, col0, 0)  # (D, C, H, W, B)
    out.copy_(both[0])
    for j in range(width):  # column W - 1 - j of the mirrored map
        out[:, shift:, j].add_(both[1, :, : height - shift, width - 1 - j])
    return batch_last_to_nchw(out)


def skew_both_directions_(buf: torch.Tensor, x: torch.Tensor, col0: int, shift: int) -> None:
    """The adjoint layout of :func:`sum_of_directions`: write the NCHW map x (B, C, H, W) into both
    directions of the skewed buffer ``buf`` (D, T', C, H', B), the right-to-left copy mirrored and
    read ``shift`` rows lower (its last ``shift`` rows, which read nothing, zero)."""
    height, width = x.shape[2:]
    rows = nchw_to_batch_last(x)  # (C, H, W, B)
    both = unskewed(buf, height, width, col0, 0)
    both[0].copy_(rows)
    for j in range(width):
        both[1, :, : height - shift, j].copy_(rows[:, shift:, width - 1 - j])
    both[1, :, height - shift :].zero_()
