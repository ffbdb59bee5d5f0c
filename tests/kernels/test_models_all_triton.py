"""Every model end to end with *every* op on the triton backend (convs, scans, loss) vs the reference."""

from __future__ import annotations

import pytest
import torch

import fastpixel


@pytest.mark.parametrize("name", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
@pytest.mark.parametrize("channels,levels,dtype", [(3, 5, torch.float64), (1, 2, torch.float32)])
def test_model_on_triton_matches_the_reference(name, channels, levels, dtype, device):
    torch.manual_seed(0)
    model = fastpixel.create_model(name, channels=channels, levels=levels, hidden=4, layers=1, skip=True)
    model = model.to(device=device, dtype=dtype)
    x = torch.randint(0, levels, (2, channels, 3, 5), device=device)
    results = {}
    for backend in ("reference", "triton"):
        model.zero_grad()
        log_p = model.log_prob(x, backend=backend)
        (-log_p.sum()).backward()
        results[backend] = (log_p.detach(), {k: p.grad.clone() for k, p in model.named_parameters()})
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(results["triton"][0], results["reference"][0], **tol)
    for key, grad in results["reference"][1].items():
        torch.testing.assert_close(results["triton"][1][key], grad, **tol, msg=lambda m, k=key: f"{k}: {m}")


def test_the_triton_backend_really_runs_kernels(monkeypatch):
    """A spy on every kernel entry point of the dispatch table: the model's triton path calls each."""
    import fastpixel.kernels.cross_entropy as ce
    import fastpixel.kernels.diagonal_bilstm as dl
    import fastpixel.kernels.masked_conv as mc
    from fastpixel import dispatch

    calls = []

    def spy(name, real):
        return lambda *a, _real=real, **k: calls.append(name) or _real(*a, **k)

    for op, module in (("cross_entropy", ce), ("diagonal_bilstm", dl), ("masked_conv", mc)):
        real = dispatch.implementation(op, "triton")
        assert real is getattr(module, dispatch.OPS[op])  # the table holds the kernels' entry points
        monkeypatch.setitem(dispatch.TABLE[op], "triton", spy(op, real))
    assert dispatch.fused("diagonal_bilstm_layer", "triton") is None  # the layer is the conv kernel, then the scan's
    model = fastpixel.create_model("diagonal_bilstm", channels=1, levels=2, hidden=3, layers=1, backend="triton")
    model.log_prob(torch.randint(0, 2, (1, 1, 2, 3)))
    assert {"cross_entropy", "diagonal_bilstm", "masked_conv"} <= set(calls)
