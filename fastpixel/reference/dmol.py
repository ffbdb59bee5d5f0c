"""Reference discretized mixture of logistics (DMoL): the likelihood of PixelCNN++.

Salimans, Karpathy, Chen, Kingma, *PixelCNN++* (ICLR 2017), section 2.1. Each pixel has K
logistic components shared by its channels; sub-pixel values v in [0, L) sit on the grid

    y(v) = v * 2/(L-1) - 1   in [-1, 1],   bin [y - d, y + d],   d = 1/(L-1)   (half-width)

and the probability of v under component k of channel c is the logistic CDF mass of its bin,
the two edge bins open-ended (v = 0 takes (-inf, y + d], v = L-1 takes [y - d, +inf)):

    P_ck(v) = sigma((hi - m_ck) / s_ck) - sigma((lo - m_ck) / s_ck)

For RGB the means of G and B are linear in the channels before them (the paper's eq. 3):

    m_0k = mu_0k
    m_1k = mu_1k + alpha_k * y(x_R)
    m_2k = mu_2k + beta_k * y(x_R) + gamma_k * y(x_G)          (alpha, beta, gamma = tanh(raw))

and the pixel's likelihood mixes whole pixels, not sub-pixels:

    p(x) = sum_k pi_k  prod_c P_ck(x_c),      pi = softmax(mixture logits)

**Parameter layout** (``params``: (B, P, H, W), the layout of openai/pixel-cnn and
pclucas14/pixel-cnn-pp, so their checkpoints' output maps can be read unchanged):

* RGB, P = 10K: channels ``[0, K)`` are the mixture logits; then for each colour c = 0, 1, 2 a block
  of 3K channels starting at ``K + 3K*c``: K means, K raw log-scales, K raw coefficients. The
  coefficient block of colour 0 holds alpha (G on R), of colour 1 beta (B on R), of colour 2 gamma
  (B on G) -- the published convention (coefficients are tanh'd before use).
* Grey, P = 3K: K mixture logits, K means, K raw log-scales (no coupling).

**Numerics: exact bin masses, every rule named.**

1. *Log-scale floor* (published): ``s = max(raw, -7)``. A logistic narrower than e^-7 ~ 1e-3 (an
   eighth of a 256-level bin) concentrates its whole mass in one bin; letting it shrink further
   only lets the training loss chase a point mass. Its gradient below the floor is 0 (torch.clamp).
2. *Difference of sigmoids in log space, exactly* (ours; replaces the published ``log(max(cdf_delta,
   1e-12))`` and its fallback). With a = (hi - m)/s, b = (lo - m)/s:

       sigma(a) - sigma(b) = sigma(a) * sigma(-b) * (1 - exp(-(a - b)))
       log P = logsigmoid(a) + logsigmoid(-b) + log1mexp(a - b),   a - b = 2d/s

   Every factor is computed stably for any a, b (logsigmoid never overflows; a - b = 2d*exp(-s) > 0
   does not depend on the value, so no cancellation between two nearly equal CDFs can occur). The
   published form subtracts two CDFs (catastrophic cancellation when both are close to 0 or 1: in
   float32 a mass of 1e-5 has ~1% error) and, where ``cdf_delta <= 1e-5``, replaces the mass by
   ``pdf(centre) * 2d`` -- an approximation, so the published probabilities of the L values do not
   sum to 1. Here they do, up to rounding (tests/reference/test_dmol.py checks 1e-9 in float64).
   :func:`published_dmol_nll` keeps the published formulation for comparison.
3. *Edge bins* (published, as softplus forms): the bottom bin's mass is sigma(a) (lo = -inf, so
   logsigmoid(-b) = 0 and the width term is 0), the top bin's is sigma(-b) = 1 - sigma(b). Written
   with ``torch.where`` over finite placeholder values, so no inf reaches autograd.
4. *log1mexp(delta) = log(1 - e^-delta)*: ``log(-expm1(-delta))`` for delta < ln 2, else
   ``log1p(-exp(-delta))`` (Maechler 2012: each branch keeps full relative precision on its side).
   delta = 2d*exp(-s) underflows to 0 for huge log-scales (s > ~100 in float32), where log(delta) is
   still finite: below delta = 1e-6 it is computed from log(delta) = log(2d) - s as
   log(delta) - delta/2 (the next term, delta^2/24, is below 1e-13).
5. *Mixture in log space*: log_softmax of the logits plus the summed channel log-masses, then
   logsumexp over k -- no probability is ever formed, so tiny mixture weights stay finite.

Everything runs in promote(params.dtype, float32) (float64 stays float64).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

REDUCTIONS = ("none", "sum", "mean")

#: Rule 1: the log-scale floor of the published model.
LOG_SCALE_MIN = -7.0
#: Rule 4: below this delta, log1mexp(delta) is computed from log(delta) (delta may have underflowed).
SMALL_DELTA = 1e-6
#: dmol_log_probs evaluates at least this many values at a time (its temporaries are (B, chunk, K, H, W))...
LEVELS_PER_CHUNK = 32
#: ... and more, up to this many temporary elements (all values at once for a few pixels: the samplers').
CHUNK_ELEMENTS = 1 << 20
#: Parameters per mixture component: RGB (logit, 3 means, 3 log-scales, 3 coefficients), grey.
PARAMS_PER_MIXTURE = {3: 10, 1: 3}


def num_mixtures_of(params_channels: int, channels: int) -> int:
    """K for P parameter maps and C image channels (P = 10K for C = 3, 3K for C = 1)."""
    return params_channels // PARAMS_PER_MIXTURE[channels]


def split_params(params: torch.Tensor, channels: int, num_mixtures: int):
    """Views of ``params`` (B, P, H, W): (logits (B, K, H, W), means (B, C, K, H, W),
    raw log-scales (B, C, K, H, W), raw coefficients (B, 3, K, H, W) or None for grey)."""
    b, _, h, w = params.shape
    k = num_mixtures
    logits = params[:, :k]
    if channels == 1:
        return logits, params[:, k : 2 * k].unsqueeze(1), params[:, 2 * k : 3 * k].unsqueeze(1), None
    per_colour = params[:, k:].view(b, 3, 3, k, h, w)  # [colour, (mean | log-scale | coeff), k]
    return logits, per_colour[:, :, 0], per_colour[:, :, 1], per_colour[:, :, 2]


def grid_values(x: torch.Tensor, levels: int, dtype: torch.dtype) -> torch.Tensor:
    """y(v) = v * 2/(L-1) - 1: the values in [-1, 1] the network's distribution is over."""
    return x.to(dtype) * (2.0 / (levels - 1)) - 1.0


