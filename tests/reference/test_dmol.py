"""Reference DMoL likelihood: exact normalisation, the chain rule of the per-sub-pixel conditionals,
gradcheck, agreement with the published PixelCNN++ loss, the exact grid sampler, extreme inputs.

The published comparison reimplements pclucas14/pixel-cnn-pp ``discretized_mix_logistic_loss``
(NHWC, ``-sum(log_sum_exp(...))``) here from its published formulas, independently of
``fastpixel.reference.dmol.published_dmol_nll``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastpixel.reference import dmol as ref


def make_params(b, k, h, w, *, channels=3, dtype=torch.float64, seed=0, scale=1.0, log_scale_shift=0.0):
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(b, (10 if channels == 3 else 3) * k, h, w, generator=g, dtype=torch.float64) * scale
    _, _, log_scales, _ = ref.split_params(p, channels, k)
    log_scales += log_scale_shift  # a view: shifts the log-scale maps in place
    return p.to(dtype)


def make_x(b, c, h, w, levels, seed=1):
    x = torch.randint(0, levels, (b, c, h, w), generator=torch.Generator().manual_seed(seed))
    ends = torch.tensor([0, levels - 1])[: x.numel()]
    x.view(-1)[: len(ends)] = ends
    return x


# -- normalisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [2, 3, 7, 64, 256])
@pytest.mark.parametrize("channels", [3, 1])
def test_conditionals_normalise(levels, channels):
    """Every sub-pixel's `levels` probabilities sum to 1 given the earlier sub-pixels (R given nothing,
    G given R, B given R and G), for wide, narrow, far-off and extreme components."""
    k = 3
    for seed, (scale, shift) in enumerate([(1.0, 0.0), (3.0, -4.0), (2.0, 3.0), (1.0, -9.0)]):
        p = make_params(2, k, 3, 4, channels=channels, seed=seed, scale=scale, log_scale_shift=shift)
        x = make_x(2, channels, 3, 4, levels, seed=seed)
        total = ref.dmol_log_probs(p, x, levels, k).exp().sum(dim=1)  # (B, C, H, W)
        torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-9)


@pytest.mark.parametrize("levels", [2, 3, 5])
def test_joint_normalises_and_conditionals_are_its_marginals(levels):
    """Enumerate every RGB value of one pixel: exp(-nll) sums to 1, and dmol_log_probs gives exactly
    p(R), p(G | R), p(B | R, G) of that joint distribution (not just some normalised numbers)."""
    k = 3
    p = make_params(1, k, 1, 1, seed=5, scale=1.5)
    values = torch.tensor(list(itertools.product(range(levels), repeat=3)))  # (L^3, 3)
    xs = values.view(-1, 3, 1, 1)
    joint = torch.exp(-ref.dmol_nll(p.expand(len(xs), -1, -1, -1), xs, levels, k)).view(levels, levels, levels)
    assert abs(joint.sum().item() - 1) < 1e-12
    for r, g, b_ in [(0, levels - 1, 1 % levels), (levels - 1, 0, levels // 2)]:
        x = torch.tensor([r, g, b_]).view(1, 3, 1, 1)
        lp = ref.dmol_log_probs(p, x, levels, k)[0, :, :, 0, 0].exp()  # (L, 3)
        torch.testing.assert_close(lp[:, 0], joint.sum(dim=(1, 2)), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(lp[:, 1], joint[r].sum(dim=1) / joint[r].sum(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(lp[:, 2], joint[r, g] / joint[r, g].sum(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("channels", [3, 1])
def test_nll_is_minus_gathered_log_probs(channels):
    levels, k = 256, 4
    p = make_params(2, k, 3, 5, channels=channels, scale=2.0)
    x = make_x(2, channels, 3, 5, levels)
    lp = ref.dmol_log_probs(p, x, levels, k)
    gathered = lp.gather(1, x.unsqueeze(1)).squeeze(1).sum(dim=1)  # (B, H, W)
    torch.testing.assert_close(ref.dmol_nll(p, x, levels, k), -gathered, rtol=1e-12, atol=1e-12)


def test_reductions():
    p, x = make_params(2, 2, 3, 4), make_x(2, 3, 3, 4, 256)
    per_pixel = ref.dmol_nll(p, x, 256, 2, "none")
    assert per_pixel.shape == (2, 3, 4)
    torch.testing.assert_close(ref.dmol_nll(p, x, 256, 2, "sum"), per_pixel.sum())
    torch.testing.assert_close(ref.dmol_nll(p, x, 256, 2, "mean"), per_pixel.mean())
    assert ref.dmol_nll(p.float(), x, 256, 2).dtype == torch.float32
    assert ref.dmol_nll(p.bfloat16(), x, 256, 2).dtype == torch.float32


# -- gradients ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels,levels", [(3, 256), (1, 256), (3, 4), (3, 2)])
def test_gradcheck(channels, levels):
    k = 2
    p = make_params(1, k, 2, 3, channels=channels, scale=1.5).requires_grad_(True)
    x = make_x(1, channels, 2, 3, levels)
    torch.autograd.gradcheck(lambda p: ref.dmol_nll(p, x, levels, k), (p,))


# -- the published formulation -------------------------------------------------------------------


def pclucas14_loss(x_scaled: torch.Tensor, l: torch.Tensor, levels: int) -> torch.Tensor:
    """pixel-cnn-pp's loss as published (rewritten here from its formulas), RGB, NHWC inside;
    the bin half-width 1/(L-1) and log((L-1)/2) generalise its 1/255 and log(127.5)."""
    x = x_scaled.permute(0, 2, 3, 1)
    l = l.permute(0, 2, 3, 1)
    xs, nr_mix = list(x.shape), l.shape[-1] // 10
    logit_probs = l[..., :nr_mix]
    l = l[..., nr_mix:].contiguous().view(xs + [nr_mix * 3])
    means = l[..., :nr_mix]
    log_scales = torch.clamp(l[..., nr_mix : 2 * nr_mix], min=-7.0)
    coeffs = torch.tanh(l[..., 2 * nr_mix : 3 * nr_mix])
    x = x.unsqueeze(-1) + torch.zeros(xs + [nr_mix], dtype=l.dtype)
    m2 = means[..., 1, :] + coeffs[..., 0, :] * x[..., 0, :]
    m3 = means[..., 2, :] + coeffs[..., 1, :] * x[..., 0, :] + coeffs[..., 2, :] * x[..., 1, :]
    means = torch.stack([means[..., 0, :], m2, m3], dim=3)
    centered = x - means
    inv = torch.exp(-log_scales)
    plus_in = inv * (centered + 1.0 / (levels - 1))
    min_in = inv * (centered - 1.0 / (levels - 1))
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    log_cdf_plus = plus_in - F.softplus(plus_in)
    log_one_minus_cdf_min = -F.softplus(min_in)
    mid_in = inv * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    cond = (cdf_delta > 1e-5).to(l.dtype)
    inner_inner = cond * torch.log(torch.clamp(cdf_delta, min=1e-12)) + (1 - cond) * (log_pdf_mid - np.log((levels - 1) / 2))
    top = (x > 0.999).to(l.dtype)
    inner = top * log_one_minus_cdf_min + (1 - top) * inner_inner
    bottom = (x < -0.999).to(l.dtype)
    log_probs = bottom * log_cdf_plus + (1 - bottom) * inner
    log_probs = log_probs.sum(dim=3) + torch.log_softmax(logit_probs, dim=-1)
    return -torch.logsumexp(log_probs, dim=-1).sum()


def fallback_taken(p, x, levels, k) -> bool:
    """Whether any interior sub-pixel of any component has cdf_delta <= 1e-5 (the published fallback)."""
    _, means, log_scales = ref._component_terms(p, x, levels, k)
    v = x.unsqueeze(2)
    mass = ref.log_bin_mass(v, means, log_scales, levels).exp()
    interior = (v > 0) & (v < levels - 1)
    return bool((interior & (mass <= 1e-5)).any())


@pytest.mark.parametrize("levels", [256, 16])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_loss_as_published_where_fallback_not_taken(levels, seed):
    """Random inputs whose every bin mass exceeds 1e-5: the exact loss equals pclucas14's to 1e-5
    (relative, float64, where the published cdf difference is itself accurate to ~1e-11)."""
    k = 5
    p = make_params(4, k, 5, 6, seed=seed, scale=0.5, log_scale_shift=0.0)
    x = make_x(4, 3, 5, 6, levels, seed=seed)
    assert not fallback_taken(p, x, levels, k)
    published = pclucas14_loss(ref.grid_values(x, levels, torch.float64), p, levels)
    exact = ref.dmol_nll(p, x, levels, k, "sum")
    torch.testing.assert_close(exact, published, rtol=1e-5, atol=0)
    torch.testing.assert_close(ref.published_dmol_nll(p, x, levels, k).sum(), published, rtol=1e-12, atol=0)


def test_published_formulation_is_kept_verbatim_where_fallback_taken():
    """Narrow components far from the data: the published loss takes its pdf-at-centre fallback and
    differs from the exact one; published_dmol_nll reproduces it (so users can compare)."""
    levels, k = 256, 3
    p = make_params(2, k, 3, 3, seed=4, scale=2.0, log_scale_shift=-5.0)
    x = make_x(2, 3, 3, 3, levels, seed=4)
    assert fallback_taken(p, x, levels, k)
    published = pclucas14_loss(ref.grid_values(x, levels, torch.float64), p, levels)
    torch.testing.assert_close(ref.published_dmol_nll(p, x, levels, k).sum(), published, rtol=1e-12, atol=0)
    assert (ref.dmol_nll(p, x, levels, k, "sum") - published).abs() > 1e-6


# -- extreme inputs ----------------------------------------------------------------------------------


def extreme_params(channels, k, dtype):
    """Each pixel one regime: log-scales far below -7 and far above, huge means, tiny mixture
    weights (logits -1e4 beside 0), huge coefficients."""
    p = make_params(6, k, 1, 4, channels=channels, dtype=torch.float64, seed=3)
    logits, means, log_scales, coeffs = ref.split_params(p, channels, k)
    log_scales[0] = -50.0
    log_scales[1] = 200.0 if dtype == torch.float64 else 120.0  # exp(-s) underflows either way
    means[2] = 1e6
    means[3] = -1e6
    logits[4, 1:] = -1e4
    log_scales[4] = -7.0  # exactly at the floor
    if coeffs is not None:
        coeffs[5] = 1e3
        means[5] = 30.0
    return p.to(dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("levels", [256, 2])
def test_extreme_inputs_finite(levels, channels, dtype):
    k = 3
    p = extreme_params(channels, k, dtype).requires_grad_(True)
    x = make_x(6, channels, 1, 4, levels)
    x[:, :, :, 0], x[:, :, :, 1] = 0, levels - 1  # both edges in every regime
    loss = ref.dmol_nll(p, x, levels, k)
    (g,) = torch.autograd.grad(loss.sum(), p)
    assert torch.isfinite(loss).all() and torch.isfinite(g).all()
    lp = ref.dmol_log_probs(p.detach(), x, levels, k)
    assert torch.isfinite(lp).all()


def test_huge_log_scale_has_the_wide_logistic_mass():
    """s = 200: delta = 2d e^-200 underflows in float32 but log(delta) does not; each bin of a
    logistic this wide has mass delta/4 (its pdf at the centre, 1/(4 s), times the bin width)."""
    levels, s = 256, 200.0
    for dtype in (torch.float32, torch.float64):
        lp = ref.log_bin_mass(torch.tensor([100]), torch.tensor([0.0], dtype=dtype), torch.tensor([s], dtype=dtype), levels)
        expected = math.log(2.0 / (levels - 1)) - s - math.log(4.0)
        assert abs(lp.item() - expected) < 1e-5 * abs(expected)


# -- sampler -----------------------------------------------------------------------------------------


def test_sampler_matches_the_joint_distribution():
    """20k draws of one pixel (3 components, 4 levels): the frequencies of all 64 RGB values match
    exp(-dmol_nll) within 5 standard errors -- component choice, coupling to the *sampled* R and G
    on the grid, and the discretised inverse CDF together."""
    levels, k, n = 4, 3, 20000
    p = make_params(1, k, 1, 1, seed=7, scale=1.0)
    u = torch.rand(n, 4, 1, 1, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    samples = ref.dmol_sample(p.expand(n, -1, -1, -1), u, levels, k).view(n, 3)
    index = (samples[:, 0] * levels + samples[:, 1]) * levels + samples[:, 2]
    freq = torch.bincount(index, minlength=levels**3).double() / n
    values = torch.tensor(list(itertools.product(range(levels), repeat=3))).view(-1, 3, 1, 1)
    prob = torch.exp(-ref.dmol_nll(p.expand(len(values), -1, -1, -1), values, levels, k)).view(-1)
    tol = 5 * torch.sqrt(prob * (1 - prob) / n) + 1e-4
    assert ((freq - prob).abs() <= tol).all(), (freq - prob).abs().max()


@pytest.mark.parametrize("channels", [3, 1])
def test_sampler_is_the_inverse_cdf_on_the_grid(channels):
    """K = 1: each sampled value v is the smallest with P(value <= v | earlier sampled values) > u
    (computed from dmol_log_probs of the sample itself, whose conditioning is on the sample)."""
    levels, k = 256, 1
    p = make_params(3, k, 4, 5, channels=channels, seed=2, scale=1.0, log_scale_shift=-2.0)
    u = torch.rand(3, 1 + channels, 4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    v = ref.dmol_sample(p, u, levels, k)
    cdf = ref.dmol_log_probs(p, v, levels, k).exp().cumsum(dim=1)  # (B, L, C, H, W)
    expected = (cdf <= u[:, 1:].unsqueeze(1)).sum(dim=1).clamp(max=levels - 1)
    mismatch = (expected != v).double().mean().item()
    assert mismatch == 0.0


def test_sampler_temperature():
    levels, k = 256, 4
    p = make_params(2, k, 3, 3, seed=1, scale=2.0)
    u = torch.rand(2, 4, 3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(ref.dmol_sample(p, u, levels, k), ref.dmol_sample(p, u, levels, k, temperature=1.0))
    assert ref.dmol_sample(p, u, levels, k).dtype == torch.int64
    # T = 0: the most probable component, the bin containing its (coupled) mean, whatever the draws
    greedy = ref.dmol_sample(p, u, levels, k, temperature=0.0)
    assert torch.equal(greedy, ref.dmol_sample(p, torch.rand_like(u), levels, k, temperature=0.0))
    logits, means, _, coeffs = ref.split_params(p, 3, k)
    best = logits.argmax(dim=1, keepdim=True)
    mu = means.gather(2, best.unsqueeze(1).expand(-1, 3, 1, -1, -1)).squeeze(2)
    t = torch.tanh(coeffs).gather(2, best.unsqueeze(1).expand(-1, 3, 1, -1, -1)).squeeze(2)
    y = ref.grid_values(greedy, levels, torch.float64)
    m = torch.stack([mu[:, 0], mu[:, 1] + t[:, 0] * y[:, 0], mu[:, 2] + t[:, 1] * y[:, 0] + t[:, 2] * y[:, 1]], 1)
    assert torch.equal(greedy, ((m + 1) * (levels - 1) / 2 + 0.5).floor().clamp(0, levels - 1).long())
    # small T concentrates the samples: fewer distinct values than at T = 1 over many draws
    many = torch.rand(2000, 4, 1, 1, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    one = p[:1, :, :1, :1].expand(2000, -1, -1, -1)
    spread = lambda t: ref.dmol_sample(one, many, levels, k, temperature=t)[:, 0].double().std()  # noqa: E731
    assert spread(0.1) < spread(1.0)
