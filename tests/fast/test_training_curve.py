"""CI-sized: a few optimizer steps on the fast ("torch") backend follow the reference's curve.

Same model, same data, same Adam steps; float64, so any wrong gradient (a missing term, a wrong
sign) would send the two parameter trajectories apart at once, while rounding differences stay
near 1e-12.
"""

from __future__ import annotations

import copy

import pytest
import torch

import fastpixel


def losses(model, batches, backend):
    model = copy.deepcopy(model).to_backend(backend)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    curve = []
    for x in batches:
        opt.zero_grad()
        loss = -model.log_prob(x).mean()
        loss.backward()
        opt.step()
        curve.append(loss.item())
    return curve, model


@pytest.mark.parametrize("name", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_fast_backend_training_curve_matches_reference(name):
    torch.manual_seed(0)
    model = fastpixel.create_model(name, channels=1, levels=2, hidden=4, layers=2, output_hidden=8).double()
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, 2, (4, 1, 7, 6), generator=gen) for _ in range(5)]
    fast, fast_model = losses(model, batches, "torch")
    ref, ref_model = losses(model, batches, "reference")
    assert fast[-1] < fast[0]  # it does learn
    torch.testing.assert_close(torch.tensor(fast), torch.tensor(ref), rtol=1e-10, atol=1e-10)
    for (name_p, p), (_, q) in zip(fast_model.named_parameters(), ref_model.named_parameters()):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-10, msg=name_p)