def log1mexp_from_log(log_delta: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(-delta)) for delta = exp(log_delta) > 0 (rule 4), finite for any finite log_delta."""
    delta = log_delta.exp()
    tiny = delta < SMALL_DELTA
    mid = delta < math.log(2.0)
    safe = torch.where(tiny, torch.ones_like(delta), delta)  # keep the unused branches finite for autograd
    return torch.where(
        tiny,
        log_delta - delta / 2,  # log(delta) + log((1 - e^-delta)/delta), series to first order
        torch.where(mid, torch.log(-torch.expm1(-safe)), torch.log1p(-torch.exp(-safe))),
    )


def log_bin_mass(v: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, levels: int) -> torch.Tensor:
    """log P(v) of one logistic (mean, log-scale already floored) for the value index v, any
    broadcastable shapes: the exact log CDF mass of v's bin (rules 2-4)."""
    dtype = mean.dtype
    half = 1.0 / (levels - 1)
    y = grid_values(v, levels, dtype)
    bottom, top = v <= 0, v >= levels - 1
    inv_scale = torch.exp(-log_scale)
    a = (y + half - mean) * inv_scale  # upper edge, standardised
    b = (y - half - mean) * inv_scale  # lower edge, standardised
    log_cdf_hi = torch.where(top, torch.zeros_like(a), F.logsigmoid(a))  # log P(X <= hi); hi = +inf at the top
    log_sf_lo = torch.where(bottom, torch.zeros_like(b), F.logsigmoid(-b))  # log P(X > lo); lo = -inf at the bottom
    width = log1mexp_from_log(math.log(2.0 * half) - log_scale)  # log(1 - e^-(a - b)), a - b = 2d/s
    log_width = torch.where(bottom | top, torch.zeros_like(width), width)
    return log_cdf_hi + log_sf_lo + log_width


def _component_terms(params: torch.Tensor, x: torch.Tensor, levels: int, num_mixtures: int):
    """(log pi (B, K, H, W), coupled means (B, C, K, H, W), floored log-scales (B, C, K, H, W)),
    the means of G and B coupled to the values of R and G *in x*."""
    dtype = torch.promote_types(params.dtype, torch.float32)
    channels = x.shape[1]
    logits, means, raw_log_scales, raw_coeffs = split_params(params.to(dtype), channels, num_mixtures)
    log_pi = torch.log_softmax(logits, dim=1)
    log_scales = torch.clamp(raw_log_scales, min=LOG_SCALE_MIN)  # rule 1
    if channels == 3:
        y = grid_values(x, levels, dtype).unsqueeze(2)  # (B, 3, 1, H, W)
        alpha, beta, gamma = torch.tanh(raw_coeffs).unbind(1)
        means = torch.stack(
            [
                means[:, 0],
                means[:, 1] + alpha * y[:, 0],
                means[:, 2] + beta * y[:, 0] + gamma * y[:, 1],
            ],
            dim=1,
        )
    return log_pi, means, log_scales


