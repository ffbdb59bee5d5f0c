"""PixelCNN++ (fastpixel.models.pixelcnn_pp) and the DMoL head of the paper's models (fastpixel.models.heads).

What is proved here, on tiny random models:
* causality and receptive field by gradients (float64): the mixture parameters at (r, j) depend on
  every pixel before (r, j) in raster order and on no other (PixelCNN++ has no blind spot); within a
  pixel, the per-sub-pixel conditionals of ``categorical_log_probs`` see only earlier channels;
* any H, W >= 1: the U-Net's strided down- and upsampling give back the input size exactly;
* normalisation: log p(x) sums to 1 over every image of 2 levels, 2x2 (RGB: 4096 images; grey: 16),
  for PixelCNN++ and for a PixelCNN with ``head="dmol"``;
* ``log_prob(x)`` is the gathered sum of ``categorical_log_probs(x)`` for every model kind and head;
* the model's loss and gradients agree across the DMoL backends (reference, torch, triton through
  the interpreter);
* sampling: PixelCNN++ naive (its cached sampler: tests/test_pixelcnn_pp_cached.py), a DMoL head's
  cached == naive bit for bit; the config round trip.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import fastpixel
from fastpixel.layers.shifted_conv import ShiftedConv2d, ShiftedDeconv2d
from fastpixel.models import create_model
from fastpixel.models.heads import dmol_groups
from fastpixel.models.multiscale import MultiScalePixelRNN
from fastpixel.sampling.generate import cached_logits, sample


def tiny_pp(channels=3, levels=256, k=2, **kw):
    torch.manual_seed(0)
    return create_model("pixelcnn_pp", channels=channels, levels=levels, hidden=3, layers=1, nr_logistic_mix=k,
                        **kw).eval()


def randomise(model, scale=0.5):
    """Generic weights: PyTorch's defaults leave conv' of every block at a tenth of its scale and the
    biases small, so dependencies through long paths would be numerically tiny; redraw them all."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, scale)
    return model


@pytest.mark.parametrize("size", [(5, 6), (4, 4), (1, 3), (3, 1), (7, 2)])
def test_receptive_field_is_exactly_the_pixels_before(size):
    h, w = size
    model = randomise(tiny_pp().double())
    y = torch.rand(1, 3, h, w, dtype=torch.float64, requires_grad=True)
    params = model.forward_float(y)
    assert params.shape == (1, 20, h, w)
    for r, j in itertools.product(range(h), range(w)):
        (grad,) = torch.autograd.grad(params[0, :, r, j].pow(2).sum(), y, retain_graph=True)
        seen = grad[0].abs().amax(0) > 0  # (H, W): pixels the parameters at (r, j) depend on
        before = torch.zeros(h, w, dtype=torch.bool)
        before.view(-1)[: r * w + j] = True
        assert torch.equal(seen, before), f"params at {(r, j)} see\n{seen.int()}\nexpected\n{before.int()}"


def test_within_a_pixel_only_the_coupling_reads_earlier_channels():
    """categorical_log_probs[:, :, c, r, j] changes with x[:, c', r, j] for c' < c and never for c' >= c."""
    model = randomise(tiny_pp(levels=16))
    torch.manual_seed(1)
    x = torch.randint(0, 16, (4, 3, 3, 3))
    base = model.categorical_log_probs(x)
    r, j = 1, 2
    for changed in range(3):
        x2 = x.clone()
        x2[:, changed, r, j] = (x2[:, changed, r, j] + 7) % 16
        out = model.categorical_log_probs(x2)
        for c in range(3):
            same = torch.equal(out[:, :, c, r, j], base[:, :, c, r, j])
            assert same == (changed >= c), (changed, c)
        # later pixels see the change (through the network), earlier ones do not
        assert torch.equal(out[..., : r, :], base[..., : r, :]) and torch.equal(out[..., r, :j], base[..., r, :j])
        assert not torch.equal(out[..., r, j + 1:], base[..., r, j + 1:]) or not torch.equal(out[..., r + 1:, :],
                                                                                             base[..., r + 1:, :])


@pytest.mark.parametrize("h, w", [(1, 1), (1, 7), (9, 1), (5, 6), (13, 10)])
def test_any_size_comes_back_exactly(h, w):
    model = tiny_pp(channels=1, levels=4)
    x = torch.randint(0, 4, (2, 1, h, w))
    assert model(x).shape == (2, 6, h, w)
    assert torch.isfinite(model.log_prob(x)).all()


def test_shifted_layers_check_their_arguments():
    with pytest.raises(ValueError, match="odd kernel width"):
        ShiftedConv2d(2, 2, (2, 2), "down")
    with pytest.raises(ValueError, match="kind must be one of"):
        ShiftedConv2d(2, 2, (2, 3), "up")
    with pytest.raises(ValueError, match="upsamples to"):
        ShiftedDeconv2d(2, 2, (2, 2), "down_right")(torch.zeros(1, 2, 3, 3), (7, 6))


