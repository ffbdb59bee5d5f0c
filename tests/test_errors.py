"""One test per error message: each says what was expected and what came."""

from __future__ import annotations

import pytest
import torch

import fastpixel
from fastpixel import ops
from fastpixel.backend import BackendUnavailableError, resolve_backend
from fastpixel.masks import MaskSpec, color_groups


@pytest.fixture
def model():
    return fastpixel.create_model("pixelcnn", channels=3, levels=4, hidden=3, layers=1)


def test_float_pixels(model):
    with pytest.raises(TypeError, match=r"integer dtype .* got torch.float32 \(quantise"):
        model(torch.rand(1, 3, 4, 4))


def test_values_out_of_range(model):
    with pytest.raises(ValueError, match=r"values must lie in \[0, 4\) for levels=4, got values in \[0, 4\]"):
        model(torch.tensor([0, 1, 4]).reshape(1, 3, 1, 1))
    with pytest.raises(ValueError, match=r"got values in \[-1, 0\]"):
        model(torch.tensor([[[[-1]], [[0]], [[0]]]]))


def test_wrong_channel_count(model):
    with pytest.raises(ValueError, match=r"must have 3 channel\(s\) .* got shape \(1, 1, 4, 4\)"):
        model(torch.zeros(1, 1, 4, 4, dtype=torch.long))


def test_wrong_rank(model):
    with pytest.raises(ValueError, match=r"4 dimensions \(B, C, H, W\), got shape \(3, 4, 4\)"):
        model(torch.zeros(3, 4, 4, dtype=torch.long))


def test_empty_image(model):
    with pytest.raises(ValueError, match="H, W >= 1"):
        model(torch.zeros(1, 3, 0, 4, dtype=torch.long))


def test_not_a_tensor(model):
    with pytest.raises(TypeError, match="must be a torch.Tensor of integers"):
        model([[0]])


@pytest.mark.parametrize("levels", [1, 257, 0])
def test_levels_out_of_range(levels):
    with pytest.raises(ValueError, match=r"levels must be in \[2, 256\]"):
        fastpixel.create_model("pixelcnn", channels=1, levels=levels, hidden=2, layers=1)


def test_levels_not_an_int():
    with pytest.raises(TypeError, match="levels must be an int"):
        fastpixel.create_model("pixelcnn", channels=1, levels=2.0, hidden=2, layers=1)


@pytest.mark.parametrize("channels", [2, 4, 0])
def test_channels_not_1_or_3(channels):
    with pytest.raises(ValueError, match="channels must be 1 .* or 3"):
        fastpixel.create_model("row_lstm", channels=channels, levels=2, hidden=2, layers=1)


def test_bad_hidden_and_layers():
    with pytest.raises(ValueError, match="hidden must be an int >= 1"):
        fastpixel.create_model("row_lstm", channels=1, levels=2, hidden=0, layers=1)
    with pytest.raises(ValueError, match="layers must be an int >= 0"):
        fastpixel.create_model("row_lstm", channels=1, levels=2, hidden=2, layers=-1)
    with pytest.raises(ValueError, match="output_hidden must be an int >= 1"):
        fastpixel.create_model("row_lstm", channels=1, levels=2, hidden=2, layers=1, output_hidden=0)


def test_unknown_model_and_option():
    with pytest.raises(ValueError, match="unknown model 'pixelrnn'; choose one of"):
        fastpixel.create_model("pixelrnn", channels=1, levels=2, hidden=2, layers=1)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['dropout'\]"):
        fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1, dropout=0.1)


def test_unknown_backend_names(monkeypatch):
    with pytest.raises(ValueError, match="use_backend: backend must be one of"):
        with fastpixel.use_backend("cuda"):
            pass
    monkeypatch.setenv("FASTPIXEL_BACKEND", "fast")
    with pytest.raises(ValueError, match="environment variable FASTPIXEL_BACKEND: backend must be one of"):
        resolve_backend(None, torch.zeros(1), op="masked_conv")


def test_triton_on_cpu_without_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(BackendUnavailableError, match="need CUDA tensors, or TRITON_INTERPRET=1"):
        resolve_backend("triton", torch.zeros(1), op="masked_conv")


def test_op_argument_errors():
    spec = MaskSpec((3, 3), "B", (0, 0), (0, 0, 0))
    x, w = torch.randn(1, 2, 4, 4), torch.randn(3, 2, 3, 3)
    with pytest.raises(ValueError, match=r"weight must have shape \(3, 2, 3, 3\)"):
        ops.masked_conv2d(x, torch.randn(3, 2, 1, 1), None, spec)
    with pytest.raises(ValueError, match="x must have 2 channels"):
        ops.masked_conv2d(torch.randn(1, 5, 4, 4), w, None, spec)
    with pytest.raises(TypeError, match="all tensors must have one dtype"):
        ops.masked_conv2d(x.double(), w, None, spec)
    with pytest.raises(ValueError, match="all tensors must be on one device"):
        ops.masked_conv2d(x, w.to("meta"), None, spec)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        ops.masked_conv2d(x.long(), w, None, spec)
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        ops.masked_conv2d(x, w, torch.zeros(2), spec)
    with pytest.raises(ValueError, match=r"state_weight \(4h, h, 1, 3\)"):
        ops.row_lstm_scan(torch.randn(1, 8, 3, 3), torch.randn(8, 2, 2, 1))
    with pytest.raises(ValueError, match=r"state weights \(4h, h, 2, 1\)"):
        g = torch.randn(1, 8, 3, 3)
        ops.diagonal_bilstm_scan(g, torch.randn(8, 2, 1, 3), g, torch.randn(8, 2, 2, 1))


