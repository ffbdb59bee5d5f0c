"""Cached vs naive sampling, image completion, the categorical draw, and the fastpixel.sample spellings.

The cached sampler must return exactly the naive sampler's images with the same generator. Both
draw the same uniforms and invert the CDF of softmax(logits / T); the models here are float64, so
the two methods' logits agree to ~1e-16 and a value could only differ if a uniform fell within
that distance of a CDF step (never, for these seeds). In float32 the logits agree to ~1e-6, and
the same draw could in rare cases land between them; that case is covered by comparing the
cached logits with the full forward pass on a float32 tolerance (test_cached_logits_float32).
"""

from __future__ import annotations

import pytest
import torch

import fastpixel
from fastpixel.sampling import cached_logits, complete, sample
from fastpixel.sampling.categorical import inverse_cdf

MODELS = ("pixelcnn", "row_lstm", "diagonal_bilstm")
# (channels, levels, skip): grey binary, RGB 8-bit with skip connections, grey 8-bit, RGB binary
KINDS = [(1, 2, False), (3, 256, True), (1, 256, False), (3, 2, False)]


pytestmark = pytest.mark.usefixtures("one_thread")


def make_model(name, channels, levels, skip=False, dtype=torch.float64, seed=0, hidden=4, layers=2):
    torch.manual_seed(seed)
    model = fastpixel.create_model(name, channels=channels, levels=levels, hidden=hidden, layers=layers,
                                   output_hidden=6, skip=skip, backend="reference")
    with torch.no_grad():  # larger weights: peaked distributions that depend strongly on the context
        for pname, p in model.named_parameters():
            if "weight" in pname:
                p.mul_(3.0)
        model.output_conv2.weight.mul_(4.0)
    return model.to(dtype)


def gen(seed):
    return torch.Generator().manual_seed(seed)


# -- the caches compute the network ----------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("channels,levels,skip", KINDS)
def test_cached_logits_match_forward_float64(name, channels, levels, skip):
    model = make_model(name, channels, levels, skip)
    x = torch.randint(0, levels, (2, channels, 5, 7), generator=gen(1))
    expected = model(x)
    got = cached_logits(model, x)
    assert got.shape == expected.shape == (2, levels, channels, 5, 7)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_cached_logits_float32(name):
    model = make_model(name, 3, 16, skip=True, dtype=torch.float32, layers=3)
    x = torch.randint(0, 16, (3, 3, 6, 4), generator=gen(2))
    expected = model(x)
    scale = expected.abs().max().item()
    torch.testing.assert_close(cached_logits(model, x), expected, rtol=1e-5, atol=1e-6 * max(scale, 1.0))


@pytest.mark.parametrize("name", MODELS)
def test_cached_logits_depend_on_the_image(name):
    """A cache that ignored the image would pass nothing above by chance, but check it directly."""
    model = make_model(name, 1, 2)
    x = torch.zeros(1, 1, 4, 5, dtype=torch.long)
    y = x.clone()
    y[0, 0, 0, 0] = 1
    assert not torch.allclose(cached_logits(model, x)[..., 3, 4], cached_logits(model, y)[..., 3, 4])


# -- naive and cached samplers agree exactly -------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("channels,levels,skip", KINDS)
def test_naive_and_cached_samples_identical(name, channels, levels, skip):
    model = make_model(name, channels, levels, skip)
    naive = sample(model, 4, height=4, width=5, generator=gen(7), method="naive")
    cached = sample(model, 4, height=4, width=5, generator=gen(7), method="cached")
    assert naive.dtype == cached.dtype == torch.int64
    assert naive.shape == (4, channels, 4, 5)
    assert torch.equal(naive, cached)
    # a draw is insensitive to a small error in its logits (binary above all): check them too
    torch.testing.assert_close(cached_logits(model, cached), model(cached), rtol=1e-10, atol=1e-12)
    assert 0 <= int(cached.min()) and int(cached.max()) < levels
    assert cached.unique().numel() > 1  # not a degenerate constant image


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_naive_and_cached_identical_with_temperature(name, temperature):
    model = make_model(name, 3, 8, skip=True, seed=3)
    kw = dict(height=3, width=4, temperature=temperature)
    assert torch.equal(sample(model, 2, generator=gen(5), method="naive", **kw),
                       sample(model, 2, generator=gen(5), **kw))


