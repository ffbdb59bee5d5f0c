"""Backend resolution: argument > use_backend context > FASTPIXEL_BACKEND > auto."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import fastpixel
from fastpixel.backend import requested_backend, resolve_backend


def test_precedence(monkeypatch):
    monkeypatch.setenv("FASTPIXEL_BACKEND", "triton")
    assert requested_backend() == "triton"
    with fastpixel.use_backend("auto"):
        assert requested_backend() == "auto"
        with fastpixel.use_backend("reference"):
            assert requested_backend() == "reference"
            assert requested_backend("triton") == "triton"
        assert requested_backend() == "auto"
    monkeypatch.delenv("FASTPIXEL_BACKEND")
    assert requested_backend() == "auto"


def test_auto_falls_back_to_torch_then_the_reference(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert resolve_backend("auto", torch.zeros(1), op="masked_conv") == "torch"
    assert resolve_backend("torch", torch.zeros(1), op="diagonal_bilstm") == "torch"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("auto", torch.zeros(1), op="no_such_op") == "reference"
    assert resolve_backend("reference", torch.zeros(1), op="masked_conv") == "reference"


def test_model_backend_argument_reaches_every_op(monkeypatch):
    seen = []
    import fastpixel.ops.masked_conv as conv_op

    real = conv_op.resolve_backend

    def spy(backend, *tensors, op):
        seen.append(fastpixel.backend.requested_backend(backend))
        return real(backend, *tensors, op=op)

    monkeypatch.setattr(conv_op, "resolve_backend", spy)
    model = fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1)
    model(torch.zeros(1, 1, 2, 2, dtype=torch.long), backend="reference")
    assert seen and set(seen) == {"reference"}


def test_import_needs_neither_triton_nor_a_gpu():
    """import fastpixel with triton made unimportable, and no CUDA probing."""
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch\n"
        "torch.cuda.is_available = lambda: (_ for _ in ()).throw(AssertionError('probed the GPU'))\n"
        "import fastpixel, fastpixel.kernels, fastpixel.ops\n"
        "m = fastpixel.create_model('row_lstm', channels=1, levels=2, hidden=2, layers=1)\n"
        "print(m(torch.zeros(1, 1, 2, 2, dtype=torch.long), backend='auto').shape)\n"
        "from fastpixel.backend import triton_unavailable_reason\n"
        "print(triton_unavailable_reason(torch.zeros(1)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "torch.Size([1, 2, 1, 2, 2])" in out
    assert "triton package is not installed" in out


def test_dispatch_table_names_one_function_per_op_and_backend():
    from fastpixel import dispatch, reference
    from fastpixel.reference import row_lstm as reference_row_lstm

    assert dispatch.implementation("row_lstm", "reference") is reference_row_lstm.row_lstm_scan
    assert dispatch.implementation("diagonal_bilstm", "reference") is reference.diagonal_bilstm_scan
    assert dispatch.TABLE["row_lstm"]["reference"] is reference_row_lstm.row_lstm_scan
    for op, function in dispatch.FUNCTIONS.items():
        assert dispatch.has_implementation(op, "reference")
        assert getattr(reference, function) is dispatch.implementation(op, "reference")
    assert not dispatch.has_implementation("no_such_op", "reference")
    with pytest.raises(KeyError, match="no implementation of op 'no_such_op'"):
        dispatch.implementation("no_such_op", "reference")


def test_use_backend_restores_the_previous_default_after_an_error():
    with pytest.raises(RuntimeError):
        with fastpixel.use_backend("reference"):
            raise RuntimeError("boom")
    with fastpixel.use_backend("auto"):
        with pytest.raises(RuntimeError):
            with fastpixel.use_backend("reference"):
                raise RuntimeError("boom")
        assert requested_backend() == "auto"
