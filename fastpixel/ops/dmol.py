"""Public discretized-mixture-of-logistics ops (PixelCNN++'s likelihood): NLL, log-probabilities, sampler.

Layout, formulas and numerics: :mod:`fastpixel.reference.dmol` and docs/dmol.md.
"""

from __future__ import annotations

import torch

from fastpixel.backend import resolve_backend
from fastpixel.dispatch import implementation
from fastpixel.ops._checks import check_float_tensor
from fastpixel.reference import dmol as reference
from fastpixel.reference.dmol import PARAMS_PER_MIXTURE, REDUCTIONS

INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
#: Levels the op accepts; normalisation is tested for every L in [2, 256] (and works beyond).
MIN_LEVELS, MAX_LEVELS = 2, 65536


def _check_levels(op: str, levels: object) -> None:
    if isinstance(levels, bool) or not isinstance(levels, int) or not MIN_LEVELS <= levels <= MAX_LEVELS:
        raise ValueError(f"{op}: levels must be an int in [{MIN_LEVELS}, {MAX_LEVELS}], got {levels!r}")


def _check_mixtures(op: str, params: torch.Tensor, channels: int, num_mixtures: int | None) -> int:
    """K from P and C, checked against ``num_mixtures`` when given."""
    per = PARAMS_PER_MIXTURE[channels]
    p = params.shape[1]
    layout = "10K (K logits, then per colour K means, K log-scales, K coefficients)" if channels == 3 else (
        "3K (K logits, K means, K log-scales)"
    )
    if num_mixtures is not None:
        if isinstance(num_mixtures, bool) or not isinstance(num_mixtures, int) or num_mixtures < 1:
            raise ValueError(f"{op}: num_mixtures must be a positive int, got {num_mixtures!r}")
        if p != per * num_mixtures:
            raise ValueError(
                f"{op}: params must have P = {layout} = {per * num_mixtures} channels for C = {channels} and "
                f"num_mixtures = {num_mixtures}, got P = {p}"
            )
        return num_mixtures
    if p == 0 or p % per:
        raise ValueError(
            f"{op}: params must have P = {layout} channels for C = {channels} (a multiple of {per}), got P = {p}"
        )
    return p // per


