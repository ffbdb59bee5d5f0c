"""PixelCNN++'s cached sampler (fastpixel.sampling.cached_pixelcnn_pp) against the network and the naive sampler.

* the engine's mixture parameters at every pixel equal ``forward``'s (float64, 1e-10), at odd sizes
  (the U-Net's ceil-sized lower resolutions and cropped upsampling), every depth, RGB and grey,
  with labels and vectors: every map of the U-Net is computed at the right time from the right inputs;
* cached == naive sampling bit for bit given the same generator, at several temperatures, for
  ``sample`` and ``complete``, on every backend (reference, torch, triton through the interpreter);
* a model whose dropout is active (training mode) is refused rather than sampled at random.
Compression through this engine: tests/test_pixelcnn_pp.py::test_a_dmol_head_compresses_losslessly_at_its_likelihood.
"""

from __future__ import annotations

import pytest
import torch

from fastpixel.models import create_model
from fastpixel.sampling.engines import make_engine
from fastpixel.sampling.generate import cached_logits, complete, sample


def random_pp(channels=3, layers=1, levels=256, **options):
    """A tiny PixelCNN++ with every weight redrawn (the default init leaves long paths numerically tiny)."""
    torch.manual_seed(0)
    model = create_model("pixelcnn_pp", channels=channels, levels=levels, hidden=4, layers=layers,
                         nr_logistic_mix=2, **options).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model


@pytest.mark.parametrize("channels, layers, size", [(3, 1, (5, 7)), (3, 0, (3, 1)), (1, 2, (9, 6)), (3, 2, (8, 8)),
                                                    (3, 1, (1, 5)), (1, 1, (6, 1))])
def test_engine_parameters_equal_the_forward_pass(channels, layers, size):
    h, w = size
    model = random_pp(channels, layers)
    x = torch.randint(0, 256, (2, channels, h, w))
    with torch.no_grad():
        expected = model(x)
        engine = make_engine("cached", model, x.clone())
        got = torch.empty_like(expected)
        for r in range(h):
            engine.start_row(r)
            for j in range(w):
                got[:, :, r, j] = engine.parameters_at(r, j)
                for c in range(channels):
                    engine.write(r, j, c, x[:, c, r, j])
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_conditional_cached_log_probs_equal_the_model():
    model = random_pp(num_classes=3, cond_features=2)
    x = torch.randint(0, 256, (2, 3, 5, 6))
    labels, cond = torch.tensor([0, 2]), torch.randn(2, 2, dtype=torch.float64)
    torch.testing.assert_close(cached_logits(model, x, labels=labels, cond=cond),
                               model.categorical_log_probs(x, labels=labels, cond=cond), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("temperature", [1.0, 0.6, 0.0])
@pytest.mark.parametrize("channels", [3, 1])
def test_cached_sampling_equals_naive_bit_for_bit(temperature, channels):
    model = random_pp(channels, layers=1, levels=64)
    gen = lambda: torch.Generator().manual_seed(11)  # noqa: E731
    naive = sample(model, 2, height=5, width=4, method="naive", temperature=temperature, generator=gen())
    cached = sample(model, 2, height=5, width=4, method="cached", temperature=temperature, generator=gen())
    assert torch.equal(naive, cached)


def test_cached_sampling_float32_and_labels_equal_naive():
    torch.manual_seed(3)
    model = create_model("pixelcnn_pp", channels=3, levels=256, hidden=8, layers=1, nr_logistic_mix=3,
                         num_classes=2).eval()
    gen = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    naive = sample(model, 2, height=4, width=5, method="naive", labels=[0, 1], generator=gen())
    cached = sample(model, 2, height=4, width=5, method="cached", labels=[0, 1], generator=gen())
    assert torch.equal(naive, cached)


def test_cached_completion_equals_naive_and_keeps_the_known():
    model = random_pp(levels=32)
    images = torch.randint(0, 32, (2, 3, 6, 5))
    known = torch.zeros(1, 1, 6, 5, dtype=torch.bool)
    known[..., :3, :] = True
    known[..., 3, :2] = True
    gen = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    naive = complete(model, images, known, method="naive", generator=gen())
    cached = complete(model, images, known, method="cached", generator=gen())
    assert torch.equal(naive, cached)
    assert torch.equal(cached[known.expand_as(images)], images[known.expand_as(images)])


def test_active_dropout_is_refused():
    model = create_model("pixelcnn_pp", channels=1, levels=16, hidden=4, layers=1, dropout=0.5)  # training mode
    for method in ("cached", "naive"):
        with pytest.raises(ValueError, match=r"training mode with dropout 0.5.*model.eval\(\)"):
            sample(model, 1, height=2, width=2, method=method)
    sample(model.eval(), 1, height=2, width=2)
    sample(create_model("pixelcnn_pp", channels=1, levels=16, hidden=4, layers=1, dropout=0.0), 1, height=2, width=2)



@pytest.mark.parametrize("backend", ["reference", "torch", "triton"])
def test_every_backend_samples_the_same_images_cached_and_naive(backend):
    """The backend runs PixelCNN++'s DMoL loss; sampling reads the mixture's conditionals, so every
    backend (triton through the interpreter here) draws the same images, cached as naive."""
    model = random_pp(levels=64).to_backend(backend)
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    expected = sample(random_pp(levels=64).to_backend("reference"), 1, height=3, width=3, generator=gen())
    for method in ("cached", "naive"):
        assert torch.equal(sample(model, 1, height=3, width=3, method=method, generator=gen()), expected), method