def test_conv_diagonal_bilstm_argument_errors():
    from fastpixel.masks import gate_groups

    spec = MaskSpec((1, 1), "B", color_groups(4, 1), gate_groups(2, 1, num_gates=8))
    x, w, b = torch.randn(2, 4, 3, 3), torch.randn(16, 4, 1, 1), torch.randn(16)
    k = torch.randn(8, 2, 2, 1)
    assert ops.conv_diagonal_bilstm(x, w, b, spec, k, k).shape == (2, 2, 3, 3)
    with pytest.raises(ValueError, match=r"expected input_weight \(8h, Cin, 1, 1\) = \(16, 4, 1, 1\)"):
        ops.conv_diagonal_bilstm(x, torch.randn(16, 3, 1, 1), b, spec, k, k)
    with pytest.raises(ValueError, match=r"state weights \(4h, h, 2, 1\) = \(8, 2, 2, 1\)"):
        ops.conv_diagonal_bilstm(x, w, b, spec, k, torch.randn(8, 2, 1, 2))
    with pytest.raises(ValueError, match=r"input_bias must have shape \(16,\)"):
        ops.conv_diagonal_bilstm(x, w, torch.randn(8), spec, k, k)
    with pytest.raises(ValueError, match=r"gate_bias must have shape \(2, 16, 3, 3\)"):
        ops.conv_diagonal_bilstm(x, w, b, spec, k, k, torch.randn(2, 16, 3, 4))
    with pytest.raises(ValueError, match="spec must describe a 1x1 conv 4 -> 16"):
        ops.conv_diagonal_bilstm(x, w, b, MaskSpec((1, 1), "B", color_groups(4, 1), color_groups(8, 1)), k, k)
    with pytest.raises(TypeError, match="all tensors must have one dtype"):
        ops.conv_diagonal_bilstm(x.double(), w, b, spec, k, k)
    with pytest.raises(ValueError, match="x must have 4 dimensions"):
        ops.conv_diagonal_bilstm(x[0], w, b, spec, k, k)
    with pytest.raises(ValueError, match=r"x must have H >= 1 and W >= 1.*\(2, 4, 0, 3\)"):
        ops.conv_diagonal_bilstm(torch.randn(2, 4, 0, 3), w, b, spec, k, k)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_layer_and_scan_ops_take_an_empty_batch(backend):
    from fastpixel.masks import gate_groups

    spec = MaskSpec((1, 1), "B", color_groups(4, 1), gate_groups(2, 1, num_gates=8))
    x = torch.randn(0, 4, 3, 3, requires_grad=True)
    w, k = torch.randn(16, 4, 1, 1), torch.randn(8, 2, 2, 1)
    out = ops.conv_diagonal_bilstm(x, w, torch.zeros(16), spec, k, k, backend=backend)
    out.sum().backward()
    assert out.shape == (0, 2, 3, 3) and x.grad.shape == x.shape
    g = torch.randn(0, 8, 3, 3)
    assert ops.diagonal_bilstm_scan(g, k, g, k, backend=backend).shape == (0, 2, 3, 3)
    assert ops.row_lstm_scan(g, torch.randn(8, 2, 1, 3), backend=backend).shape == (0, 2, 3, 3)


def test_cross_entropy_argument_errors():
    logits = torch.randn(1, 4, 1, 2, 2)
    with pytest.raises(TypeError, match="targets must be an integer tensor, got torch.float32"):
        ops.pixel_cross_entropy(logits, torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"targets must have shape \(B, C, H, W\) = \(1, 1, 2, 2\)"):
        ops.pixel_cross_entropy(logits, torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\), got values in \[9, 9\]"):
        ops.pixel_cross_entropy(logits, torch.full((1, 1, 2, 2), 9))
    with pytest.raises(ValueError, match="reduction must be one of"):
        ops.pixel_cross_entropy(logits, torch.zeros(1, 1, 2, 2, dtype=torch.long), reduction="max")
    with pytest.raises(ValueError, match="logits must have 5 dimensions"):
        ops.pixel_cross_entropy(torch.randn(4, 2, 2), torch.zeros(1, 1, 2, 2, dtype=torch.long))


def test_layer_group_errors():
    with pytest.raises(ValueError, match="in_groups/out_groups must have 2/3 entries"):
        fastpixel.MaskedConv2d(2, 3, 1, "B", in_groups=(0,))


def test_bits_per_dim_needs_positive_dims():
    with pytest.raises(ValueError, match="dims_per_image must be >= 1"):
        fastpixel.bits_per_dim(1.0, 0)