def test_create_model_maps_the_common_arguments():
    a = create_model("pixelcnn_pp", channels=3, levels=256, hidden=5, layers=2)
    b = create_model("pixelcnn_pp", channels=3, levels=256, nr_filters=5, nr_resnet=2)
    assert a.config == b.config and (a.nr_filters, a.nr_resnet, a.nr_logistic_mix, a.dropout) == (5, 2, 10, 0.5)
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())
    with pytest.raises(ValueError, match="hidden=5 and nr_filters=6 disagree"):
        create_model("pixelcnn_pp", channels=3, levels=256, hidden=5, layers=2, nr_filters=6)
    with pytest.raises(TypeError, match="unknown option"):
        create_model("pixelcnn_pp", channels=3, levels=256, hidden=5, layers=2, skip=True)
    with pytest.raises(ValueError, match="dropout must be"):
        create_model("pixelcnn_pp", channels=3, levels=256, hidden=5, layers=2, dropout=1.0)
    with pytest.raises(ValueError, match="head must be one of"):
        create_model("pixelcnn", channels=3, levels=256, hidden=5, layers=2, head="logistic")


def test_dmol_groups_respect_the_channel_order():
    k = 2
    g = dmol_groups(3, k)
    assert g[:k] == (0, 0)  # mixture logits: nothing of the pixel
    assert g[k: 3 * k] == (0,) * 4 and g[3 * k: 4 * k] == (1, 1)  # R's mean, scale; alpha (G on R) in G's group
    assert g[4 * k: 6 * k] == (1,) * 4 and g[6 * k: 7 * k] == (2, 2)  # G's mean, scale; beta (B on R) in B's
    assert g[7 * k: 10 * k] == (2,) * 6  # B's mean, scale, gamma
    assert dmol_groups(1, 3) == (0,) * 9


def all_images(channels, h, w, levels=2):
    n = channels * h * w
    values = torch.tensor(list(itertools.product(range(levels), repeat=n)))
    return values.view(-1, channels, h, w)


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("kind", ["pixelcnn_pp", "pixelcnn", "gated_pixelcnn"])
def test_log_prob_normalises_over_every_image(kind, channels):
    torch.manual_seed(2)
    if kind == "pixelcnn_pp":
        model = randomise(tiny_pp(channels=channels, levels=2), 0.3).double()
    else:  # the DMoL head on a masked model
        model = create_model(kind, channels=channels, levels=2, hidden=3, layers=1, head="dmol",
                             nr_logistic_mix=2).double()
        randomise(model, 0.3)
    x = all_images(channels, 2, 2)
    total = torch.logsumexp(model.log_prob(x), 0)
    torch.testing.assert_close(total, torch.zeros((), dtype=torch.float64), rtol=0, atol=1e-10)


def softmax_kinds():
    return [("pixelcnn", {}), ("row_lstm", {}), ("diagonal_bilstm", {}), ("gated_pixelcnn", {}),
            ("multiscale", {}), ("pixelcnn_pp", {}),
            *[(name, dict(head="dmol", nr_logistic_mix=2))
              for name in ("pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn")]]


@pytest.mark.parametrize("name, options", softmax_kinds())
def test_log_prob_is_the_gathered_categorical_log_probs(name, options):
    torch.manual_seed(3)
    if name == "multiscale":
        model = MultiScalePixelRNN(kind="row_lstm", channels=3, levels=8, hidden=3, layers=1)
    elif name == "pixelcnn_pp":
        model = tiny_pp(levels=8)
    else:
        model = create_model(name, channels=3, levels=8, hidden=3, layers=1, **options)
    model = model.double()
    x = torch.randint(0, 8, (2, 3, 3, 4))
    lp = model.categorical_log_probs(x)
    assert lp.shape == (2, 8, 3, 3, 4)
    torch.testing.assert_close(lp.exp().sum(1), torch.ones(2, 3, 3, 4, dtype=torch.float64), rtol=0, atol=1e-12)
    gathered = lp.gather(1, x.unsqueeze(1)).sum(dim=(1, 2, 3, 4))
    torch.testing.assert_close(gathered, model.log_prob(x), rtol=0, atol=1e-10)


BACKENDS = ["reference", "torch", "triton"]


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_model_loss_and_gradients_agree_across_backends(backend):
    if backend == "triton":
        pytest.importorskip("triton")
    x = torch.randint(0, 256, (2, 3, 3, 5))
    models = {}
    for name in ("reference", backend):
        model = tiny_pp(backend=name).double()
        loss = -model.log_prob(x).sum()
        loss.backward()
        models[name] = (loss.detach(), {n: p.grad for n, p in model.named_parameters()})
    (ref_loss, ref_grads), (loss, grads) = models["reference"], models[backend]
    assert models[backend] is not None and tiny_pp(backend=backend).backend == backend
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-10)
    for n, g in ref_grads.items():
        torch.testing.assert_close(grads[n], g, rtol=1e-10, atol=1e-12, msg=n)


