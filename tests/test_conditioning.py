"""Conditional models (num_classes= / cond_features=), every model kind: the label changes what it
should, log p(x | y) is normalised for every y, cached sampling with labels equals naive sampling,
one clear error for each misuse, and the config rebuilds the model."""

from __future__ import annotations

import itertools

import pytest
import torch

import fastpixel
from fastpixel.sampling import cached_logits, complete, sample
from tests.dependency_calculus import leaky_relus

KINDS = ("pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn", "multiscale")


def build(name, channels=1, levels=2, num_classes=3, cond_features=None, seed=0, hidden=3, layers=2, **kw):
    torch.manual_seed(seed)
    extra = dict(kind="row_lstm") if name == "multiscale" else {}
    model = fastpixel.create_model(name, channels=channels, levels=levels, hidden=hidden, layers=layers,
                                   num_classes=num_classes, cond_features=cond_features, backend="reference",
                                   **extra, **kw)
    return model.double()


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", KINDS)
def test_the_label_changes_the_logits_and_nothing_else_does(name):
    model = build(name, channels=3, levels=4)
    x = torch.randint(0, 4, (3, 3, 4, 5), generator=gen(0))
    with leaky_relus():  # structure, not activity: a ReLU that is off everywhere at a pixel would hide it
        logits = {y: model(x, labels=torch.full((3,), y)) for y in range(3)}
        for a, b in itertools.combinations(range(3), 2):
            differ = (logits[a] - logits[b]).abs().amax(dim=(1, 2))  # (B, H, W): every position is conditioned
            assert (differ > 1e-6).all(), (a, b)
    logits = {y: model(x, labels=torch.full((3,), y)) for y in range(3)}
    assert torch.equal(model(x, labels=[1, 1, 1]), logits[1])  # a list, a tensor, one int: the same labels
    assert torch.equal(model(x, labels=1), logits[1])
    mixed = model(x, labels=torch.tensor([0, 2, 1]))  # each image its own label, independently
    for i, y in enumerate([0, 2, 1]):
        torch.testing.assert_close(mixed[i], logits[y][i], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", KINDS)
def test_log_prob_normalises_over_every_image_for_every_label(name):
    """2 levels, 3x3: the 512 images' probabilities sum to 1 under each label (and with a vector too)."""
    model = build(name, num_classes=3, cond_features=2, hidden=4, layers=1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)  # peaked distributions: a normalisation error would not hide in a flat one
    images = torch.tensor(list(itertools.product([0, 1], repeat=9))).view(512, 1, 3, 3)
    cond = torch.tensor([0.7, -1.3], dtype=torch.float64)
    per_label = []
    for y in range(3):
        log_p = model.log_prob(images, labels=y, cond=cond)
        torch.testing.assert_close(torch.logsumexp(log_p, 0), torch.zeros((), dtype=torch.float64), rtol=0, atol=1e-12)
        per_label.append(log_p)
    for a, b in itertools.combinations(per_label, 2):  # three different distributions, each normalised
        assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("name", KINDS)
@pytest.mark.parametrize("channels,levels", [(1, 2), (3, 8)])
def test_cached_sampling_with_labels_equals_naive(name, channels, levels):
    model = build(name, channels, levels, num_classes=4, cond_features=2, hidden=4)
    with torch.no_grad():  # larger weights: distributions that depend strongly on the context and the label
        for pname, p in model.named_parameters():
            p.mul_(2.0 if "weight" in pname else 1.0)
    labels = torch.tensor([0, 3, 1])
    cond = torch.randn(3, 2, generator=gen(3), dtype=torch.float64)
    kw = dict(height=4, width=5, labels=labels, cond=cond)
    naive = sample(model, 3, generator=gen(5), method="naive", **kw)
    cached = sample(model, 3, generator=gen(5), method="cached", **kw)
    assert torch.equal(naive, cached)
    assert cached.unique().numel() > 1  # not a degenerate constant image
    assert not torch.equal(cached, sample(model, 3, generator=gen(5), **(kw | {"labels": torch.tensor([2, 0, 3])})))
    if name != "multiscale":
        torch.testing.assert_close(cached_logits(model, cached, labels=labels, cond=cond),
                                   model(cached, labels=labels, cond=cond), rtol=1e-10, atol=1e-12)
        known = torch.zeros_like(cached, dtype=torch.bool)
        known[..., :2, :] = True
        args = (model, cached, known)
        assert torch.equal(complete(*args, generator=gen(1), labels=labels, cond=cond),
                           complete(*args, generator=gen(1), labels=labels, cond=cond, method="naive"))


def test_a_conditional_model_learns_its_classes_apart():
    """Two classes of 2x2 binary images (all zeros / all ones): a few steps of training make each
    label's own images the likely ones, which an unconditional model cannot do."""
    model = build("gated_pixelcnn", num_classes=2, hidden=4, layers=1)
    x = torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2)]).long().repeat(4, 1, 1, 1)
    y = torch.tensor([0, 1]).repeat(4)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        (-model.log_prob(x, labels=y).mean()).backward()
        opt.step()
    with torch.no_grad():
        right = model.log_prob(x[:2], labels=torch.tensor([0, 1]))
        wrong = model.log_prob(x[:2], labels=torch.tensor([1, 0]))
    assert (right > -0.1).all() and (wrong < -2.0).all()