def _check_images(op: str, name: str, x: object, params: torch.Tensor, *, extra: int = 0) -> int:
    """x: (B, C + extra, H, W) on params' device, C in {1, 3}; returns C."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{op}: {name} must be a (B, C{' + 1' if extra else ''}, H, W) tensor, got {got}")
    channels = x.shape[1] - extra
    if channels not in (1, 3):
        raise ValueError(f"{op}: {name} must have C{' + 1' if extra else ''} channels with C = 1 (grey) or 3 (RGB), "
                         f"got {x.shape[1]}")
    b, _, h, w = params.shape
    if (x.shape[0], x.shape[2], x.shape[3]) != (b, h, w):
        raise ValueError(f"{op}: {name} must have (B, H, W) = {(b, h, w)} to match params {tuple(params.shape)}, "
                         f"got shape {tuple(x.shape)}")
    if x.device != params.device:
        raise ValueError(f"{op}: {name} on {x.device} but params on {params.device}")
    return channels


def _check_values(op: str, x: torch.Tensor, levels: int, validate: bool) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype not in INTEGER_DTYPES:
        raise TypeError(f"{op}: x must be an integer tensor {INTEGER_DTYPES}, got {x.dtype}")
    if validate and not torch.compiler.is_compiling() and x.numel():  # a sync has no place in a graph
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi >= levels:
            raise ValueError(f"{op}: x must lie in [0, {levels}), got values in [{lo}, {hi}]")


def _check(op: str, params: object, x: object, levels: object, num_mixtures: object, validate: bool) -> int:
    check_float_tensor(op, "params", params, ndim=4)
    _check_levels(op, levels)
    channels = _check_images(op, "x", x, params)
    _check_values(op, x, levels, validate)
    return _check_mixtures(op, params, channels, num_mixtures)


def dmol_nll(
    params: torch.Tensor,
    x: torch.Tensor,
    *,
    levels: int = 256,
    num_mixtures: int | None = None,
    reduction: str = "none",
    validate: bool = True,
    backend: str | None = None,
) -> torch.Tensor:
    """-log p(x) under PixelCNN++'s discretized mixture of logistics, in nats.

    params: (B, P, H, W) float; P = 10K for RGB: channels [0, K) mixture logits, then for each colour
      c a block of 3K at K + 3K*c: K means, K raw log-scales, K raw coefficients (tanh'd; colour 0's
      block holds alpha = G on R, colour 1's beta = B on R, colour 2's gamma = B on G). Grey: P = 3K
      (K logits, K means, K raw log-scales). The layout of openai/pixel-cnn and pclucas14/pixel-cnn-pp.
    x: (B, C, H, W) integers in [0, levels), C = 3 or 1; value v is y = v*2/(levels-1) - 1 in [-1, 1],
      its bin [y - d, y + d] with d = 1/(levels-1), the edge bins open-ended.
    levels: L in [2, 65536]; num_mixtures: K (default: P/10 for RGB, P/3 for grey).
    reduction: "none" -> (B, H, W), the NLL of each pixel (its channels are coupled through the
      mixture; per-sub-pixel conditionals come from :func:`dmol_log_probs`); "sum" -> scalar;
      "mean" -> the mean over the B*H*W pixels.
    validate: check x's range (one device sync, eager only).
    backend: "reference", "torch", "triton" or "auto" (fastpixel.backend).
    Returns promote(params.dtype, float32); bin masses are exact (probabilities of the L values of a
    sub-pixel sum to 1), see fastpixel.reference.dmol for every stability rule.
    """
    op = "dmol_nll"
    k = _check(op, params, x, levels, num_mixtures, validate)
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    chosen = resolve_backend(backend, params, x, op="dmol")
    return implementation("dmol", chosen)(params, x, levels, k, reduction)


def dmol_log_probs(
    params: torch.Tensor, x: torch.Tensor, *, levels: int = 256, num_mixtures: int | None = None,
    channel: int | None = None, validate: bool = True,
) -> torch.Tensor:
    """(B, levels, C, H, W): for every sub-pixel, the log-probability of each of its values given the
    sub-pixels before it *in x* (R given nothing, G given x's R, B given x's R and G). Gathering x's
    values and summing over C gives -dmol_nll(x); each sub-pixel's row sums to 1 in probability.
    channel: only that channel's, (B, levels, H, W) (x's channels >= channel are not read).
    Pure PyTorch (the reference formulas) on any device; temporaries of (B, 32, K, H, W), 32 values at a
    time (all of them for a few pixels)."""
    op = "dmol_log_probs"
    k = _check(op, params, x, levels, num_mixtures, validate)
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, int)
                                or not 0 <= channel < x.shape[1]):
        raise ValueError(f"{op}: channel must be an int in [0, {x.shape[1]}) or None, got {channel!r}")
    return reference.dmol_log_probs(params, x, levels, k, channel)


def dmol_sample(
    params: torch.Tensor,
    uniforms: torch.Tensor,
    *,
    levels: int = 256,
    num_mixtures: int | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Exact samples on the grid, (B, C, H, W) int64, from pre-drawn ``uniforms`` (B, 1 + C, H, W) in [0, 1).

    uniforms[:, 0] picks the component (inverse CDF of the mixture weights), uniforms[:, 1 + c] the
    value of channel c (inverse CDF of the component's discretised logistic, its mean coupled to the
    values sampled for the earlier channels). The same draws give the same values, bit for bit.
    temperature T >= 0: mixture logits / T and every logistic's scale * T; T = 1 samples the model,
    T = 0 takes the most probable component and the bin containing its mean.
    Pure PyTorch (the reference) on any device; no gradient.
    """
    op = "dmol_sample"
    check_float_tensor(op, "params", params, ndim=4)
    _check_levels(op, levels)
    channels = _check_images(op, "uniforms", uniforms, params, extra=1)
    if not uniforms.is_floating_point():
        raise TypeError(f"{op}: uniforms must be a floating-point tensor of draws in [0, 1), got {uniforms.dtype}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"{op}: temperature must be a number >= 0, got {temperature!r}")
    k = _check_mixtures(op, params, channels, num_mixtures)
    with torch.no_grad():
        return reference.dmol_sample(params, uniforms, levels, k, float(temperature))