def _reduce(per_pixel: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "sum":
        return per_pixel.sum()
    if reduction == "mean":
        return per_pixel.mean()
    return per_pixel


def dmol_nll(
    params: torch.Tensor, x: torch.Tensor, levels: int = 256, num_mixtures: int | None = None, reduction: str = "none"
) -> torch.Tensor:
    """-log p(x) per pixel under the discretized mixture of logistics, in nats.

    params: (B, P, H, W) float (layout in the module docstring; P = 10K for RGB, 3K for grey);
    x: (B, C, H, W) integers in [0, levels), C = 3 or 1; levels in [2, 256] (any L >= 2 works).
    num_mixtures: K (default: inferred from P and C).
    reduction: "none" -> (B, H, W), the NLL of each *pixel* (the mixture couples the channels of a
      pixel, so a per-sub-pixel NLL is not a sum of independent terms; :func:`dmol_log_probs` gives
      the per-sub-pixel conditionals); "sum" -> a scalar over every pixel (= -log p of the batch);
      "mean" -> the mean over the B*H*W pixels (divide by C for nats per sub-pixel).
    Returns promote(params.dtype, float32).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    k = num_mixtures if num_mixtures is not None else num_mixtures_of(params.shape[1], x.shape[1])
    log_pi, means, log_scales = _component_terms(params, x, levels, k)
    log_p = log_bin_mass(x.unsqueeze(2), means, log_scales, levels)  # (B, C, K, H, W)
    per_pixel = -torch.logsumexp(log_pi + log_p.sum(dim=1), dim=1)  # rule 5
    return _reduce(per_pixel, reduction)


def dmol_log_probs(
    params: torch.Tensor, x: torch.Tensor, levels: int = 256, num_mixtures: int | None = None,
    channel: int | None = None,
) -> torch.Tensor:
    """(B, L, C, H, W): log p(x_c = v | the sub-pixels before c in x), for every value v of every sub-pixel.

    R is conditioned on nothing, G on the R in x, B on the R and G in x (through the coupled means
    *and* through the posterior over components given the earlier channels):

        log p(x_c = v | x_<c) = logsumexp_k [log pi_k + sum_{c'<c} log P_c'k(x_c') + log P_ck(v)]
                              - logsumexp_k [log pi_k + sum_{c'<c} log P_c'k(x_c')]

    so that gathering x's values and summing over C gives -dmol_nll (the chain rule), and each
    sub-pixel's L probabilities sum to 1 (exact bin masses). What an entropy coder and
    ``categorical_log_probs`` need. channel: only that sub-pixel's, (B, L, H, W) (what a sampler
    drawing sub-pixel c needs; x's channels >= c are not read). Memory: the result and
    (B, chunk, K, H, W) temporaries (32 values at a time, all L for a few pixels).
    """
    channels = x.shape[1]
    k = num_mixtures if num_mixtures is not None else num_mixtures_of(params.shape[1], channels)
    log_pi, means, log_scales = _component_terms(params, x, levels, k)
    prefix = log_pi  # log pi_k + sum over the earlier channels of log P(x_c'), (B, K, H, W)
    out = []
    for c in range(channels if channel is None else channel + 1):
        if channel is None or c == channel:
            out.append(_values_given(prefix, means[:, c], log_scales[:, c], levels))
        if c + 1 < channels:
            prefix = prefix + log_bin_mass(x[:, c].unsqueeze(1), means[:, c], log_scales[:, c], levels)
    return out[0] if channel is not None else torch.stack(out, dim=2)


def _values_given(prefix: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor, levels: int) -> torch.Tensor:
    """(B, L, H, W): logsumexp_k [prefix_k + log P_k(v)] - logsumexp_k prefix_k for every value v;
    prefix, mean, log_scale: (B, K, H, W)."""
    b, k, h, w = prefix.shape
    per_chunk = max(LEVELS_PER_CHUNK, CHUNK_ELEMENTS // (b * k * h * w or 1))
    chunks = []
    for start in range(0, levels, per_chunk):  # bounds the (B, chunk, K, H, W) temporaries
        values = torch.arange(start, min(levels, start + per_chunk), device=prefix.device).view(1, -1, 1, 1, 1)
        log_p_all = log_bin_mass(values, mean.unsqueeze(1), log_scale.unsqueeze(1), levels)  # (B, chunk, K, H, W)
        chunks.append(torch.logsumexp(prefix.unsqueeze(1) + log_p_all, dim=2))
    return torch.cat(chunks, dim=1) - torch.logsumexp(prefix, dim=1).unsqueeze(1)


def dmol_sample(
    params: torch.Tensor, uniforms: torch.Tensor, levels: int = 256, num_mixtures: int | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Exact samples on the grid: (B, C, H, W) int64 values in [0, levels), one per position.

    uniforms: (B, 1 + C, H, W) in [0, 1), drawn by the caller (so two samplers given the same draws
    return the same values, bit for bit): ``uniforms[:, 0]`` picks the component, ``uniforms[:, 1 + c]``
    the value of channel c. C (1 or 3) is ``uniforms.shape[1] - 1``.

    1. component k = the first k with cumsum(softmax(logits / T))_k > u_0 (inverse CDF of pi);
    2. for c in order, with m_ck coupled to the values *sampled* for the channels before c
       (their grid values y(v), as the likelihood conditions on them): z = m_ck + s_ck * T *
       logit(u_c), the u_c-quantile of the logistic, and v = the bin containing z,
       v = clamp(floor((z + 1) * (L-1)/2 + 1/2), 0, L-1). Every value of bin v has CDF in
       [F(lo), F(hi)), so v is the inverse CDF of the *discretised* logistic at u_c: exactly
       P(v) = P_ck(v) (the edge bins take the tails), not a continuous value clipped to [-1, 1].

    temperature T: the mixture logits are divided by T and every logistic's scale multiplied by T
    (log-scale + log T, after the floor). T = 1 samples the model; T < 1 sharpens both the choice
    of component and each component around its (coupled) mean; T = 0 is the limit: the most
    probable component (first on ties), and the bin containing its mean.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    dtype = torch.promote_types(params.dtype, torch.float32)
    channels = uniforms.shape[1] - 1
    k = num_mixtures if num_mixtures is not None else num_mixtures_of(params.shape[1], channels)
    logits, means, raw_log_scales, raw_coeffs = split_params(params.to(dtype), channels, k)
    u = uniforms.to(dtype)
    if temperature == 0:
        choice = logits.argmax(dim=1, keepdim=True)  # (B, 1, H, W)
    else:
        cdf = torch.softmax(logits / temperature, dim=1).cumsum(dim=1)
        choice = (cdf <= u[:, :1]).sum(dim=1, keepdim=True).clamp_(max=k - 1)

    def pick(t: torch.Tensor) -> torch.Tensor:  # (B, C', K, H, W) -> (B, C', H, W) at the chosen k
        return t.gather(2, choice.unsqueeze(1).expand(-1, t.shape[1], 1, -1, -1)).squeeze(2)

    mu = pick(means)
    scale = torch.exp(pick(torch.clamp(raw_log_scales, min=LOG_SCALE_MIN)))
    coeffs = torch.tanh(pick(raw_coeffs)) if raw_coeffs is not None else None
    values, grid = [], []
    for c in range(channels):
        m = mu[:, c]
        if c == 1:
            m = m + coeffs[:, 0] * grid[0]
        elif c == 2:
            m = m + coeffs[:, 1] * grid[0] + coeffs[:, 2] * grid[1]
        z = m if temperature == 0 else m + scale[:, c] * temperature * torch.logit(u[:, 1 + c])
        v = torch.floor((z + 1.0) * ((levels - 1) / 2.0) + 0.5).clamp_(0, levels - 1)  # nan-free: z is never nan
        values.append(v.long())
        grid.append(grid_values(v, levels, dtype))
    return torch.stack(values, dim=1)


def published_dmol_nll(
    params: torch.Tensor, x: torch.Tensor, levels: int = 256, num_mixtures: int | None = None
) -> torch.Tensor:
    """The published PixelCNN++ formulation (openai/pixel-cnn ``discretized_mix_logistic_loss``),
    per pixel (B, H, W), for comparison only: the bin mass as ``sigmoid(plus) - sigmoid(minus)``,
    its log taken as ``log(max(cdf_delta, 1e-12))`` where ``cdf_delta > 1e-5``, else approximated by
    the pdf at the bin centre times the bin width, ``log_pdf_mid - log((L-1)/2)`` -- so its
    probabilities do not sum to 1 exactly. Equals :func:`dmol_nll` (to rounding) wherever every
    component's mass of every sub-pixel exceeds 1e-5 (the fallback is not taken).
    """
    channels = x.shape[1]
    k = num_mixtures if num_mixtures is not None else num_mixtures_of(params.shape[1], channels)
    log_pi, means, log_scales = _component_terms(params, x, levels, k)
    y = grid_values(x, levels, means.dtype).unsqueeze(2)
    centered = y - means
    inv = torch.exp(-log_scales)
    plus_in = inv * (centered + 1.0 / (levels - 1))
    min_in = inv * (centered - 1.0 / (levels - 1))
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv * centered
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    inner = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)), log_pdf_mid - math.log((levels - 1) / 2))
    v = x.unsqueeze(2)
    log_p = torch.where(v == 0, plus_in - F.softplus(plus_in), torch.where(v == levels - 1, -F.softplus(min_in), inner))
    return -torch.logsumexp(log_pi + log_p.sum(dim=1), dim=1)
