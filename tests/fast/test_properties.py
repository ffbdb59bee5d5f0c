"""The causality and receptive-field property tests, run again on the fast ("torch") backend.

The tests themselves live in tests/test_autoregressive.py and tests/test_receptive_fields.py (run
there on the reference); here each is called under ``use_backend("torch")``, so every op of the
models and layers they build runs the fast path. float64 throughout, as there.

The model-level Jacobians are taken with ``vectorize=False`` here (one backward pass per output):
the fast scans' hand-written backward passes write into buffers in place and do not support
``vmap`` over batched cotangents (torch.func transforms; use backend="reference" there).
"""

from __future__ import annotations

import pytest
import torch

import fastpixel
from tests import test_autoregressive as autoregressive
from tests import test_receptive_fields as fields


@pytest.fixture(autouse=True)
def torch_backend(monkeypatch):
    real_jacobian = torch.autograd.functional.jacobian
    monkeypatch.setattr(torch.autograd.functional, "jacobian",
                        lambda f, x, vectorize=False: real_jacobian(f, x, vectorize=False))
    with fastpixel.use_backend("torch"):
        yield


@pytest.mark.parametrize("name,channels,levels,skip", autoregressive.CASES)
def test_no_prediction_depends_on_itself_or_later_subpixels(name, channels, levels, skip):
    autoregressive.test_no_prediction_depends_on_itself_or_later_subpixels(name, channels, levels, skip)


@pytest.mark.parametrize("name", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_colours_inside_a_pixel_depend_in_rgb_order(name):
    autoregressive.test_colours_inside_a_pixel_depend_in_rgb_order(name)


@pytest.mark.parametrize("height,width", [(5, 5), (4, 7), (6, 3)])
def test_diagonal_bilstm_layer_sees_its_entire_context(height, width):
    fields.test_diagonal_bilstm_layer_sees_its_entire_context(height, width)


@pytest.mark.parametrize("height,width", [(5, 7), (6, 4)])
def test_row_lstm_layer_sees_a_triangle(height, width):
    fields.test_row_lstm_layer_sees_a_triangle(height, width)


@pytest.mark.parametrize("name,channels,skip", fields.MODEL_CASES)
def test_model_jacobian_equals_derived_dependencies(name, channels, skip):
    fields.test_model_jacobian_equals_derived_dependencies(name, channels, skip)


@pytest.mark.parametrize("channels", [1, 3])
def test_diagonal_bilstm_model_misses_only_the_last_subpixel_of_the_row_above(channels):
    fields.test_diagonal_bilstm_model_misses_only_the_last_subpixel_of_the_row_above(channels)


def test_row_lstm_model_field_is_triangular():
    fields.test_row_lstm_model_field_is_triangular()


def test_the_fast_path_actually_runs(monkeypatch):
    """Guard: under this module's fixture the layers reach fastpixel.fast, not the reference."""
    from fastpixel import dispatch

    calls = []
    real = dispatch.fused

    def spy(name, backend):
        calls.append(backend)
        return real(name, backend)

    monkeypatch.setattr("fastpixel.ops.diagonal_bilstm_layer.fused", spy)
    fastpixel.DiagonalBiLSTM(2, 2)(torch.zeros(1, 2, 3, 3))
    assert calls == ["torch"]
