"""The public model contract: shapes, dtypes, levels, sizes, log_prob, config round trip."""

from __future__ import annotations

import math

import pytest
import torch

import fastpixel
from fastpixel.models import MODELS, OPTIONS

NAMES = sorted(MODELS)


def taken(name, **options):
    """The options model ``name`` takes (PixelCNN++ has no output layers nor skip convs)."""
    return {k: v for k, v in options.items() if k in OPTIONS[name]}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels,levels", [(1, 2), (3, 256), (3, 3), (1, 17)])
@pytest.mark.parametrize("height,width", [(1, 1), (2, 5), (5, 3)])
def test_logits_shape_and_log_prob(name, channels, levels, height, width):
    model = fastpixel.create_model(name, channels=channels, levels=levels, hidden=3, layers=1).eval()  # no dropout
    x = torch.randint(0, levels, (2, channels, height, width))
    logits = model(x)
    if model.head_kind == "dmol":  # mixture parameters; the per-sub-pixel log-probabilities take the logits' place
        assert logits.shape == (2, (10 if channels == 3 else 3) * model.nr_logistic_mix, height, width)
        logits = model.categorical_log_probs(x)
    assert logits.shape == (2, levels, channels, height, width)
    log_p = model.log_prob(x)
    assert log_p.shape == (2,) and (log_p < 0).all()
    expected = -torch.nn.functional.cross_entropy(logits, x, reduction="none").sum((1, 2, 3))
    torch.testing.assert_close(log_p, expected)
    torch.testing.assert_close(model.bits_per_dim(x), -log_p / (channels * height * width * math.log(2)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_outputs_have_the_parameters_dtype_and_inputs_are_untouched(name, dtype):
    model = fastpixel.create_model(name, channels=3, levels=4, hidden=3, layers=1).to(dtype)
    x = torch.randint(0, 4, (2, 3, 3, 4), dtype=torch.uint8)
    x_copy = x.clone()
    assert model(x).dtype == dtype
    assert model.log_prob(x).dtype == dtype
    assert torch.equal(x, x_copy)


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_parameters_give_bfloat16_logits_and_a_float32_likelihood(name):
    model = fastpixel.create_model(name, channels=3, levels=16, hidden=3, layers=1).to(torch.bfloat16)
    x = torch.randint(0, 16, (2, 3, 3, 4))
    assert model(x).dtype == torch.bfloat16
    log_p = model.log_prob(x)
    assert log_p.dtype == torch.float32  # the loss is computed in float32 from bfloat16 logits
    reference = model.float().log_prob(x)
    torch.testing.assert_close(log_p, reference, rtol=0.05, atol=0.5)


@pytest.mark.parametrize("name", NAMES)
def test_config_rebuilds_the_model_and_state_dict_loads(name):
    model = fastpixel.create_model(name, channels=3, levels=8, hidden=5, layers=2,
                                   **taken(name, skip=True, output_hidden=7)).eval()
    clone = fastpixel.create_model(**model.config).eval()
    clone.load_state_dict(model.state_dict())
    x = torch.randint(0, 8, (1, 3, 4, 4))
    torch.testing.assert_close(clone(x), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_a_few_adam_steps_lower_the_nll(name):
    torch.manual_seed(0)
    model = fastpixel.create_model(name, channels=1, levels=2, hidden=4, layers=1)
    x = (torch.rand(8, 1, 6, 6) < 0.2).long()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.nll(x).mean().item()
    for _ in range(30):
        opt.zero_grad()
        model.nll(x).mean().backward()
        opt.step()
    # i.i.d. Bernoulli(0.2) pixels: an untrained model pays ~36 ln 2 = 25 nats, the entropy is ~18.0
    assert model.nll(x).mean().item() < first - 4.0


def test_paper_sizes_build():
    """CIFAR-10 sizes of Table 1 / section 5: h = 128, 12 LSTM layers, output 1024 (just construct)."""
    model = fastpixel.create_model("diagonal_bilstm", channels=3, levels=256, hidden=128, layers=12, output_hidden=1024)
    assert model.config["hidden"] == 128 and len(model.blocks) == 12
    assert model.output_conv2.spec.out_channels == 256 * 3
