"""The naive sampler's engine: a full forward pass of the model for every generated sub-pixel.

O((H W)^2 C) work, the reference the cached engine is tested against. It runs ``model(images)``,
so the model's backend applies (``model.backend``: the Triton kernels on GPU when it was built for them).
"""

from __future__ import annotations

import torch


class NaiveEngine:
    """Same protocol as :class:`fastpixel.sampling.cached.CachedEngine`; reads ``images`` directly."""

    def __init__(
        self, model: torch.nn.Module, images: torch.Tensor, gate_biases: list[torch.Tensor] | None = None,
        cond_biases: list[torch.Tensor] | None = None,
    ) -> None:
        self.model, self.images, self.gate_biases, self.cond_biases = model, images, gate_biases, cond_biases

    def start_row(self, r: int) -> None:
        pass

    def write(self, r: int, j: int, c: int, values: torch.Tensor) -> None:
        pass  # the driver has already written images[:, c, r, j]

    def logits(self, r: int, j: int, c: int) -> torch.Tensor:
        """(B, L) for sub-pixel c: the full forward pass (``forward_float`` of the embedded images, what
        ``model(images, labels=...)`` computes), read at pixel (r, j) and turned into the logits the
        driver draws from (``model.sampling_logits``: a softmax head's logits as they are; a DMoL
        head's log-probabilities of each value given the pixel's channels before c)."""
        u = self.model.embed(self.images)
        out = self.model.forward_float(u, self.gate_biases, self.cond_biases)
        if self.model.head_kind == "softmax":
            return out[:, :, c, r, j]
        at = (..., slice(r, r + 1), slice(j, j + 1))
        return self.model.sampling_logits(out[at], self.images[at], c)[..., 0, 0]

    def settle(self, r: int, j: int) -> None:
        pass

    def end_row(self, r: int) -> None:
        pass
