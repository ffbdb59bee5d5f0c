"""The random numbers of sampling, and how one uniform becomes one sub-pixel value.

Every sampler draws its randomness up front, in one call:

    uniforms = torch.rand(num, C, H, W, dtype=float64, generator=generator)

so sub-pixel (c, r, j) of image b always uses ``uniforms[b, c, r, j]``, whatever the method
(naive or cached) and whatever is known (completion ignores the uniforms of known sub-pixels).
A value is then the inverse CDF of the categorical softmax(logits / temperature) at that uniform:

    p = softmax(logits / T),   F_k = p_0 + ... + p_k,   value = #{k : F_k <= u * F_{L-1}}

so value k comes out when F_{k-1} <= u F_{L-1} < F_k, with probability p_k; a level of probability
0 never does (u = 0 included; the count is capped at the last level of non-zero probability).
Computed in float64 (``u * F_{L-1}`` absorbs a total that rounds to 1 - 1e-16). Two samplers whose
logits agree to float64 rounding thus return the same value unless ``u`` falls within ~1e-15 of
a CDF step.

temperature = 0 is greedy decoding, the limit T -> 0: value = argmax of the logits (the lowest
level among equal maxima); the uniform is drawn and unused, so the random stream stays the same.
"""

from __future__ import annotations

import torch


def draw_uniforms(
    shape: tuple[int, int, int, int], *, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """(num, C, H, W) float64 uniforms in [0, 1), drawn on the generator's device, moved to ``device``."""
    where = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, dtype=torch.float64, generator=generator, device=where).to(device)


def inverse_cdf(logits: torch.Tensor, uniforms: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits (B, L) and uniforms (B,) -> int64 values (B,) in [0, L), one categorical draw each
    (temperature 0: the argmax of each row, the uniforms unused)."""
    if temperature == 0:
        return logits.argmax(dim=1)
    probs = torch.softmax(logits.to(torch.float64) / temperature, dim=1)
    cdf = probs.cumsum(dim=1)  # (B, L)
    passed = cdf <= (uniforms * cdf[:, -1]).unsqueeze(1)  # [B, L]
    last = logits.shape[1] - 1 - (probs.flip(1) > 0).to(torch.int8).argmax(dim=1)  # last level with p > 0
    return torch.minimum(passed.sum(dim=1), last)


def check_temperature(temperature: object) -> float:
    """Temperature must be a finite number >= 0 (1 is the model's own distribution, 0 greedy argmax)."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number >= 0, got {temperature!r}")
    t = float(temperature)
    if not (t >= 0 and t != float("inf")):
        raise ValueError(f"temperature must be finite and >= 0 (0: greedy, the most likely value), got {temperature!r}")
    return t
