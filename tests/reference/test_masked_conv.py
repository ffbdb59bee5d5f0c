"""Reference masked convolution: the mask lives in the computation, nn.Conv2d's layout, gradcheck."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import fastpixel
from fastpixel import reference
from fastpixel.masks import MaskSpec, color_groups

SHAPES = [((7, 7), "A"), ((3, 3), "B"), ((1, 1), "B"), ((1, 3), "B"), ((1, 3), None)]


@pytest.mark.parametrize("kernel,mask_type", SHAPES)
def test_equals_conv2d_with_masked_weight(kernel, mask_type):
    torch.manual_seed(0)
    layer = fastpixel.MaskedConv2d(5, 7, kernel, mask_type, num_colors=3).double()
    x = torch.randn(2, 5, 6, 9, dtype=torch.float64)
    w = layer.weight * layer.spec.mask(torch.float64)
    expected = F.conv2d(x, w, layer.bias, padding=(kernel[0] // 2, kernel[1] // 2))
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)


def test_column_kernel_reads_the_row_above_and_the_row_itself():
    spec = MaskSpec((2, 1), None, (0,), (0,))
    w = torch.tensor([[[[2.0], [3.0]]]], dtype=torch.float64)
    x = torch.arange(12, dtype=torch.float64).reshape(1, 1, 3, 4)
    y = reference.masked_conv2d(x, w, None, spec)
    above = F.pad(x, (0, 0, 1, 0))[:, :, :-1]
    torch.testing.assert_close(y, 2 * above + 3 * x)


def test_state_dict_matches_nn_conv2d():
    conv = torch.nn.Conv2d(6, 9, 3, padding=1)
    layer = fastpixel.MaskedConv2d(6, 9, 3, "B", num_colors=3)
    assert {k: v.shape for k, v in layer.state_dict().items()} == {k: v.shape for k, v in conv.state_dict().items()}
    layer.load_state_dict(conv.state_dict())
    x = torch.randn(1, 6, 5, 5)
    torch.testing.assert_close(layer(x), F.conv2d(x, conv.weight * layer.spec.mask(), conv.bias, padding=1))
    assert fastpixel.MaskedConv2d(2, 3, 1, "B", bias=False).state_dict().keys() == {"weight"}


def test_mask_holds_whatever_is_written_into_the_weight():
    """After load_state_dict, an optimizer step, EMA or a direct write, closed taps still read nothing."""
    torch.manual_seed(0)
    layer = fastpixel.MaskedConv2d(3, 6, 3, "A", num_colors=3)
    x = torch.randn(2, 3, 5, 5)
    before = layer(x).detach()
    closed = layer.spec.mask() == 0
    with torch.no_grad():
        layer.weight[closed] = 100.0  # a direct write
    torch.testing.assert_close(layer(x), before)
    state = copy.deepcopy(layer.state_dict())
    state["weight"][closed] = -7.0
    layer.load_state_dict(state)
    torch.testing.assert_close(layer(x), before)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, weight_decay=0.5)  # decay moves closed taps too
    layer(x).square().sum().backward()
    assert (layer.weight.grad[closed] == 0).all()
    opt.step()
    ema = torch.optim.swa_utils.AveragedModel(layer, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(0.9))
    ema.update_parameters(layer)
    y = layer(x)
    with torch.no_grad():
        layer.weight[closed] = 0.0
    torch.testing.assert_close(y, layer(x))
    torch.testing.assert_close(ema.module(x), F.conv2d(x, ema.module.weight * layer.spec.mask(), ema.module.bias, padding=1))


@pytest.mark.parametrize("kernel,mask_type", SHAPES + [((2, 1), None)])
def test_gradcheck(kernel, mask_type):
    torch.manual_seed(0)
    center = (1, 0) if kernel == (2, 1) else None
    spec = MaskSpec(kernel, mask_type, color_groups(4, 3), color_groups(5, 3), center)
    x = torch.randn(2, 4, 4, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, *kernel, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: reference.masked_conv2d(*a, spec), (x, w, b))