# -- errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", KINDS)
def test_errors_name_what_was_expected(name):
    model = build(name, num_classes=3)
    x = torch.zeros(2, 1, 3, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"class-conditional \(num_classes=3\): pass labels="):
        model(x)
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\).*\[0, 3\]"):
        model(x, labels=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)"):
        model.log_prob(x, labels=[-1, 0])
    with pytest.raises(ValueError, match=r"shape \(2,\), got \(3,\)"):
        model(x, labels=torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="integer tensor of class ids"):
        model(x, labels=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="takes no conditioning vector"):
        model(x, labels=[0, 1], cond=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="labels="):
        sample(model, 2, height=2, width=2)
    unconditional = build(name, num_classes=None)
    with pytest.raises(ValueError, match="not class-conditional"):
        unconditional(x, labels=[0, 1])
    with pytest.raises(ValueError, match="not class-conditional"):
        sample(unconditional, 1, height=2, width=2, labels=0)


def test_cond_vector_errors():
    model = build("pixelcnn", num_classes=None, cond_features=4)
    x = torch.zeros(2, 1, 3, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"cond_features=4\): pass cond="):
        model(x)
    with pytest.raises(ValueError, match=r"\(2, 4\) float tensor.*got shape \(2, 3\)"):
        model(x, cond=torch.zeros(2, 3))
    with pytest.raises(TypeError, match="float tensor"):
        model(x, cond=torch.zeros(2, 4, dtype=torch.long))
    assert model(x, cond=torch.zeros(4)).shape == (2, 2, 1, 3, 3)  # one vector for every image


@pytest.mark.parametrize("options", [dict(num_classes=1), dict(num_classes=2.0), dict(cond_features=0),
                                     dict(num_classes=True)])
def test_bad_conditioning_options(options):
    with pytest.raises(ValueError, match="num_classes|cond_features"):
        fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1, **options)


# -- config -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", KINDS)
def test_config_rebuilds_the_conditional_model(name, tmp_path):
    model = build(name, num_classes=5, cond_features=3)
    assert model.config["num_classes"] == 5 and model.config["cond_features"] == 3
    again = fastpixel.create_model(**model.config, backend="reference").double()
    again.load_state_dict(model.state_dict())
    x = torch.randint(0, 2, (2, 1, 3, 4))
    cond = torch.randn(2, 3, dtype=torch.float64)
    torch.testing.assert_close(again(x, labels=[4, 0], cond=cond), model(x, labels=[4, 0], cond=cond))
    loaded = fastpixel.from_pretrained(model.save_pretrained(tmp_path / "m"), backend="reference")
    assert loaded.config == model.config
    torch.testing.assert_close(loaded(x, labels=[4, 0], cond=cond.float()).double(),
                               model(x, labels=[4, 0], cond=cond), rtol=1e-5, atol=1e-5)
    assert "num_classes" not in build(name, num_classes=None).config  # unconditional configs are unchanged
