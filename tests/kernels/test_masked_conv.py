"""Triton masked conv vs the reference: forward, grad input, grad weight, grad bias.

Runs through Triton's interpreter on CPU (tiny odd shapes, float32 and float64); the ``gpu`` tier
checks bf16/fp16 against a float32 reference with the rule "kernel error <= 2x PyTorch's own error
in that dtype + small atol".
"""

from __future__ import annotations

import math

import pytest
import torch

import fastpixel
from fastpixel.masks import MaskSpec, color_groups, gate_groups, logit_groups

# every masked conv the models use, with channel counts not divisible by 3 and 1 or 3 image channels
SPECS = {
    "7x7A_rgb": MaskSpec((7, 7), "A", color_groups(3, 3), color_groups(10, 3)),
    "7x7A_grey": MaskSpec((7, 7), "A", color_groups(1, 1), color_groups(4, 1)),
    "3x3B_rgb": MaskSpec((3, 3), "B", color_groups(5, 3), color_groups(5, 3)),
    "1x1B_rgb_reduce": MaskSpec((1, 1), "B", color_groups(10, 3), color_groups(5, 3)),
    "1x1B_logits": MaskSpec((1, 1), "B", color_groups(7, 3), logit_groups(4, 3)),
    "1x1B_gates8": MaskSpec((1, 1), "B", color_groups(8, 3), gate_groups(4, 3, num_gates=8)),
    "1x3B_row_lstm": MaskSpec((1, 3), "B", color_groups(10, 3), gate_groups(5, 3)),
    "1x3_state": MaskSpec((1, 3), None, color_groups(5, 1), gate_groups(5, 1)),
    "2x1_column": MaskSpec((2, 1), None, color_groups(5, 1), gate_groups(5, 1), center=(1, 0)),
}
# (B, H, W) per case: odd sizes (1x1 images: test_single_pixel_image)
SIZES = {
    "7x7A_rgb": (2, 5, 7),
    "7x7A_grey": (1, 13, 5),
    "3x3B_rgb": (2, 13, 5),
    "1x1B_rgb_reduce": (2, 7, 13),
    "1x1B_logits": (1, 5, 7),
    "1x1B_gates8": (1, 7, 5),
    "1x3B_row_lstm": (2, 5, 13),
    "1x3_state": (1, 13, 7),
    "2x1_column": (2, 7, 5),
}


def _tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol per unit of the reference's largest magnitude)."""
    return (1e-10, 1e-12) if dtype == torch.float64 else (1e-5, 1e-6)


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    rtol, atol = _tolerances(expected.dtype)
    scale = max(1.0, float(expected.detach().abs().max()))
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol * scale, msg=lambda m: f"{what}: {m}")


