"""Reference Row LSTM and Diagonal BiLSTM scans against literal per-pixel loops, and gradcheck.

The loops below follow the paper's equations one pixel at a time, with no skew and no batching,
so they check the vectorised reference (and its skew trick) independently.
"""

from __future__ import annotations

import pytest
import torch

from fastpixel import reference
from fastpixel.reference.diagonal_bilstm import skew, unskew


def cell(gates: torch.Tensor, c_prev: torch.Tensor):
    o, f, i, g = gates.chunk(4)
    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def row_lstm_per_pixel(gates: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """h[r, j] from is[r, j] + sum_k w[:, :, 0, k] @ h[r-1, j-1+k]; c carried down the column."""
    b_, four_h, height, width = gates.shape
    hidden = four_h // 4
    h = torch.zeros(b_, hidden, height, width, dtype=gates.dtype)
    c = torch.zeros_like(h)
    for b in range(b_):
        for r in range(height):
            for j in range(width):
                z = gates[b, :, r, j].clone()
                if r > 0:
                    for k in range(3):
                        if 0 <= j - 1 + k < width:
                            z += w[:, :, 0, k] @ h[b, :, r - 1, j - 1 + k]
                c_prev = c[b, :, r - 1, j] if r > 0 else torch.zeros(hidden, dtype=gates.dtype)
                h[b, :, r, j], c[b, :, r, j] = cell(z, c_prev)
    return h


def diagonal_lstm_per_pixel(gates: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """h[r, j] from is[r, j] + w[...,0] @ h[r-1, j] + w[...,1] @ h[r, j-1]; c from the left neighbour."""
    b_, four_h, height, width = gates.shape
    hidden = four_h // 4
    h = torch.zeros(b_, hidden, height, width, dtype=gates.dtype)
    c = torch.zeros_like(h)
    for b in range(b_):
        for r in range(height):
            for j in range(width):
                z = gates[b, :, r, j].clone()
                if r > 0:
                    z += w[:, :, 0, 0] @ h[b, :, r - 1, j]
                if j > 0:
                    z += w[:, :, 1, 0] @ h[b, :, r, j - 1]
                c_prev = c[b, :, r, j - 1] if j > 0 else torch.zeros(hidden, dtype=gates.dtype)
                h[b, :, r, j], c[b, :, r, j] = cell(z, c_prev)
    return h


SIZES = [(1, 1), (1, 4), (4, 1), (3, 3), (4, 6), (6, 3)]


def test_skew_moves_row_r_right_by_r_and_unskew_inverts_it():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).reshape(2, 3, 4, 5)
    s = skew(x)
    assert s.shape == (2, 3, 4, 8)
    for r in range(4):
        for t in range(8):
            expected = x[:, :, r, t - r] if 0 <= t - r < 5 else torch.zeros(2, 3, dtype=torch.float64)
            torch.testing.assert_close(s[:, :, r, t], expected, rtol=0, atol=0)
    torch.testing.assert_close(unskew(s, 5), x, rtol=0, atol=0)


@pytest.mark.parametrize("height,width", SIZES)
def test_row_lstm_scan_matches_per_pixel_loop(height, width):
    torch.manual_seed(0)
    gates = torch.randn(2, 12, height, width, dtype=torch.float64)
    w = torch.randn(12, 3, 1, 3, dtype=torch.float64) * 0.5
    torch.testing.assert_close(reference.row_lstm_scan(gates, w), row_lstm_per_pixel(gates, w), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("height,width", SIZES)
def test_diagonal_lstm_scan_matches_per_pixel_loop(height, width):
    torch.manual_seed(0)
    gates = torch.randn(2, 20, height, width, dtype=torch.float64)
    w = torch.randn(20, 5, 2, 1, dtype=torch.float64) * 0.5
    torch.testing.assert_close(
        reference.diagonal_lstm_scan(gates, w), diagonal_lstm_per_pixel(gates, w), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("height,width", [(1, 3), (4, 4), (3, 6)])
def test_bilstm_adds_the_mirrored_direction_shifted_down_one_row(height, width):
    torch.manual_seed(0)
    g_lr, g_rl = torch.randn(2, 1, 8, height, width, dtype=torch.float64)
    w_lr, w_rl = torch.randn(2, 8, 2, 2, 1, dtype=torch.float64)
    out = reference.diagonal_bilstm_scan(g_lr, w_lr, g_rl, w_rl)
    lr = diagonal_lstm_per_pixel(g_lr, w_lr)
    rl = diagonal_lstm_per_pixel(g_rl.flip(3), w_rl).flip(3)
    expected = lr.clone()
    expected[:, :, 1:] += rl[:, :, :-1]
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_scans_leave_their_inputs_unchanged():
    gates = torch.randn(1, 8, 3, 4, dtype=torch.float64)
    w_row, w_diag = torch.randn(8, 2, 1, 3, dtype=torch.float64), torch.randn(8, 2, 2, 1, dtype=torch.float64)
    copies = [t.clone() for t in (gates, w_row, w_diag)]
    reference.row_lstm_scan(gates, w_row)
    reference.diagonal_bilstm_scan(gates, w_diag, gates, w_diag)
    for t, c in zip((gates, w_row, w_diag), copies):
        assert torch.equal(t, c)


def test_gradcheck_row_lstm_scan():
    torch.manual_seed(0)
    gates = torch.randn(2, 8, 3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 2, 1, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(reference.row_lstm_scan, (gates, w))


def test_gradcheck_diagonal_bilstm_scan():
    torch.manual_seed(0)
    args = (
        torch.randn(2, 8, 3, 4, dtype=torch.float64, requires_grad=True),
        torch.randn(8, 2, 2, 1, dtype=torch.float64, requires_grad=True),
        torch.randn(2, 8, 3, 4, dtype=torch.float64, requires_grad=True),
        torch.randn(8, 2, 2, 1, dtype=torch.float64, requires_grad=True),
    )
    assert torch.autograd.gradcheck(reference.diagonal_bilstm_scan, args)
