"""The Gated PixelCNN (van den Oord et al. 2016): no blind spot, causal per colour group, its first
layer's exact field, mask V on every backend, cached sampling equal to naive, backend parity.

Receptive fields are observed by gradients of float64 models with random weights (the Jacobian of
the logits in the embedded input; ``tests.dependency_calculus``) and compared with the derivation
and with the set of every sub-pixel before the prediction in raster-then-RGB order.
"""

from __future__ import annotations

import pytest
import torch

import fastpixel
from fastpixel.layers.gated import GatedBlock
from fastpixel.masks import MaskSpec, color_groups
from fastpixel.ops.masked_conv import masked_conv2d
from fastpixel.sampling import cached_logits, sample
from tests import dependency_calculus as calc


def gated(channels=1, levels=3, hidden=4, layers=2, skip=False, seed=0, **kw):
    torch.manual_seed(seed)
    return fastpixel.create_model("gated_pixelcnn", channels=channels, levels=levels, hidden=hidden, layers=layers,
                                  skip=skip, backend="reference", **kw).double()


# -- receptive field: the whole causal context, nothing at or after --------------------------------
@pytest.mark.parametrize("channels,skip", [(1, False), (3, False), (3, True)])
def test_jacobian_equals_derivation_and_is_causal(channels, skip):
    model = gated(channels, hidden=4, layers=1, skip=skip)
    height, width = 6, 9  # wider and taller than one layer's reach: the derivation decides
    observed = calc.jacobian_dependencies(model, height, width)
    assert torch.equal(observed, calc.model_dependencies(model, height, width))
    context = calc.generation_order_mask(channels, height, width)
    assert not (observed & ~context).any()  # nothing at or after the predicted sub-pixel
    assert observed.any()


@pytest.mark.parametrize("channels", [1, 3])
def test_no_blind_spot_where_the_pixelcnn_has_one(channels):
    """Within reach (3 + layers rows and columns), every sub-pixel before (r, j, c) is seen.

    The PixelCNN of the same depth (7x7 mask A, then 3x3 mask-B blocks) sees the row above only up
    to 3 columns right of j; (r - 1, j + 4) and beyond are its blind spot. The Gated PixelCNN sees them.
    """
    height, width, layers = 5, 7, 3
    model = gated(channels, layers=layers)
    observed = calc.jacobian_dependencies(model, height, width)
    context = calc.generation_order_mask(channels, height, width)
    assert torch.equal(observed, context)  # exactly the causal context: everything before, nothing else

    torch.manual_seed(0)
    pixelcnn = fastpixel.create_model("pixelcnn", channels=channels, levels=3, hidden=4, layers=layers,
                                      backend="reference").double()
    pixelcnn_seen = calc.jacobian_dependencies(pixelcnn, height, width)
    missed = context & ~pixelcnn_seen
    assert missed.any()

    def sub_pixels(r, j):
        return [(r * width + j) * channels + c for c in range(channels)]

    r, j = 3, 0
    for target in range(channels):
        for jj in range(4, width):  # the row above, 4+ columns right: the PixelCNN's blind spot
            assert not pixelcnn_seen[target, r, j, sub_pixels(r - 1, jj)].any(), (target, jj)
            assert observed[target, r, j, sub_pixels(r - 1, jj)].all(), (target, jj)
    assert (observed | ~missed).all()  # every sub-pixel the PixelCNN misses, this model sees


def _layer_pattern(block: GatedBlock, channels: int, height: int, width: int, r: int, j: int):
    """{(stack, out group): (C, H, W) bool} input dependencies of the layer's outputs at (r, j), v = h = x."""
    torch.manual_seed(1)
    x = torch.randn(1, channels, height, width, dtype=torch.float64, requires_grad=True)
    v, h = block(x, x)
    groups = color_groups(block.hidden, channels)
    seen = {}
    for name, out in (("v", v), ("h", h)):
        for unit in range(block.hidden):
            (grad,) = torch.autograd.grad(out[0, unit, r, j], x, retain_graph=True)
            key = (name, groups[unit])
            seen[key] = seen.get(key, torch.zeros(channels, height, width, dtype=torch.bool)) | (grad[0] != 0)
    return seen


