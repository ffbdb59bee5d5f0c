"""The public DMoL ops (fastpixel.ops.dmol_nll / dmol_log_probs / dmol_sample): one test per claimed
error message, K inferred from P, the backends agreeing through the public op."""

from __future__ import annotations

import pytest
import torch

from fastpixel import ops
from fastpixel.reference import dmol as ref
from tests.reference.test_dmol import make_params, make_x


def rgb(k=2, b=2, h=3, w=4):
    return make_params(b, k, h, w, dtype=torch.float32), make_x(b, 3, h, w, 256)


@pytest.mark.parametrize(
    "mutate, error, match",
    [
        (lambda p, x: (p.long(), x, {}), TypeError, "params must be a floating-point tensor"),
        (lambda p, x: (p[0], x, {}), ValueError, "params must have 4 dimensions"),
        (lambda p, x: (p, x.float(), {}), TypeError, "x must be an integer tensor"),
        (lambda p, x: (p, x[:, :2], {}), ValueError, r"C = 1 \(grey\) or 3 \(RGB\), got 2"),
        (lambda p, x: (p, x[:, :, :2], {}), ValueError, r"must have \(B, H, W\) = \(2, 3, 4\)"),
        (lambda p, x: (p, x[0], {}), ValueError, r"x must be a \(B, C, H, W\) tensor"),
        (lambda p, x: (p[:, :19], x, {}), ValueError, "a multiple of 10"),
        (lambda p, x: (p, x, {"num_mixtures": 3}), ValueError, "= 30 channels for C = 3 and num_mixtures = 3, got P = 20"),
        (lambda p, x: (p, x, {"num_mixtures": 0}), ValueError, "num_mixtures must be a positive int"),
        (lambda p, x: (p, x, {"levels": 1}), ValueError, r"levels must be an int in \[2, 65536\]"),
        (lambda p, x: (p, x, {"levels": 256.0}), ValueError, r"levels must be an int in \[2, 65536\]"),
        (lambda p, x: (p, x, {"levels": 200}), ValueError, r"x must lie in \[0, 200\), got values in \[0, 255\]"),
        (lambda p, x: (p, x - 1, {}), ValueError, r"x must lie in \[0, 256\), got values in \[-1, 254\]"),
        (lambda p, x: (p, x, {"reduction": "avg"}), ValueError, "reduction must be one of"),
        (lambda p, x: (p, x, {"backend": "cuda"}), ValueError, "backend must be one of"),
    ],
)
def test_dmol_nll_errors(mutate, error, match):
    p, x = rgb()
    p, x, kwargs = mutate(p, x)
    with pytest.raises(error, match=match):
        ops.dmol_nll(p, x, **kwargs)


def test_grey_layout_message():
    p = make_params(1, 2, 2, 2, channels=1, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"3K \(K logits, K means, K log-scales\)"):
        ops.dmol_nll(p[:, :5], make_x(1, 1, 2, 2, 256))


def test_validate_false_skips_the_range_check():
    p, x = rgb()
    ops.dmol_nll(p, x.clamp(max=199), levels=200)  # in range: fine
    ops.dmol_nll(p, x, levels=200, validate=False)  # out of range, not checked (no device sync)


def test_num_mixtures_inferred():
    p, x = rgb(k=3)
    torch.testing.assert_close(ops.dmol_nll(p, x, backend="reference"), ref.dmol_nll(p, x, 256, 3))
    pg, xg = make_params(2, 4, 3, 3, channels=1, dtype=torch.float32), make_x(2, 1, 3, 3, 256)
    torch.testing.assert_close(ops.dmol_nll(pg, xg, backend="reference"), ref.dmol_nll(pg, xg, 256, 4))


@pytest.mark.parametrize("backend", ["reference", "torch", "triton"])
def test_backends_agree_through_the_public_op(backend):
    if backend == "triton":
        pytest.importorskip("triton")
    p, x = rgb()
    p = p.double().requires_grad_(True)
    loss = ops.dmol_nll(p, x, reduction="sum", backend=backend)
    loss.backward()
    pr = p.detach().clone().requires_grad_(True)
    ref.dmol_nll(pr, x, 256, 2, "sum").backward()
    torch.testing.assert_close(loss.detach(), ref.dmol_nll(p.detach(), x, 256, 2, "sum"), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(p.grad, pr.grad, rtol=1e-10, atol=1e-12)


def test_log_probs_and_sample_ops():
    p, x = rgb()
    lp = ops.dmol_log_probs(p, x)
    assert lp.shape == (2, 256, 3, 3, 4)
    gathered = lp.gather(1, x.long().unsqueeze(1)).squeeze(1).sum(1)
    torch.testing.assert_close(-gathered, ops.dmol_nll(p, x, backend="reference"))
    u = torch.rand(2, 4, 3, 4, generator=torch.Generator().manual_seed(0))
    s = ops.dmol_sample(p, u)
    assert s.shape == (2, 3, 3, 4) and s.dtype == torch.int64 and int(s.min()) >= 0 and int(s.max()) <= 255
    assert torch.equal(s, ops.dmol_sample(p, u.clone()))  # the same draws give the same values
    with pytest.raises(ValueError, match=r"uniforms must have C \+ 1 channels"):
        ops.dmol_sample(p, u[:, :3])
    with pytest.raises(TypeError, match="uniforms must be a floating-point tensor"):
        ops.dmol_sample(p, (u * 10).long())
    with pytest.raises(ValueError, match="temperature must be a number >= 0"):
        ops.dmol_sample(p, u, temperature=-1.0)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 4\)"):
        ops.dmol_log_probs(p, x, levels=4)


@pytest.mark.parametrize("channels", [3, 1])
def test_log_probs_of_one_channel_read_only_the_channels_before_it(channels, monkeypatch):
    """channel=c is the full result's channel c, from the channels before c alone (what a sampler has
    when it draws sub-pixel c), whatever the chunking (here: the full result 32 values at a time, one
    channel all values at once)."""
    for h, w in ((3, 4), (1, 1)):
        p, x = make_params(2, 3, h, w, channels=channels), make_x(2, channels, h, w, 256)
        with monkeypatch.context() as patch:
            patch.setattr(ref, "CHUNK_ELEMENTS", 0)
            full = ops.dmol_log_probs(p, x)
        for c in range(channels):
            later = x.clone()
            later[:, c:] = torch.randint(0, 256, later[:, c:].shape, generator=torch.Generator().manual_seed(c))
            torch.testing.assert_close(ops.dmol_log_probs(p, later, channel=c), full[:, :, c], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"channel must be an int in \[0, 3\)"):
        ops.dmol_log_probs(make_params(1, 2, 1, 1), make_x(1, 3, 1, 1, 256), channel=3)
