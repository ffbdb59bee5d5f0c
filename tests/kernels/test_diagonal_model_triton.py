"""A tiny Diagonal BiLSTM PixelRNN gives the same logits and parameter gradients with its scans on
the Triton kernel as on the reference (the other ops stay on the reference)."""

from __future__ import annotations

import copy

import pytest
import torch

import fastpixel


@pytest.mark.parametrize(
    "channels,hidden,layers,dtype",
    [(1, 3, 2, torch.float64), (3, 5, 1, torch.float32), (3, 4, 2, torch.float64)],
)
def test_model_logits_and_gradients_match(device, monkeypatch, channels, hidden, layers, dtype):
    from fastpixel.kernels import diagonal_bilstm

    torch.manual_seed(0)
    levels = 4
    model_ref = fastpixel.create_model(
        "diagonal_bilstm", channels=channels, levels=levels, hidden=hidden, layers=layers
    ).to(device=device, dtype=dtype)
    model_tri = copy.deepcopy(model_ref)
    scans = [m for m in model_tri.modules() if isinstance(m, fastpixel.DiagonalBiLSTM)]
    assert len(scans) == layers
    for layer in scans:
        layer.backend = "triton"

    calls = []
    real_forward = diagonal_bilstm.diagonal_bilstm_forward  # the launcher behind fastpixel::diagonal_bilstm_scan_forward
    monkeypatch.setattr(diagonal_bilstm, "diagonal_bilstm_forward", lambda *a: calls.append(1) or real_forward(*a))

    x = torch.randint(0, levels, (2, channels, 4, 5), device=device)
    logits_ref = model_ref(x)
    logits_tri = model_tri(x)
    assert len(calls) == layers  # every scan ran on the kernel
    assert logits_tri.shape == (2, levels, channels, 4, 5)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits_tri, logits_ref, **tol)

    cotangent = torch.randn(logits_ref.shape, device=device, dtype=dtype)
    logits_ref.backward(cotangent)
    logits_tri.backward(cotangent)
    params_ref = dict(model_ref.named_parameters())
    for name, p in model_tri.named_parameters():
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, params_ref[name].grad, **tol, msg=lambda m, name=name: f"{name}: {m}")
