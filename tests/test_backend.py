"""Backend choice: a model runs the backend it was built with (argument > use_backend block of the
building thread > FASTPIXEL_BACKEND > auto), resolved once; nothing in forward reads or writes
process-wide state."""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings

import pytest
import torch

import fastpixel
from fastpixel import dispatch
from fastpixel.backend import choose_backend, requested_backend, resolve_backend


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


def test_auto_takes_triton_where_it_runs_else_torch(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert resolve_backend("auto", torch.zeros(1), op="masked_conv") == "torch"
    assert choose_backend("auto", "cpu") == "torch"
    assert resolve_backend("torch", torch.zeros(1), op="diagonal_bilstm") == "torch"
    assert resolve_backend("reference", torch.zeros(1), op="masked_conv") == "reference"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("auto", torch.zeros(1), op="masked_conv") == "triton"
    assert choose_backend("auto", "cpu") == "triton"


def test_a_model_is_resolved_once_and_reports_what_runs(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    model = fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1, backend="auto")
    assert (model.requested_backend, model.backend) == ("auto", "torch")
    assert {m.backend for m in model.modules() if hasattr(m, "requested_backend")} == {"torch"}
    assert model.to_backend("reference") is model
    assert {m.backend for m in model.modules() if hasattr(m, "requested_backend")} == {"reference"}
    with pytest.raises(ValueError, match="to_backend: backend must be one of"):
        model.to_backend("cuda")


def test_auto_is_resolved_again_when_the_model_moves(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    model = fastpixel.create_model("row_lstm", channels=1, levels=2, hidden=2, layers=1, backend="auto")
    assert model.backend == "torch"
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # as if it moved to a device triton runs on
    model.to(torch.float64)
    assert model.backend == "triton" and model.blocks[0].lstm.backend == "triton"
    explicit = fastpixel.create_model("row_lstm", channels=1, levels=2, hidden=2, layers=1, backend="torch").double()
    assert explicit.backend == "torch"  # an explicit choice never changes on a move


def test_bad_backend_names_fail_when_the_model_is_built():
    with pytest.raises(ValueError, match="backend must be one of"):
        fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1, backend="cuda")


def _op_spy(monkeypatch) -> list[str]:
    """Record the backend of every masked_conv / cross_entropy / scan implementation that runs."""
    seen: list[str] = []
    for op in dispatch.OPS:
        for backend in ("reference", "torch"):
            real = dispatch.implementation(op, backend)
            monkeypatch.setitem(dispatch.TABLE[op], backend,
                                lambda *a, _real=real, _b=backend, **k: seen.append(_b) or _real(*a, **k))
    dispatch.load("torch")
    monkeypatch.delitem(dispatch.FUSED["diagonal_bilstm_layer"], "torch")  # compose, so that every op is seen
    return seen


def test_a_model_built_inside_use_backend_runs_it_outside(monkeypatch):
    seen = _op_spy(monkeypatch)
    with fastpixel.use_backend("torch"):
        model = fastpixel.create_model("diagonal_bilstm", channels=1, levels=2, hidden=2, layers=1)
    with fastpixel.use_backend("reference"):  # a block around the call changes nothing
        model.log_prob(torch.zeros(1, 1, 2, 3, dtype=torch.long))
    assert seen and set(seen) == {"torch"}


def test_the_deprecated_per_call_backend_still_works_and_restores(monkeypatch):
    seen = _op_spy(monkeypatch)
    model = fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1, backend="torch")
    with pytest.warns(DeprecationWarning, match="model runs the backend it was built with"):
        model(torch.zeros(1, 1, 2, 2, dtype=torch.long), backend="reference")
    assert seen and set(seen) == {"reference"}
    assert model.backend == "torch" and model.input_conv.backend == "torch"


def test_threads_on_three_backends_are_bit_identical_to_single_threaded():
    """A reference, a torch and a triton (interpreter) model of equal weights, called from three threads at
    once (50 interleaved calls each; 3 for the slow interpreter): every output and weight gradient
    equals that model's single-threaded result bit for bit, and each model keeps its backend."""
    pytest.importorskip("triton")
    torch.manual_seed(0)
    models = {name: fastpixel.create_model("diagonal_bilstm", channels=1, levels=2, hidden=3, layers=1, backend=name)
              for name in ("reference", "torch", "triton")}
    for model in models.values():
        model.load_state_dict(models["reference"].state_dict())
    x = torch.randint(0, 2, (2, 1, 4, 5))

    def run(model):
        model.zero_grad()
        out = model.log_prob(x)
        out.sum().backward()
        return out.detach().clone(), model.input_conv.weight.grad.clone()

    expected = {name: run(model) for name, model in models.items()}
    assert not all(torch.equal(expected["reference"][k], expected["torch"][k]) for k in (0, 1))  # rounding differs
    mismatches: list[str] = []
    barrier = threading.Barrier(len(models))

    def worker(name):
        barrier.wait()
        for i in range(3 if name == "triton" else 50):
            got = run(models[name])
            if not all(torch.equal(got[k], expected[name][k]) for k in (0, 1)):
                mismatches.append(f"{name} call {i}")

    threads = [threading.Thread(target=worker, args=(name,)) for name in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mismatches == []
    assert {name: model.backend for name, model in models.items()} == {n: n for n in models}


def test_use_backend_belongs_to_the_thread():
    seen = {}
    outside = requested_backend()  # the environment's default (tests/conftest.py: reference)

    def other():
        seen["other"] = requested_backend()

    with fastpixel.use_backend("torch"):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        seen["this"] = requested_backend()
    assert seen == {"this": "torch", "other": outside} and outside != "torch"


def test_import_needs_neither_triton_nor_a_gpu():
    """import fastpixel with triton made unimportable, and no CUDA probing."""
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch\n"
        "torch.cuda.is_available = lambda: (_ for _ in ()).throw(AssertionError('probed the GPU'))\n"
        "import fastpixel, fastpixel.kernels, fastpixel.ops\n"
        "m = fastpixel.create_model('row_lstm', channels=1, levels=2, hidden=2, layers=1, backend='auto')\n"
        "print(m.backend, m(torch.zeros(1, 1, 2, 2, dtype=torch.long)).shape)\n"
        "from fastpixel.backend import triton_unavailable_reason\n"
        "print(triton_unavailable_reason(torch.zeros(1)))\n"
        "try:\n"
        "    fastpixel.create_model('row_lstm', channels=1, levels=2, hidden=2, layers=1, backend='triton')\n"
        "except fastpixel.BackendUnavailableError as e:\n"
        "    print('refused:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "torch torch.Size([1, 2, 1, 2, 2])" in out
    assert "triton package is not installed" in out
    assert "refused: backend 'triton' cannot run: the triton package is not installed" in out


def test_dispatch_table_names_one_function_per_op_and_backend():
    from fastpixel import reference
    from fastpixel.reference import row_lstm as reference_row_lstm

    assert dispatch.implementation("row_lstm", "reference") is reference_row_lstm.row_lstm_scan
    assert dispatch.implementation("diagonal_bilstm", "reference") is reference.diagonal_bilstm_scan
    for op, function in dispatch.OPS.items():
        assert getattr(reference, function) is dispatch.implementation(op, "reference")
    with pytest.raises(KeyError, match="no op 'no_such_op'"):
        dispatch.implementation("no_such_op", "reference")
    with pytest.raises(KeyError, match="no fusion 'no_such_fusion'"):
        dispatch.fused("no_such_fusion", "torch")


def test_reference_conv_diagonal_bilstm_is_deprecated_and_still_computes_the_layer():
    torch.manual_seed(0)
    layer = fastpixel.DiagonalBiLSTM(2, 2, backend="reference").double()
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    conv = layer.input_to_state
    with pytest.warns(DeprecationWarning, match="conv_diagonal_bilstm is deprecated"):
        old = fastpixel.reference.conv_diagonal_bilstm(x, conv.weight, conv.bias, conv.spec, layer.state_weight_lr,
                                                       layer.state_weight_rl)
    torch.testing.assert_close(old, layer(x), rtol=0, atol=0)


def test_use_backend_restores_the_previous_default_after_an_error():
    with pytest.raises(RuntimeError):
        with fastpixel.use_backend("reference"):
            raise RuntimeError("boom")
    with fastpixel.use_backend("auto"):
        with pytest.raises(RuntimeError):
            with fastpixel.use_backend("reference"):
                raise RuntimeError("boom")
        assert requested_backend() == "auto"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        requested_backend()  # no warning on the normal path
