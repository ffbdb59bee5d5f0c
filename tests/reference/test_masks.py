"""Mask construction (paper section 3.4) for every kernel shape the models use."""

from __future__ import annotations

import pytest
import torch

from fastpixel.masks import MaskSpec, color_groups, gate_groups, logit_groups


def test_color_groups_are_contiguous_and_balanced():
    assert color_groups(3, 3) == (0, 1, 2)
    assert color_groups(1, 1) == (0,)
    groups = color_groups(128, 3)
    assert [groups.count(g) for g in range(3)] == [43, 43, 42]
    assert list(groups) == sorted(groups)
    assert color_groups(5, 1) == (0,) * 5


def test_gate_and_logit_groups_repeat_the_grouping():
    h = color_groups(5, 3)
    assert gate_groups(5, 3) == h * 4
    assert logit_groups(4, 3) == (0, 1, 2) * 4
    assert logit_groups(2, 1) == (0, 0)


@pytest.mark.parametrize("kernel", [(7, 7), (3, 3), (1, 1), (1, 3), (5, 3)])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_spatial_structure(kernel, mask_type):
    spec = MaskSpec(kernel, mask_type, color_groups(4, 1), color_groups(5, 1))
    m = spec.mask()
    kh, kw = kernel
    cy, cx = kh // 2, kw // 2
    for y in range(kh):
        for x in range(kw):
            tap = m[:, :, y, x]
            if y < cy or (y == cy and x < cx):
                assert tap.all()
            elif (y, x) == (cy, cx):
                assert tap.all() if mask_type == "B" else not tap.any()
            else:
                assert not tap.any()


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_centre_tap_colour_groups(mask_type):
    in_groups, out_groups = color_groups(7, 3), color_groups(8, 3)  # neither divisible by 3
    spec = MaskSpec((3, 3), mask_type, in_groups, out_groups)
    centre = spec.mask()[:, :, 1, 1]
    for o, go in enumerate(out_groups):
        for i, gi in enumerate(in_groups):
            allowed = gi < go if mask_type == "A" else gi <= go
            assert bool(centre[o, i]) == allowed
    assert spec.center_limit() == tuple(int(centre[o].sum()) for o in range(8))


def test_image_channels_with_mask_a():
    spec = MaskSpec((7, 7), "A", (0, 1, 2), color_groups(6, 3))
    centre = spec.mask()[:, :, 3, 3]
    assert centre.tolist() == [[0, 0, 0]] * 2 + [[1, 0, 0]] * 2 + [[1, 1, 0]] * 2


def test_unmasked_and_column_kernels():
    assert MaskSpec((1, 3), None, (0,) * 4, (0,) * 8).mask().all()
    column = MaskSpec((2, 1), None, (0,) * 4, (0,) * 8)
    assert column.center == (1, 0)
    assert column.padding == (0, 0, 1, 0)  # the row above and the row itself


def test_useful_fraction_of_the_paper_kernels():
    groups = color_groups(256, 3)
    a7 = MaskSpec((7, 7), "A", groups, groups).useful_fraction()
    b3 = MaskSpec((3, 3), "B", groups, groups).useful_fraction()
    b1 = MaskSpec((1, 1), "B", groups, groups).useful_fraction()
    assert a7 == pytest.approx((24 + 1 / 3) / 49, abs=0.01)
    assert b3 == pytest.approx((4 + 2 / 3) / 9, abs=0.01)
    assert b1 == pytest.approx(2 / 3, abs=0.01)


def test_spec_is_hashable_and_mask_is_cached():
    a = MaskSpec((3, 3), "B", (0, 1, 2), (0, 1, 2))
    b = MaskSpec((3, 3), "B", (0, 1, 2), (0, 1, 2))
    assert a == b and hash(a) == hash(b)
    assert a.mask() is b.mask()


def test_bad_specs_raise():
    with pytest.raises(ValueError, match="mask_type must be"):
        MaskSpec((3, 3), "C", (0,), (0,))
    with pytest.raises(ValueError, match="non-decreasing"):
        MaskSpec((3, 3), "B", (1, 0), (0,))
    with pytest.raises(ValueError, match="outside kernel"):
        MaskSpec((3, 3), "B", (0,), (0,), center=(3, 0))
    with pytest.raises(ValueError, match="kernel_size must be positive"):
        MaskSpec((0, 3), "B", (0,), (0,))
    with pytest.raises(ValueError, match="num_colors must be 1 or 3"):
        color_groups(4, 2)
    with pytest.raises(ValueError, match="num_features must be >= 1"):
        color_groups(0, 3)


def test_a_mask_first_built_in_inference_mode_still_trains():
    import fastpixel

    layer = fastpixel.MaskedConv2d(2, 3, (3, 5), "B")  # a kernel shape no other test builds
    x = torch.randn(1, 2, 4, 4)
    with torch.inference_mode():
        layer(x)
    layer(x).sum().backward()
    assert layer.weight.grad is not None
