"""Receptive fields (paper Figure 4), derived and observed.

Layer level: what one Row LSTM / Diagonal BiLSTM / stack of PixelCNN convs sees, against closed-form
shapes. Model level: the Jacobian pattern of every model equals the set-propagation derivation in
``dependency_calculus`` exactly, and never reaches a sub-pixel at or after the prediction.
"""

from __future__ import annotations

import pytest
import torch

import fastpixel
from tests import dependency_calculus as calc


def layer_jacobian_pattern(layer, in_channels: int, height: int, width: int, r: int, j: int) -> torch.Tensor:
    """(H, W) bool: does any output unit of ``layer`` at (r, j) depend on the input at (r', j')?"""
    torch.manual_seed(1)
    x = torch.randn(1, in_channels, height, width, dtype=torch.float64, requires_grad=True)
    seen = torch.zeros(height, width, dtype=torch.bool)
    out = layer(x)
    for unit in range(out.shape[1]):
        (grad,) = torch.autograd.grad(out[0, unit, r, j], x, retain_graph=True)
        seen |= grad[0].abs().amax(dim=0) > 0
    return seen


def causal_context(height: int, width: int, r: int, j: int) -> torch.Tensor:
    """Every pixel above (r, j) and to its left in row r, and (r, j) itself (mask B, one colour)."""
    rows = torch.arange(height)[:, None]
    cols = torch.arange(width)[None, :]
    return (rows < r) | ((rows == r) & (cols <= j))


@pytest.mark.parametrize("height,width", [(5, 5), (4, 7), (6, 3)])
def test_diagonal_bilstm_layer_sees_its_entire_context(height, width):
    layer = fastpixel.DiagonalBiLSTM(3, 4, num_colors=1).double()
    for r in range(height):
        for j in sorted({0, width // 2, width - 1}):
            seen = layer_jacobian_pattern(layer, 3, height, width, r, j)
            assert torch.equal(seen, causal_context(height, width, r, j)), (r, j)


@pytest.mark.parametrize("height,width", [(5, 7), (6, 4)])
def test_row_lstm_layer_sees_a_triangle(height, width):
    """Row r - d reads columns j - 1 - d .. j + d (d >= 0; row r itself: j - 1 .. j)."""
    layer = fastpixel.RowLSTM(3, 4, num_colors=1).double()
    for r in range(height):
        for j in sorted({0, width // 2, width - 1}):
            expected = torch.zeros(height, width, dtype=torch.bool)
            for d in range(r + 1):
                expected[r - d, max(0, j - 1 - d) : j + d + 1] = True
            assert torch.equal(layer_jacobian_pattern(layer, 3, height, width, r, j), expected), (r, j)


def test_pixelcnn_stack_field_and_blind_spot():
    """A 7x7 mask-A conv then k 3x3 mask-B convs: offsets are Minkowski sums of the two tap sets.

    The 3x3 mask-B taps {(-1,-1), (-1,0), (-1,1), (0,-1), (0,0)} never reach right of the centre in the
    current row and grow the field up-right only one column per row: the famous blind spot.
    """
    height, width, k = 9, 11, 2
    convs = [fastpixel.MaskedConv2d(1, 4, 7, "A")] + [fastpixel.MaskedConv2d(4, 4, 3, "B") for _ in range(k)]
    stack = torch.nn.Sequential(*convs).double()
    first = {(dy, dx) for dy in range(-3, 1) for dx in range(-3, 4) if dy < 0 or dx < 0}
    step = {(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0)}
    offsets = set(first)
    for _ in range(k):
        offsets = {(a + c, b + d) for a, b in offsets for c, d in step}
    r, j = 6, 5
    expected = torch.zeros(height, width, dtype=torch.bool)
    for dy, dx in offsets:
        if 0 <= r + dy < height and 0 <= j + dx < width:
            expected[r + dy, j + dx] = True
    seen = layer_jacobian_pattern(stack, 1, height, width, r, j)
    assert torch.equal(seen, expected)
    assert not seen[r - 1, j + 5]  # inside the causal context, yet unseen: the blind spot
    assert not seen[r, j]  # mask A at the first layer hides the pixel itself


MODEL_CASES = [
    (name, channels, skip)
    for name in ("pixelcnn", "row_lstm", "diagonal_bilstm")
    for channels, skip in ((1, False), (3, False), (3, True))
]


@pytest.mark.parametrize("name,channels,skip", MODEL_CASES)
def test_model_jacobian_equals_derived_dependencies(name, channels, skip):
    torch.manual_seed(0)
    height, width = 4, 6
    model = fastpixel.create_model(name, channels=channels, levels=3, hidden=4, layers=2, skip=skip).double()
    derived = calc.model_dependencies(model, height, width)
    observed = calc.jacobian_dependencies(model, height, width)
    assert torch.equal(observed, derived)
    # never the sub-pixel itself or anything after it
    assert not (derived & ~calc.generation_order_mask(channels, height, width)).any()


@pytest.mark.parametrize("channels", [1, 3])
def test_diagonal_bilstm_model_misses_only_the_last_subpixel_of_the_row_above(channels):
    """Derived (and now tested): behind the 7x7 mask-A layer, the last sub-pixel of row r-1 (pixel
    (r-1, W-1), last colour) is seen at layer 1 only by pixels of row r within the conv's reach
    (j >= W - 4); every later layer reads row r only leftwards (left-to-right LSTM) and row r-1
    only through the right-to-left LSTM of row r-1, which never held it. So pixels (r, j < W - 4)
    cannot see it, however deep the model -- the only sub-pixel of the causal context they miss.
    """
    height, width = 4, 8
    model = fastpixel.create_model("diagonal_bilstm", channels=channels, levels=3, hidden=4, layers=3).double()
    observed = calc.jacobian_dependencies(model, height, width)
    context = calc.generation_order_mask(channels, height, width)
    missing = context & ~observed
    expected_missing = torch.zeros_like(missing)
    for r in range(1, height):
        last_of_row_above = ((r - 1) * width + width - 1) * channels + channels - 1
        expected_missing[:, r, : width - 4, last_of_row_above] = True
    assert torch.equal(missing, expected_missing)


def test_row_lstm_model_field_is_triangular():
    """A Row LSTM model cannot see far-right pixels of the rows just above (Figure 4, centre)."""
    height, width = 5, 9
    model = fastpixel.create_model("row_lstm", channels=1, levels=2, hidden=3, layers=1).double()
    observed = calc.jacobian_dependencies(model, height, width)
    r, j = 2, 0
    seen = observed[0, r, j].reshape(height, width)
    assert not seen[r - 1, width - 1]
    assert seen[r - 1, j]
    assert torch.equal(observed, calc.model_dependencies(model, height, width))