def test_same_seed_same_images_other_seed_other_images():
    model = make_model("diagonal_bilstm", 1, 256)
    a = sample(model, 2, height=4, width=4, generator=gen(11))
    assert torch.equal(a, sample(model, 2, height=4, width=4, generator=gen(11)))
    assert not torch.equal(a, sample(model, 2, height=4, width=4, generator=gen(12)))


def test_default_generator_follows_manual_seed():
    model = make_model("row_lstm", 1, 2)
    torch.manual_seed(4)
    a = sample(model, 2, height=3, width=3)
    torch.manual_seed(4)
    assert torch.equal(a, sample(model, 2, height=3, width=3))


def test_samples_follow_the_model_distribution():
    """All weights zero but the last bias: every sub-pixel is an independent draw of softmax(bias / T)."""
    model = make_model("pixelcnn", 1, 4)
    bias = torch.tensor([0.0, 1.0, -1.0, 0.5], dtype=torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.output_conv2.bias.copy_(bias)  # levels * channels maps, level-major; C = 1
    for temperature in (1.0, 0.5):
        x = sample(model, 40, height=8, width=8, temperature=temperature, generator=gen(0))
        freq = torch.bincount(x.flatten(), minlength=4).double() / x.numel()
        expected = torch.softmax(bias / temperature, dim=0)
        # 2560 draws: the standard error of each frequency is below 0.01
        torch.testing.assert_close(freq, expected, rtol=0, atol=0.035)


# -- completion ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("channels,levels", [(1, 2), (3, 256)])
def test_completion_keeps_known_and_matches_naive(name, channels, levels):
    model = make_model(name, channels, levels)
    images = torch.randint(0, levels, (3, channels, 5, 4), generator=gen(3))
    known = torch.rand(3, channels, 5, 4, generator=gen(4)) < 0.5
    known[0, :, :2] = True  # occlusion-like: one image's top rows all known
    cached = complete(model, images, known, generator=gen(9))
    naive = complete(model, images, known, generator=gen(9), method="naive")
    assert torch.equal(cached, naive)
    assert torch.equal(cached[known], images[known].long())
    assert not torch.equal(cached[~known], images[~known].long())  # the rest was resampled
    assert 0 <= int(cached.min()) and int(cached.max()) < levels


@pytest.mark.parametrize("name", MODELS)
def test_completion_with_occlusion_mask_broadcasts(name):
    model = make_model(name, 3, 4)
    images = torch.randint(0, 4, (2, 3, 6, 5), generator=gen(5), dtype=torch.uint8)
    known = torch.ones(1, 1, 6, 5, dtype=torch.bool)
    known[..., 3:, :] = False  # bottom half occluded, as in the paper's Figure 1
    out = complete(model, images, known, generator=gen(1))
    assert torch.equal(out[:, :, :3], images[:, :, :3].long())
    assert torch.equal(out, complete(model, images, known, generator=gen(1), method="naive"))


def test_completion_edge_cases():
    model = make_model("diagonal_bilstm", 3, 8)
    images = torch.randint(0, 8, (2, 3, 4, 3), generator=gen(6))
    everything = torch.ones_like(images, dtype=torch.bool)
    assert torch.equal(complete(model, images, everything, generator=gen(2)), images)
    nothing = ~everything  # nothing known: exactly sample() with the same generator
    filled = complete(model, images, nothing, generator=gen(2))
    assert torch.equal(filled, sample(model, 2, height=4, width=3, generator=gen(2)))
    assert not torch.equal(filled, images)


def test_completion_does_not_modify_its_input():
    model = make_model("row_lstm", 1, 2)
    images = torch.randint(0, 2, (2, 1, 4, 4), generator=gen(0))
    before = images.clone()
    complete(model, images, torch.zeros_like(images, dtype=torch.bool), generator=gen(0))
    assert torch.equal(images, before)


# -- the categorical draw --------------------------------------------------------------------------
def test_inverse_cdf_matches_a_linear_search():
    logits = torch.randn(200, 7, generator=gen(0), dtype=torch.float64) * 3
    u = torch.rand(200, generator=gen(1), dtype=torch.float64)
    got = inverse_cdf(logits, u, 1.0)
    cdf = torch.softmax(logits, 1).cumsum(1)
    for b in range(200):
        k = next(k for k in range(7) if u[b] * cdf[b, -1] < cdf[b, k])
        assert got[b].item() == k


def test_inverse_cdf_never_returns_a_zero_probability_level():
    logits = torch.tensor([[-torch.inf, 0.0, -torch.inf], [0.0, -torch.inf, -torch.inf],
                           [-torch.inf, 0.0, 0.0]], dtype=torch.float64)
    for u in (0.0, 0.5, 0.7, 1.0 - 1e-16):
        out = inverse_cdf(logits, torch.full((3,), u, dtype=torch.float64), 1.0)
        assert out.tolist() == [1, 0, 1 if u < 0.5 else 2]


# -- argument errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("temperature,error", [(-1e-9, ValueError), (-1.0, ValueError), (float("inf"), ValueError),
                                               (float("nan"), ValueError),
                                               ("1", TypeError)])
