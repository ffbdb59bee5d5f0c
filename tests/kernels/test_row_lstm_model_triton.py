"""A tiny Row LSTM PixelRNN gives the same logits, log-likelihood and parameter gradients with its
Row LSTM scans on the Triton kernel as on the reference (every other op stays on the reference)."""

from __future__ import annotations

import copy

import pytest
import torch

import fastpixel

CASES = [
    # channels, hidden, layers, dtype
    (1, 3, 2, torch.float64),
    (3, 5, 1, torch.float64),
    (3, 4, 2, torch.float32),
]
TOLS = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-5, atol=1e-5)}


def _logits_and_grads(model, x):
    model.zero_grad(set_to_none=True)
    logits = model(x)
    nll = -model.log_prob(x).sum()
    nll.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    return logits.detach(), nll.detach(), grads


@pytest.mark.parametrize("channels,hidden,layers,dtype", CASES, ids=lambda v: str(v))
def test_row_lstm_pixelrnn_same_on_both_backends(channels, hidden, layers, dtype, device):
    torch.manual_seed(0)
    levels = 4
    model = fastpixel.create_model("row_lstm", channels=channels, levels=levels, hidden=hidden, layers=layers)
    model = model.to(device=device, dtype=dtype)
    x = torch.randint(0, levels, (2, channels, 4, 5), device=device)

    triton_model = copy.deepcopy(model)
    scans = [m for m in triton_model.modules() if isinstance(m, fastpixel.RowLSTM)]
    assert len(scans) == layers
    for layer in scans:
        layer.backend = "triton"

    logits_r, nll_r, grads_r = _logits_and_grads(model, x)
    logits_t, nll_t, grads_t = _logits_and_grads(triton_model, x)

    tol = TOLS[dtype]
    torch.testing.assert_close(logits_t, logits_r, **tol)
    torch.testing.assert_close(nll_t, nll_r, **tol)
    assert grads_t.keys() == grads_r.keys()
    for name, g_r in grads_r.items():
        assert g_r is not None and grads_t[name] is not None, name
        scale = max(1.0, g_r.abs().max().item())
        torch.testing.assert_close(grads_t[name], g_r, rtol=tol["rtol"], atol=tol["atol"] * scale, msg=name)
    # the state-to-state weights really were differentiated through the kernel
    assert any(name.endswith("state_weight") for name in grads_t)