@pytest.mark.parametrize("channels", [1, 3])
def test_first_layer_alone_reads_rows_above_the_left_and_earlier_colours(channels):
    """Layer 0 (n = 7, k = 3): v'(r, j) reads rows r-3..r-1, columns j-3..j+3, every colour; h'(r, j)
    reads that too (through the link) and row r, columns j-3..j-1 (mask A: not the pixel itself),
    and at (r, j) itself only the colours before its own group. Nothing else."""
    torch.manual_seed(0)
    block = GatedBlock(channels, 6, kernel_size=7, first=True, num_colors=channels).double()
    height, width = 6, 8
    for r, j in [(0, 0), (2, 5), (5, 1), (5, 7), (4, 3)]:
        above = torch.zeros(channels, height, width, dtype=torch.bool)
        above[:, max(0, r - 3) : r, max(0, j - 3) : j + 4] = True
        left = torch.zeros_like(above)
        left[:, r, max(0, j - 3) : j] = True
        seen = _layer_pattern(block, channels, height, width, r, j)
        for g in range(channels):
            assert torch.equal(seen[("v", g)], above), (r, j, g)
            own = torch.zeros_like(above)
            own[:g, r, j] = True  # mask A: colours strictly before group g
            assert torch.equal(seen[("h", g)], above | left | own), (r, j, g)


def test_later_layer_vertical_conv_reads_its_centre_row_and_no_row_below():
    layer = GatedBlock(4, 4, kernel_size=5, first=False)
    spec = layer.vertical.spec
    assert spec.kernel_size == (3, 5) and spec.center == (2, 2) and spec.mask_type is None
    assert layer.horizontal.spec.kernel_size == (1, 3) and layer.horizontal.spec.mask_type == "B"
    assert layer.link.spec.kernel_size == (1, 1) and layer.link.spec.mask_type is None  # link: 1x1, unmasked


# -- mask V -----------------------------------------------------------------------------------------
def test_mask_v_opens_the_rows_above_only():
    spec = MaskSpec((4, 7), "V", color_groups(3, 3), color_groups(6, 3), center=(3, 3))
    m = spec.mask(torch.float64)
    assert m[:, :, :3].eq(1).all() and m[:, :, 3].eq(0).all()
    assert spec.open_taps() == 21 and spec.center_limit() == (0,) * 6 and not spec.center_by_group


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("mask_type,kernel,center", [("V", (4, 5), (3, 2)), ("V", (3, 3), None), (None, (2, 3), (1, 1))])
def test_mask_v_and_bottom_centred_convs_on_every_backend(backend, mask_type, kernel, center):
    spec = MaskSpec(kernel, mask_type, color_groups(3, 3), color_groups(5, 3), center)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 3, *kernel, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(2, 5, 4, 6, generator=g, dtype=torch.float64)
    results = {}
    for name in ("reference", backend):
        y = masked_conv2d(x, w, b, spec, backend=name)
        grads = torch.autograd.grad(y, (x, w, b), dy)
        results[name] = (y, *grads)
    for want, got in zip(results["reference"], results[backend]):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    if mask_type == "V":
        assert results[backend][2][:, :, spec.center[0] :].eq(0).all()  # closed taps get no gradient


