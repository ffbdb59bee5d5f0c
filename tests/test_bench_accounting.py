"""bench.accounting / bench.timing / bench.machine: FLOP and byte counts against hand counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from bench import accounting
from bench.accounting import Cost
from bench.machine import machine_header, measure_ceilings
from bench.timing import quantile, time_cpu
from fastpixel.masks import MaskSpec, color_groups


def test_mask_a_7x7_rgb_useful_flops_match_a_hand_count():
    # 3 RGB inputs -> 6 outputs (2 per colour). Open taps: 3 full rows of 7 + 3 to the left of the
    # centre = 24 taps reading all 3 x 6 channel pairs; the centre lets output group g read input
    # groups < g: outputs of R read nothing, of G read R, of B read R and G: 2 * (0 + 1 + 2) = 6.
    spec = MaskSpec((7, 7), "A", color_groups(3, 3), color_groups(6, 3))
    open_taps = 24 * 3 * 6 + 6
    assert open_taps == 438
    b, h, w = 2, 5, 4
    cost = accounting.masked_conv_cost(spec, b, h, w, itemsize=4)
    bias_adds = b * h * w * 6
    assert cost.forward.flops == 2 * b * h * w * open_taps + bias_adds
    assert cost.forward.dense_flops == 2 * b * h * w * 49 * 3 * 6 + bias_adds
    assert spec.useful_fraction() == pytest.approx(open_taps / (49 * 18))


def test_mask_b_3x3_grey_counts_the_centre_tap():
    spec = MaskSpec((3, 3), "B", color_groups(4, 1), color_groups(5, 1))
    cost = accounting.masked_conv_cost(spec, 1, 1, 1, itemsize=4, bias=False)
    assert cost.forward.flops == 2 * 5 * 4 * 5  # 3 above + 1 left + the centre, all channels


def test_dense_conv_flops_agree_with_torch_flop_counter():
    spec = MaskSpec((1, 3), "B", color_groups(6, 3), color_groups(9, 3))
    x, wt = torch.randn(2, 6, 5, 7), torch.randn(9, 6, 1, 3)
    with FlopCounterMode(display=False) as counter:
        F.conv2d(F.pad(x, spec.padding), wt)
    cost = accounting.masked_conv_cost(spec, 2, 5, 7, itemsize=4, bias=False)
    assert cost.forward.dense_flops == counter.get_total_flops()


def test_masked_conv_minimum_bytes():
    spec = MaskSpec((3, 3), "B", color_groups(2, 1), color_groups(3, 1))
    c = accounting.masked_conv_cost(spec, 2, 4, 5, itemsize=4)
    x, y, params = 2 * 2 * 20, 2 * 3 * 20, 3 * 2 * 9 + 3
    assert c.forward.bytes == 4 * (x + y + params)
    # backward reads dy, x, w and writes dx, dw
    assert c.forward_backward.bytes == 4 * (x + y + params) + 4 * (y + x + params + x + params)
    assert c.forward_backward.flops == 3 * c.forward.flops


def test_row_lstm_flops_per_pixel_hand_count():
    hid = 2
    per_pixel = 2 * (4 * hid) * (3 * hid) + 4 * hid + 9 * hid  # 1x3 state conv, gate add, cell
    c = accounting.row_lstm_cost(3, hid, 4, 5, itemsize=8)
    assert c.forward.flops == c.forward.dense_flops == 3 * 4 * 5 * per_pixel


def test_diagonal_bilstm_dense_counts_the_skewed_cells():
    b, hid, h, w = 1, 3, 4, 6
    c = accounting.diagonal_bilstm_cost(b, hid, h, w, itemsize=4)
    per_cell = 2 * (4 * hid) * (2 * hid) + 4 * hid + 9 * hid
    combine = b * hid * h * w
    assert c.forward.flops == 2 * b * h * w * per_cell + combine
    assert c.forward.dense_flops == 2 * b * h * (w + h - 1) * per_cell + combine


def test_cross_entropy_cost():
    c = accounting.cross_entropy_cost(2, 256, 3, 4, 4, itemsize=2)
    n = 2 * 3 * 16
    assert c.forward.flops == n * (4 * 256 + 2)
    assert c.forward.bytes == n * 256 * 2 + n * 8 + n * 4  # bf16 logits, int64 targets, fp32 loss


@pytest.mark.parametrize(
    "cost, seconds, expected",
    [
        (Cost(1e6, 1e6, 1e9), 2.0, 0.5),  # memory bound: 1 GB at 1 GB/s = 1 s roof
        (Cost(4e12, 4e12, 1e3), 8.0, 0.5),  # compute bound: 4 TFLOP at 1 TFLOP/s = 4 s roof
    ],
)
def test_roofline_fraction(cost, seconds, expected):
    assert accounting.roofline_fraction(cost, seconds, 1e12, 1e9) == pytest.approx(expected)


def test_cost_arithmetic_and_intensity():
    c = Cost(10, 20, 5) * 3 + Cost(1, 1, 1)
    assert (c.flops, c.dense_flops, c.bytes) == (31, 61, 16)
    assert c.intensity == pytest.approx(31 / 16)


def test_quantile_matches_numpy():
    xs = [5.0, 1.0, 4.0, 2.0, 3.0, 9.0, 7.0]
    for q in (0.0, 0.2, 0.5, 0.8, 1.0):
        assert quantile(xs, q) == pytest.approx(float(np.quantile(xs, q)))


def test_cpu_timer_orders_its_percentiles():
    t = time_cpu(lambda: sum(range(2000)), reps=5, budget_s=0.2)
    assert 0 < t.p20 <= t.median <= t.p80 and t.reps >= 3


def test_ceilings_and_header_on_cpu():
    c = measure_ceilings("cpu", torch.float32, copy_mib=4, matmul_n=128)
    assert c["copy_bytes"] == 2 * 4 * 2**20
    for key in ("bytes_per_s", "flops_per_s"):
        assert math.isfinite(c[key]) and c[key] > 0
    m = machine_header("cpu", torch.float32)
    assert m["device"] == "cpu" and m["gpu_name"] is None and m["torch"] == torch.__version__
    assert m["date"].endswith("+00:00") and m["dtype"] == "float32"