def _inputs(spec: MaskSpec, b: int, h: int, w: int, dtype, device, *, bias: bool = True, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    kh, kw = spec.kernel_size
    bound = 1 / math.sqrt(spec.in_channels * kh * kw)
    x = torch.randn(b, spec.in_channels, h, w, generator=g, dtype=torch.float64)
    weight = (torch.rand(spec.out_channels, spec.in_channels, kh, kw, generator=g, dtype=torch.float64) * 2 - 1) * bound
    bias_t = (torch.rand(spec.out_channels, generator=g, dtype=torch.float64) * 2 - 1) * bound if bias else None
    cast = lambda t: None if t is None else t.to(device=device, dtype=dtype).requires_grad_()  # noqa: E731
    return cast(x), cast(weight), cast(bias_t)


def _run(x, weight, bias, spec, backend, grad_out):
    y = fastpixel.ops.masked_conv2d(x, weight, bias, spec, backend=backend)
    leaves = [x, weight] + ([bias] if bias is not None else [])
    return (y, *torch.autograd.grad(y, leaves, grad_out))


def _check_parity(spec, size, dtype, device, *, bias=True, seed=0):
    x, weight, b = _inputs(spec, *size, dtype, device, bias=bias, seed=seed)
    grad_out = torch.randn(size[0], spec.out_channels, *size[1:], generator=torch.Generator().manual_seed(seed + 1),
                           dtype=torch.float64).to(device=device, dtype=dtype)
    got = _run(x, weight, b, spec, "triton", grad_out)
    want = _run(x, weight, b, spec, "reference", grad_out)
    for name, g, r in zip(("output", "grad x", "grad weight", "grad bias"), got, want):
        assert not torch.isnan(g).any(), f"{name}: NaN (an element the kernel did not write)"
        _assert_close(g, r, name)
    return got


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_parity_with_reference(name, dtype, device):
    _check_parity(SPECS[name], SIZES[name], dtype, device)


@pytest.mark.parametrize("name", ["3x3B_rgb", "1x3_state"])
def test_parity_without_bias(name, device):
    _check_parity(SPECS[name], SIZES[name], torch.float64, device, bias=False)


@pytest.mark.parametrize("name", ["7x7A_rgb", "1x1B_logits"])
def test_single_pixel_image(name, device):
    _check_parity(SPECS[name], (2, 1, 1), torch.float64, device)


def test_strided_input_no_copy_needed(device):
    """A channel slice of a bigger map (as the Diagonal BiLSTM's chunk) and a transposed layout."""
    spec = SPECS["3x3B_rgb"]
    g = torch.Generator().manual_seed(3)
    big = torch.randn(2, 2 * spec.in_channels, 7, 5, generator=g, dtype=torch.float64).to(device)
    x = big[:, spec.in_channels:].requires_grad_()  # non-contiguous view, strides (70*2, 35, 5, 1)
    x_t = torch.randn(2, 5, 7, spec.in_channels, generator=g, dtype=torch.float64).to(device).permute(0, 3, 2, 1)
    _, weight, b = _inputs(spec, 2, 7, 5, torch.float64, device)
    for inp in (x, x_t.requires_grad_()):
        assert not inp.is_contiguous()
        grad_out = torch.randn(2, spec.out_channels, *inp.shape[2:], generator=g, dtype=torch.float64).to(device)
        grad_out = grad_out.transpose(2, 3).contiguous().transpose(2, 3)  # a strided cotangent too
        got = _run(inp, weight, b, spec, "triton", grad_out)
        want = _run(inp, weight, b, spec, "reference", grad_out)
        for name, g_, r in zip(("output", "grad x", "grad weight", "grad bias"), got, want):
            _assert_close(g_, r, f"strided {name}")


@pytest.mark.parametrize("name", ["3x3B_rgb", "1x1B_gates8"])
def test_weight_grad_split_over_pixels(name, device, monkeypatch):
    """The grad-weight reduction split into pixel chunks (as on a GPU with many SMs) still matches."""
    from fastpixel.kernels import masked_conv as kernel_module

    monkeypatch.setattr(kernel_module, "num_sms", lambda device: 64)
    size = (2, 13, 13)
    block_m = kernel_module._wgrad_blocks()[2]
    assert kernel_module._pixel_split(size[0] * size[1] * size[2], 9, block_m, 64)[0] > 1
    _check_parity(SPECS[name], size, torch.float64, device)


@pytest.mark.parametrize("name", ["7x7A_rgb", "1x1B_logits", "1x3B_row_lstm"])
def test_masked_weight_taps_change_nothing(name, device):
    """Whatever is written into the closed taps, output and grad x are unchanged, grad weight is 0 there."""
    spec = SPECS[name]
    size = SIZES[name]
    x, weight, b = _inputs(spec, *size, torch.float64, device)
    grad_out = torch.randn(size[0], spec.out_channels, *size[1:], dtype=torch.float64, device=device)
    clean = _run(x, weight, b, spec, "triton", grad_out)
    mask = spec.mask(torch.float64, device)
    dirty_w = (weight.detach() + 1e3 * (1 - mask) * torch.randn_like(weight)).requires_grad_()
    dirty = _run(x, dirty_w, b, spec, "triton", grad_out)
    assert (dirty_w.detach() != weight.detach()).any()
    torch.testing.assert_close(dirty[0], clean[0], rtol=0, atol=0)  # output
    torch.testing.assert_close(dirty[1], clean[1], rtol=0, atol=0)  # grad x
    assert (dirty[2][mask == 0] == 0).all() and (clean[2][mask == 0] == 0).all()
    assert (clean[2][mask == 1] != 0).any()


@pytest.mark.parametrize(
    "kernel_size, mask_type, c_in, c_out, expected",
    [
        ((7, 7), "A", 3, 256, 24 / 49 + 1 / 49 * 1 / 3),  # first layer: 24 full taps + centre R->G, RG->B
        ((3, 3), "B", 128, 128, None),
        ((1, 1), "B", 256, 128, None),
        ((1, 3), None, 128, 512, 1.0),
    ],
)
def test_useful_flops(kernel_size, mask_type, c_in, c_out, expected):
    from fastpixel.kernels.masked_conv import dense_flops, useful_flops

    spec = MaskSpec(kernel_size, mask_type, color_groups(c_in, 3), color_groups(c_out, 3))
    useful, dense = useful_flops(spec, 16, 32, 32), dense_flops(spec, 16, 32, 32)
    assert dense == 2 * 16 * 32 * 32 * c_in * c_out * kernel_size[0] * kernel_size[1]
    assert useful / dense == pytest.approx(spec.useful_fraction(), rel=1e-6)
    if expected is not None:
        assert useful / dense == pytest.approx(expected, rel=1e-2)
    if kernel_size == (3, 3):
        assert 0.45 < useful / dense < 0.55  # about 50% of dense
    if kernel_size == (1, 1):
        assert 0.6 < useful / dense < 0.7  # about 67% of dense


def test_triton_backend_is_the_kernel(device, monkeypatch):
    """ops.masked_conv2d(backend='triton') runs fastpixel.kernels.masked_conv, not the reference."""
    from fastpixel.kernels import masked_conv as kernel_module

    calls = []
    real = kernel_module._gemm
    monkeypatch.setattr(kernel_module, "_gemm", lambda *a, **k: calls.append(1) or real(*a, **k))
    spec = SPECS["1x1B_logits"]
    x, weight, b = _inputs(spec, 1, 3, 3, torch.float64, device)
    fastpixel.ops.masked_conv2d(x, weight, b, spec, backend="triton").sum().backward()
    assert len(calls) == 2  # forward + grad input
    assert weight.grad is not None and b.grad is not None


# -- GPU tier ------------------------------------------------------------------------------------
def _err(t: torch.Tensor, ref: torch.Tensor) -> float:
    return float((t.double() - ref.double()).abs().max())


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_on_gpu(name, dtype):
    """bf16/fp16 kernel error vs a float32 reference <= 2x PyTorch's own error in that dtype + atol."""
    spec = SPECS[name]
    size = (4, 32, 32)
    x, weight, b = _inputs(spec, *size, torch.float32, "cuda")
    grad_out = torch.randn(size[0], spec.out_channels, *size[1:], device="cuda")
    with _no_tf32():
        ref = _run(x, weight, b, spec, "reference", grad_out)
    lo = [t.detach().to(dtype).requires_grad_() for t in (x, weight, b)]
    torch_lo = _run(*lo, spec, "reference", grad_out.to(dtype))
    kern_lo = _run(*lo, spec, "triton", grad_out.to(dtype))
    atol = {torch.bfloat16: 1e-2, torch.float16: 1e-3}[dtype]
    for what, k, t, r in zip(("output", "grad x", "grad weight", "grad bias"), kern_lo, torch_lo, ref):
        scale = max(1.0, float(r.abs().max()))
        assert _err(k, r) <= 2 * _err(t, r) + atol * scale, f"{what}: kernel {_err(k, r)} vs torch {_err(t, r)}"


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(SPECS))
def test_float32_parity_on_gpu(name):
    with _no_tf32():
        _check_parity(SPECS[name], (4, 32, 32), torch.float32, "cuda")


class _no_tf32:
    """Reference convs in true float32 (cuDNN would otherwise use tf32 on an H200)."""

    def __enter__(self):
        self.saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved
