"""The parity gate passes the reference's twin and rejects wrong or unavailable backends."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.accounting import OpCost, Cost
from bench.backends import run_backend
from bench.cases import Case
from bench.parity import parity_gate
from fastpixel import reference
from fastpixel.backend import BackendUnavailableError
from fastpixel.masks import MaskSpec, color_groups

SPEC = MaskSpec((3, 3), "B", color_groups(6, 3), color_groups(6, 3))


def _inputs():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(2, 6, 5, 4, generator=g), torch.randn(6, 6, 3, 3, generator=g), torch.randn(6, generator=g)]


def ref(x, w, b):
    return reference.masked_conv2d(x, w, b, SPEC)


def twin(x, w, b):  # the same maths written differently: mask by indexing, padding by conv2d
    return F.conv2d(x, w * SPEC.mask(w.dtype), b, padding=1)


class _WrongGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y):
        return y.clone()

    @staticmethod
    def backward(ctx, g):
        return g * 1.001


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gate_passes_an_equivalent_backend(dtype):
    r = parity_gate(twin, ref, _inputs(), dtype, names=["x", "weight", "bias"])
    assert r.passed, r.reason
    assert set(r.errors) == {"output", "d/x", "d/weight", "d/bias"}


@pytest.mark.parametrize(
    "wrong, where",
    [
        (lambda x, w, b: twin(x, w, b) + 1e-3, "output"),  # wrong forward
        (lambda x, w, b: F.conv2d(x, w, b, padding=1), "output"),  # mask forgotten
        (lambda x, w, b: _WrongGrad.apply(twin(x, w, b)), "d/"),  # right forward, gradients 0.1% off
        (lambda x, w, b: twin(x, w, b) * float("nan"), "output"),  # NaN
    ],
)
def test_gate_rejects_a_wrong_backend(wrong, where):
    r = parity_gate(wrong, ref, _inputs(), torch.float32, names=["x", "weight", "bias"])
    assert r.status == "fail"
    assert r.reason.startswith(where)


def test_gate_reports_unavailable_and_crashing_backends():
    def unavailable(*t):
        raise BackendUnavailableError("no kernel")

    def crash(*t):
        raise RuntimeError("boom")

    assert parity_gate(unavailable, ref, _inputs(), torch.float32).status == "unavailable"
    r = parity_gate(crash, ref, _inputs(), torch.float32)
    assert r.status == "fail" and "boom" in r.reason


def test_a_failing_backend_is_never_timed():
    def fn(backend):
        return ref if backend == "reference" else (lambda x, w, b: ref(x, w, b) + 1e-3)

    cost = OpCost(Cost(1.0, 1.0, 1.0), Cost(3.0, 3.0, 2.0))
    case = Case("masked_conv:t", "masked_conv", "3x3 B", 1, _inputs(), ["x", "weight", "bias"], fn, cost)
    ceilings = {"flops_per_s": 1e9, "bytes_per_s": 1e9}
    bad = run_backend("triton", case, device=torch.device("cpu"), dtype=torch.float32, ceilings=ceilings)
    assert bad["status"] == "fail" and "fwd" not in bad and "fwd_bwd" not in bad
    eager = run_backend("eager", case, device=torch.device("cpu"), dtype=torch.float32, ceilings=ceilings, budget_s=0.05)
    assert eager["status"] == "reference" and eager["fwd"]["median_s"] > 0 and eager["fwd_bwd"]["median_s"] > 0


def test_a_compile_failure_is_reported_with_its_reason(monkeypatch):
    def no_compiler(fn, **kwargs):
        def broken(*args):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found")

        return broken

    monkeypatch.setattr(torch, "compile", no_compiler)
    cost = OpCost(Cost(1.0, 1.0, 1.0), Cost(3.0, 3.0, 2.0))
    case = Case("masked_conv:t", "masked_conv", "3x3 B", 1, _inputs(), ["x", "weight", "bias"],
                lambda backend: ref, cost)
    res = run_backend("compile", case, device=torch.device("cpu"), dtype=torch.float32,
                      ceilings={"flops_per_s": 1e9, "bytes_per_s": 1e9})
    assert res["status"] == "fail" and "C++ compiler" in res["reason"]
    assert "fwd" not in res and "fwd_bwd" not in res