# -- cached sampling --------------------------------------------------------------------------------
@pytest.mark.parametrize("channels,levels,skip", [(1, 2, False), (3, 8, True), (3, 2, False)])
@pytest.mark.parametrize("kernel_size,first_kernel_size", [(3, 7), (5, 3)])
def test_cached_equals_naive(channels, levels, skip, kernel_size, first_kernel_size):
    model = gated(channels, levels, hidden=5, layers=2, skip=skip, kernel_size=kernel_size,
                  first_kernel_size=first_kernel_size)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    x = torch.randint(0, levels, (2, channels, 5, 4), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(cached_logits(model, x), model(x), rtol=1e-10, atol=1e-12)
    kw = dict(height=4, width=6, generator=None)
    naive = sample(model, 3, method="naive", **(kw | {"generator": torch.Generator().manual_seed(7)}))
    cached = sample(model, 3, method="cached", **(kw | {"generator": torch.Generator().manual_seed(7)}))
    assert torch.equal(naive, cached) and naive.unique().numel() > 1


@pytest.mark.parametrize("height,width", [(1, 1), (1, 5), (6, 1), (2, 9)])
def test_any_height_and_width(height, width):
    model = gated(3, 4, layers=1)
    x = torch.randint(0, 4, (2, 3, height, width))
    logits = model(x)
    assert logits.shape == (2, 4, 3, height, width)
    torch.testing.assert_close(cached_logits(model, x), logits, rtol=1e-10, atol=1e-12)


def test_bad_kernel_sizes():
    for kw in (dict(kernel_size=4), dict(first_kernel_size=1), dict(kernel_size=0), dict(first_kernel_size=True)):
        with pytest.raises(ValueError, match="kernel_size must be an odd int"):
            fastpixel.create_model("gated_pixelcnn", channels=1, levels=2, hidden=2, layers=1, **kw)


# -- backends ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("conditional", [False, True])
def test_every_backend_gives_the_reference_forward_and_every_gradient(conditional):
    extra = dict(num_classes=3, cond_features=2) if conditional else {}
    model = gated(3, 4, hidden=4, layers=1, skip=True, **extra)
    x = torch.randint(0, 4, (2, 3, 3, 5), generator=torch.Generator().manual_seed(2))
    cond = dict(labels=torch.tensor([2, 0]), cond=torch.randn(2, 2, dtype=torch.float64)) if conditional else {}
    results = {}
    for backend in ("reference", "torch", "triton"):
        model.to_backend(backend)
        model.zero_grad(set_to_none=True)
        log_p = model.log_prob(x, **cond)
        (log_p * torch.tensor([1.0, -0.5], dtype=torch.float64)).sum().backward()
        results[backend] = (log_p.detach(), {k: p.grad.clone() for k, p in model.named_parameters()})
    want_lp, want_grads = results["reference"]
    assert len(want_grads) == len(list(model.parameters()))
    for backend in ("torch", "triton"):
        got_lp, got_grads = results[backend]
        torch.testing.assert_close(got_lp, want_lp, rtol=1e-10, atol=1e-10)
        for key, grad in want_grads.items():
            torch.testing.assert_close(got_grads[key], grad, rtol=1e-10, atol=1e-10, msg=lambda m, k=key: f"{k}: {m}")


def test_float32_torch_backend_matches_the_reference_within_float32_rounding():
    torch.manual_seed(0)
    model = fastpixel.create_model("gated_pixelcnn", channels=1, levels=2, hidden=8, layers=2, backend="reference")
    x = torch.randint(0, 2, (4, 1, 7, 6))
    want = model.log_prob(x)
    got = model.to_backend("torch").log_prob(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_the_layer_computes_the_papers_equations_link_before_the_gate():
    """h' = h + O(tanh(H*h + U(V*v))_f * sigmoid(...)_g), v' = tanh(V*v)_f * sigmoid(V*v)_g: the link U
    reads the vertical *pre-activation* (before the gate), per the paper's Figure 2."""
    torch.manual_seed(0)
    block = GatedBlock(4, 4, kernel_size=3, first=False).double()
    v, h = torch.randn(2, 4, 5, 6, dtype=torch.float64), torch.randn(2, 4, 5, 6, dtype=torch.float64)
    b = torch.randn(2, 16, dtype=torch.float64)
    v_pre = block.vertical(v) + b[:, :8, None, None]
    h_pre = block.horizontal(h) + block.link(v_pre) + b[:, 8:, None, None]

    def gate(t):
        return torch.tanh(t[:, :4]) * torch.sigmoid(t[:, 4:])

    v_out, h_out = block(v, h, b)
    torch.testing.assert_close(v_out, gate(v_pre), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_out, h + block.out(gate(h_pre)), rtol=1e-12, atol=1e-12)
    assert block.link.spec.in_channels == 8  # it reads the 2p pre-activations [f | g], not the p gated features