def test_sampling_pixelcnn_pp_naive():
    model = tiny_pp(levels=16)
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    a = sample(model, 2, height=2, width=3, method="naive", generator=gen())
    b = sample(model, 2, height=2, width=3, method="naive", generator=gen())
    assert a.shape == (2, 3, 2, 3) and a.dtype == torch.int64 and torch.equal(a, b)
    assert int(a.min()) >= 0 and int(a.max()) < 16
    greedy = sample(model, 1, height=2, width=3, method="naive", temperature=0)
    lp = model.categorical_log_probs(greedy)  # every greedy value is its conditional's most probable one
    torch.testing.assert_close(lp.gather(1, greedy.unsqueeze(1)).squeeze(1), lp.amax(1), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn"])
@pytest.mark.parametrize("channels", [3, 1])
def test_dmol_head_cached_equals_naive(name, channels):
    torch.manual_seed(4)
    model = create_model(name, channels=channels, levels=256, hidden=3, layers=1, head="dmol", nr_logistic_mix=3)
    gen = lambda: torch.Generator().manual_seed(6)  # noqa: E731
    naive = sample(model, 2, height=3, width=4, method="naive", generator=gen())
    cached = sample(model, 2, height=3, width=4, method="cached", generator=gen())
    assert torch.equal(naive, cached)
    x = torch.randint(0, 256, (2, channels, 3, 4))
    torch.testing.assert_close(cached_logits(model, x), model.categorical_log_probs(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("options", [dict(), dict(num_classes=3), dict(cond_features=2)])
def test_config_round_trip_and_conditioning(tmp_path, options):
    model = tiny_pp(channels=1, levels=16, **options)
    x = torch.randint(0, 16, (2, 1, 3, 3))
    cond = dict(labels=torch.tensor([0, 2])) if "num_classes" in options else (
        dict(cond=torch.randn(2, 2)) if "cond_features" in options else {})
    assert create_model(**model.config).config == model.config
    model.save_pretrained(tmp_path / "m")
    loaded = fastpixel.from_pretrained(tmp_path / "m").eval()
    torch.testing.assert_close(loaded.log_prob(x, **cond), model.log_prob(x, **cond), rtol=0, atol=0)
    if cond:
        other = dict(labels=torch.tensor([1, 1])) if "labels" in cond else dict(cond=torch.randn(2, 2))
        assert not torch.equal(model.log_prob(x, **other), model.log_prob(x, **cond))
        with pytest.raises(ValueError, match="pass"):
            model.log_prob(x)


def test_dropout_only_in_training():
    model = tiny_pp(levels=16)
    x = torch.randint(0, 16, (2, 3, 4, 4))
    assert torch.equal(model.log_prob(x), model.log_prob(x))
    model.train()
    assert not torch.equal(model.log_prob(x), model.log_prob(x))


def test_compiled_matches_eager_with_every_gradient():
    """torch.compile(fullgraph=True) (aot_eager: dynamo + AOTAutograd without code generation)."""
    torch._dynamo.reset()
    model = tiny_pp(levels=16, backend="reference").double()
    x = torch.randint(0, 16, (2, 3, 3, 4))
    compiled = torch.compile(lambda x: model.log_prob(x, validate=False), fullgraph=True, backend="aot_eager")
    got = compiled(x)
    grads = torch.autograd.grad(got.sum(), list(model.parameters()))
    want = model.log_prob(x)
    expected = torch.autograd.grad(want.sum(), list(model.parameters()))
    torch._dynamo.reset()
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-10)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)


def test_compiles_with_no_graph_break():
    torch._dynamo.reset()
    model = tiny_pp(levels=16, backend="reference").double()
    x = torch.randint(0, 16, (2, 3, 3, 4))
    explained = torch._dynamo.explain(lambda x: model.log_prob(x))(x)
    torch._dynamo.reset()
    assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
    assert explained.graph_count == 1


def test_fastpixel_train_runs_pixelcnn_pp(tmp_path):
    """--model pixelcnn_pp trains through the one loop (loss = model.output_nll) and its sample grid
    is drawn by the naive sampler; the flags it has no use for are refused."""
    from fastpixel.cli.train import main
    from fastpixel.training.config import TrainConfig
    from fastpixel.training.from_config import train
    from tests.cli_helpers import tiny_config

    config = tiny_config(tmp_path / "run", model="pixelcnn_pp", hidden=3, layers=1, binarize="none", steps=3,
                         eval_every=3, checkpoint_every=3, sample_grid=1, ema=0.0)
    config["output_hidden"] = None  # the cpu_tiny preset under tiny_config sets one
    result = train(config)
    assert result["step"] == 3 and result["test"]["bits_per_dim"] > 0
    assert list((tmp_path / "run" / "samples").iterdir())
    loaded = fastpixel.from_pretrained(tmp_path / "run" / "checkpoint.pt")
    assert loaded.config["name"] == "pixelcnn_pp" and loaded.config["hidden"] == 3
    with pytest.raises(ValueError, match="do not apply to --model pixelcnn_pp"):
        TrainConfig.from_dict({**config, "run_dir": str(tmp_path / "other"), "output_hidden": 8})
    assert callable(main)


def test_presets():
    from fastpixel import presets

    cpu = presets.resolve("cpu_digits256_pp", {})
    assert (cpu["model"], cpu["dataset"], cpu["binarize"]) == ("pixelcnn_pp", "builtin_mnist", "none")
    small = create_model("pixelcnn_pp", channels=1, levels=256, hidden=cpu["hidden"], layers=cpu["layers"])
    softmax = presets.resolve("cpu_digits256", {})
    same = create_model("pixelcnn", channels=1, levels=256, hidden=softmax["hidden"], layers=softmax["layers"],
                        output_hidden=softmax["output_hidden"])
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert (count(small), count(same)) == (14_550, 11_520)  # "about the same size", as the preset says
    gpu = presets.resolve("paper_pixelcnn_pp_cifar10", {})
    assert (gpu["model"], gpu["hidden"], gpu["layers"], gpu["dataset"]) == ("pixelcnn_pp", 160, 5, "cifar10")
    # the published optimisation: lr 1e-3 decayed by 0.999995 every step, Polyak averaging at 0.9995
    assert (gpu["lr"], gpu["lr_schedule"], gpu["lr_step_every"], gpu["lr_gamma"], gpu["ema"]) == (
        1e-3, "step", 1, 0.999995, 0.9995)


@pytest.mark.parametrize("kind", ["pixelcnn_pp", "pixelcnn"])
def test_samples_follow_the_model_distribution(kind):
    """20,000 naive samples of a 1x2 RGB image with 2 levels: every one of the 64 images appears with
    the frequency exp(log_prob) gives it, within 5 standard errors (PixelCNN++; a PixelCNN with
    head="dmol"): the sampler draws from the model, couplings and pixel-to-pixel dependence included."""
    torch.manual_seed(7)
    if kind == "pixelcnn_pp":
        model = randomise(tiny_pp(levels=2), 0.3)
    else:
        model = randomise(create_model("pixelcnn", channels=3, levels=2, hidden=3, layers=1, head="dmol",
                                       nr_logistic_mix=2), 0.3)
    n = 20_000
    images = sample(model, n, height=1, width=2, method="naive", generator=torch.Generator().manual_seed(8))
    codes = (images.flatten(1) * (2 ** torch.arange(6))).sum(1)
    counts = torch.bincount(codes, minlength=64).double()
    every = all_images(3, 1, 2)
    assert every.shape == (64, 3, 1, 2)
    probs = model.log_prob(every).double().exp().detach()
    order = (every.flatten(1) * (2 ** torch.arange(6))).sum(1)
    expected = torch.zeros(64, dtype=torch.float64)
    expected[order] = probs
    torch.testing.assert_close(expected.sum(), torch.ones((), dtype=torch.float64), rtol=0, atol=1e-5)
    se = (n * expected * (1 - expected)).sqrt()
    assert ((counts - n * expected).abs() <= 5 * se + 1).all(), (counts, n * expected)


@pytest.mark.parametrize("name, options", [("gated_pixelcnn", dict(head="dmol")), ("pixelcnn_pp", dict())])
def test_a_dmol_head_compresses_losslessly_at_its_likelihood(name, options):
    """fastpixel.compress codes the cached engine's conditionals: with a DMoL head (a paper model's, and
    PixelCNN++ through its own cached engine), the bytes added by a larger image match the model's
    -log2 p of the extra content (within 8 bytes) and decode exactly."""
    torch.manual_seed(9)
    model = create_model(name, channels=3, levels=256, hidden=4, layers=1, nr_logistic_mix=3, **options).eval()
    sizes, bits = [], []
    for h, w in ((4, 5), (12, 12)):
        x = torch.randint(0, 256, (2, 3, h, w))
        data = fastpixel.compress(model, x)
        assert torch.equal(fastpixel.decompress(model, data).long(), x)
        sizes.append(len(data))
        bits.append(float(-model.log_prob(x).detach().sum()) / math.log(2))
    assert abs((sizes[1] - sizes[0]) - (bits[1] - bits[0]) / 8) <= 8, (sizes, bits)