def test_bad_temperature(temperature, error):
    with pytest.raises(error, match="temperature"):
        sample(make_model("pixelcnn", 1, 2), 1, height=2, width=2, temperature=temperature)


@pytest.mark.parametrize("kwargs,match", [(dict(method="fast"), "method"), (dict(height=0), "height"),
                                          (dict(width=1.5), "width")])
def test_bad_sample_arguments(kwargs, match):
    args = dict(height=2, width=2) | kwargs
    with pytest.raises(ValueError, match=match):
        sample(make_model("pixelcnn", 1, 2), 1, **args)


def test_bad_num_and_model():
    with pytest.raises(ValueError, match="num"):
        sample(make_model("pixelcnn", 1, 2), 0, height=2, width=2)
    with pytest.raises(TypeError, match="PixelModel"):
        sample(torch.nn.Linear(2, 2), 1, height=2, width=2)


def test_bad_completion_arguments():
    model = make_model("pixelcnn", 1, 2)
    images = torch.zeros(2, 1, 3, 3, dtype=torch.long)
    with pytest.raises(TypeError, match="bool"):
        complete(model, images, torch.ones(2, 1, 3, 3))
    with pytest.raises(ValueError, match="broadcast"):
        complete(model, images, torch.ones(2, 1, 3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        complete(model, images + 2, torch.ones(2, 1, 3, 3, dtype=torch.bool))
    with pytest.raises(TypeError, match="integer"):
        complete(model, images.float(), torch.ones(2, 1, 3, 3, dtype=torch.bool))


def test_progress_bar_over_rows(capsys):
    sample(make_model("pixelcnn", 1, 2), 1, height=3, width=2, generator=gen(0), progress=True)
    err = capsys.readouterr().err
    assert "3/3" in err and "row" in err


# -- fastpixel.sample: the function, never rebound to a module --------------------------------------
def test_fastpixel_sample_stays_the_function():
    import importlib

    with pytest.raises(ImportError, match="fastpixel.cli.sample"):
        importlib.import_module("fastpixel.sample")  # only a `python -m` entry point
    command = importlib.import_module("fastpixel.cli.sample")

    assert fastpixel.sample is sample and fastpixel.complete is complete
    assert callable(command.main) and command.main.__module__ == "fastpixel.cli.sample"


@pytest.mark.skipif(not hasattr(fastpixel, "complete"),
                    reason="fastpixel/__init__.py does not export sample/complete yet (lead's edit)")
def test_top_level_exports():
    model = make_model("pixelcnn", 1, 2)
    images = torch.zeros(1, 1, 3, 3, dtype=torch.long)
    known = torch.zeros_like(images, dtype=torch.bool)
    assert fastpixel.complete is complete
    assert torch.equal(fastpixel.sample(model, 1, height=3, width=3, generator=gen(0)),
                       fastpixel.complete(model, images, known, generator=gen(0)))


def test_sampling_first_leaves_the_model_trainable():
    """Sampling builds (and caches) the masks; they must be ordinary tensors that autograd can save."""
    model = make_model("diagonal_bilstm", 3, 3, hidden=7, layers=1)  # masks not built by any other test
    images = sample(model, 2, height=3, width=3, generator=gen(0))
    assert not images.is_inference()
    model.nll(images).sum().backward()
    assert model.input_conv.weight.grad is not None
