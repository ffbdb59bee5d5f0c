"""Reference Diagonal LSTM scan (paper section 3.2) and the skew that makes it a column scan.

Skew: row r of an (H, W) map is shifted right by r, giving an (H, W + H - 1) map whose column t
holds the pixels (r, t - r) of one anti-diagonal:

    skew(x)[r, t] = x[r, t - r]  if 0 <= t - r < W  else 0,      unskew(s)[r, j] = s[r, j + r].

In the skewed map the Diagonal LSTM is a scan over the W + H - 1 columns. Column t gets

    [o, f, i, g]_t = (K^is * x)_t + K^ss * h_{t-1}           (2x1 conv down the previous column)
    c_t = sigmoid(f) . c_{t-1} + sigmoid(i) . tanh(g)
    h_t = sigmoid(o) . tanh(c_t)

where the 2x1 state-to-state conv gives row r of column t from rows r-1 and r of column t-1:

    (K^ss * h_{t-1})[r] = K^ss[:, :, 0] @ h_{t-1}[r - 1] + K^ss[:, :, 1] @ h_{t-1}[r]

(row -1 is zero). Unskewed, pixel (r, j) thus reads the state of its left neighbour (r, j-1) and of
the pixel above (r-1, j), so one direction sees the whole quadrant above-left of it. The input-to-
state gates are precomputed by a 1x1 mask-B conv; the skew pads them with zeros (not the bias), and
K^ss has no bias, so states left of the image stay exactly 0, like zero padding. States right of the
image are computed but never read back into the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastpixel.reference.row_lstm import lstm_cell


def skew(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W + H - 1) with row r shifted right by r.

    Padding each row with H zeros and re-reading the flat buffer with rows one element shorter
    moves row r right by exactly r: flat index r*(W+H-1) + t is padded index r*(W+H) + (t - r).
    """
    batch, channels, height, width = x.shape
    padded = F.pad(x, (0, height))  # (B, C, H, W + H)
    flat = padded.reshape(batch, channels, height * (width + height))[..., : height * (width + height - 1)]
    return flat.reshape(batch, channels, height, width + height - 1)


def unskew(s: torch.Tensor, width: int) -> torch.Tensor:
    """(B, C, H, W + H - 1) -> (B, C, H, W), the inverse of :func:`skew`.

    Flat index r*(W+H-1) + (j + r) equals r*(W+H) + j: appending H elements and re-reading the buffer
    with rows of W + H elements puts pixel (r, j) at column j.
    """
    batch, channels, height, skewed_width = s.shape
    flat = F.pad(s.reshape(batch, channels, height * skewed_width), (0, height))
    return flat.reshape(batch, channels, height, width + height)[..., :width]


def diagonal_lstm_scan(input_gates: torch.Tensor, state_weight: torch.Tensor) -> torch.Tensor:
    """Run one direction (left to right) of the Diagonal LSTM.

    Args:
      input_gates: (B, 4h, H, W) input-to-state gates (unskewed), bias included, [o | f | i | g].
      state_weight: (4h, h, 2, 1) column kernel; tap 0 reads the row above, tap 1 the same row.
    Returns:
      h: (B, h, H, W), unskewed.
    """
    batch, four_h, height, width = input_gates.shape
    hidden = four_h // 4
    gates_in = skew(input_gates)  # (B, 4h, H, W + H - 1)
    w_above = state_weight[:, :, 0, 0]  # (4h, h)
    w_same = state_weight[:, :, 1, 0]  # (4h, h)
    h = input_gates.new_zeros(batch, hidden, height)
    c = input_gates.new_zeros(batch, hidden, height)
    columns = []
    for t in range(width + height - 1):
        h_above = F.pad(h, (1, 0))[:, :, :height]  # h_above[..., r] = h[..., r - 1]
        recurrent = torch.einsum("gk,bkr->bgr", w_above, h_above) + torch.einsum("gk,bkr->bgr", w_same, h)
        h, c = lstm_cell(gates_in[:, :, :, t] + recurrent, c, hidden)
        columns.append(h)
    return unskew(torch.stack(columns, dim=3), width)


def diagonal_bilstm_scan(
    input_gates_lr: torch.Tensor,
    state_weight_lr: torch.Tensor,
    input_gates_rl: torch.Tensor,
    state_weight_rl: torch.Tensor,
) -> torch.Tensor:
    """Both directions of the Diagonal BiLSTM, combined causally.

    The right-to-left direction is the left-to-right scan of the horizontally mirrored map. Its
    output at (r, j) has read pixels to the right of j in row r -- future pixels -- so it is shifted
    down one row before being added: out[r] = h_lr[r] + h_rl[r - 1] (h_rl[-1] = 0).

    Args: input gates (B, 4h, H, W) and state kernels (4h, h, 2, 1) of each direction.
    Returns: (B, h, H, W).
    """
    h_lr = diagonal_lstm_scan(input_gates_lr, state_weight_lr)
    h_rl = diagonal_lstm_scan(input_gates_rl.flip(3), state_weight_rl).flip(3)
    h_rl_down = F.pad(h_rl, (0, 0, 1, 0))[:, :, :-1]
    return h_lr + h_rl_down


def conv_diagonal_bilstm(x, input_weight, input_bias, spec, state_weight_lr, state_weight_rl, gate_bias=None):
    """Deprecated: the layer is composed for every backend by :func:`fastpixel.ops.conv_diagonal_bilstm`
    (``backend="reference"`` runs this same composition of the reference's conv and scan)."""
    import warnings

    from fastpixel.reference.masked_conv import masked_conv2d

    warnings.warn("fastpixel.reference.conv_diagonal_bilstm is deprecated: use "
                  "fastpixel.ops.conv_diagonal_bilstm(..., backend='reference')", DeprecationWarning, stacklevel=2)
    gates = masked_conv2d(x, input_weight, input_bias, spec)
    if gate_bias is not None:
        gates = gates + gate_bias
    gates_lr, gates_rl = gates.chunk(2, dim=1)
    return diagonal_bilstm_scan(gates_lr, state_weight_lr, gates_rl, state_weight_rl)
