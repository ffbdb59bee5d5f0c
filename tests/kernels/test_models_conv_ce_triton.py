"""Model level: the three models of Table 1 give the same logits and parameter gradients when
every MaskedConv2d runs on triton (and the loss too, once ``kernels/cross_entropy.py`` exists) as on
the reference. The LSTM scans stay on the reference here (their kernels are tested on their own).

Tiny models (hidden 4-5, one layer, 4x5 images) through Triton's interpreter on CPU.
"""

from __future__ import annotations

import pytest
import torch

import fastpixel

CASES = [
    # (model, channels, levels, hidden, dtype)
    ("pixelcnn", 3, 4, 4, torch.float64),
    ("row_lstm", 3, 4, 4, torch.float64),
    ("diagonal_bilstm", 3, 4, 5, torch.float64),
    ("pixelcnn", 1, 2, 5, torch.float32),
    ("row_lstm", 1, 2, 5, torch.float32),
    ("diagonal_bilstm", 1, 2, 4, torch.float32),
]


def _loss_backend() -> str:
    return "triton"


def _nll_and_grads(model, x, *, loss_backend: str | None):
    """(logits, loss, {name: grad}) of loss = -model.log_prob(x).sum().

    loss_backend None: model.log_prob as is (every op on the ambient backend, the reference in tests);
    otherwise the same sum of per-sub-pixel cross-entropies computed by the op on that backend.
    """
    model.zero_grad(set_to_none=True)
    logits = model(x)
    if loss_backend is None:
        loss = -model.log_prob(x).sum()
    else:
        loss = fastpixel.ops.pixel_cross_entropy(logits, x, reduction="none", backend=loss_backend).sum()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return logits.detach(), loss.detach(), grads


def _assert_close(actual, expected, what):
    rtol, atol = (1e-10, 1e-12) if expected.dtype == torch.float64 else (1e-5, 1e-6)
    scale = max(1.0, float(expected.abs().max()))
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol * scale, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize(
    "name, channels, levels, hidden, dtype", CASES, ids=[f"{c[0]}-c{c[1]}-L{c[2]}-h{c[3]}-{str(c[4])[6:]}" for c in CASES]
)
def test_model_logits_and_grads_match_reference(name, channels, levels, hidden, dtype, device):
    torch.manual_seed(0)
    model = fastpixel.create_model(name, channels=channels, levels=levels, hidden=hidden, layers=1)
    model = model.to(device=device, dtype=dtype)
    x = torch.randint(0, levels, (2, channels, 4, 5), device=device)

    ref_logits, ref_loss, ref_grads = _nll_and_grads(model, x, loss_backend=None)

    convs = [m for m in model.modules() if isinstance(m, fastpixel.MaskedConv2d)]
    assert len(convs) >= 5
    for conv in convs:
        conv.backend = "triton"
    logits, loss, grads = _nll_and_grads(model, x, loss_backend=_loss_backend())

    assert not torch.isnan(logits).any()
    _assert_close(logits, ref_logits, "logits")
    _assert_close(loss, ref_loss, "loss")
    assert grads.keys() == ref_grads.keys()
    for pname, g in grads.items():
        _assert_close(g, ref_grads[pname], f"grad of {pname}")
    # the closed taps of every masked conv got exactly zero gradient
    for conv in convs:
        mask = conv.spec.mask(dtype, device)
        assert (conv.weight.grad[mask == 0] == 0).all()
