"""Multi-Scale PixelRNN (paper section 3.6): an unconditional PixelRNN for a subsampled image and a
conditional PixelRNN for the full image.

    s = x[:, :, ::f, ::f]                                   the small image, ceil(H/f) x ceil(W/f)
    log p(x) = log p_small(s) + sum over sub-pixels i of x not in s of log p_large(x_i | x_<i, s)

The conditional network is a PixelRNN whose every LSTM layer is *biased* by the small image: a
convolutional network with a deconvolution (stride f) enlarges s to a c x H x W conditioning map,
and for each layer an unmasked 1x1 conv maps it to the layer's input-to-state gates (4h for a Row
LSTM, 8h for both directions of a Diagonal BiLSTM), added before the scan.

The sub-pixels of s are generated first (by the small model) and are *not* predicted again by the
large one, so the product above is an exact, normalised likelihood: an autoregressive model whose
order is s first (raster, then R, G, B), then every other sub-pixel in raster order. ``model(x)``
returns one logits map (B, levels, C, H, W) holding each sub-pixel's predictive distribution under
that order: the small model's at the positions of s, the conditional model's elsewhere.
"""

from __future__ import annotations

import torch
from torch import nn

from fastpixel.backend import BackendChoice, requested_backend
from fastpixel.models.base import DiscreteLikelihood, PixelModel
from fastpixel.models.pixelrnn import DiagonalBiLSTMPixelRNN, RowLSTMPixelRNN
from fastpixel.models.saving import SavePretrainedMixin
from fastpixel.validation import check_images

KINDS = {"row_lstm": RowLSTMPixelRNN, "diagonal_bilstm": DiagonalBiLSTMPixelRNN}


class MultiScalePixelRNN(BackendChoice, DiscreteLikelihood, SavePretrainedMixin, nn.Module):
    """Small unconditional PixelRNN + large PixelRNN conditioned on the small image.

    Args:
      kind: "row_lstm" or "diagonal_bilstm" (both networks).
      channels, levels, hidden, layers, output_hidden, skip: as in ``create_model`` (the large network).
      factor: subsampling factor f (2: a 16x16 image conditions a 32x32 one).
      small_hidden, small_layers: the small network's h and depth (default: the large one's).
      condition_features: c, the width of the upsampled conditioning map (default 2h).
      num_classes, cond_features: a class-conditional / vector-conditional model (both networks are
        conditioned: ``log p(x | y) = log p_small(s | y) + log p_large(rest | s, y)``); each LSTM
        layer of both adds ``E_l[label] + W_l cond`` to its gates (fastpixel.layers.conditioning).

    ``create_model("multiscale", ...)`` builds it too, and ``create_model(**model.config)`` rebuilds it.
    """

    name = "multiscale"

    def __init__(
        self,
        *,
        kind: str = "diagonal_bilstm",
        channels: int,
        levels: int,
        hidden: int,
        layers: int,
        factor: int = 2,
        small_hidden: int | None = None,
        small_layers: int | None = None,
        condition_features: int | None = None,
        output_hidden: int | None = None,
        skip: bool = False,
        num_classes: int | None = None,
        cond_features: int | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
            raise ValueError(f"factor must be an int >= 2, got {factor!r}")
        if layers < 1:
            raise ValueError(f"layers must be >= 1 (the conditioning biases the LSTM layers), got {layers}")
        backend = requested_backend(backend)
        common = dict(channels=channels, levels=levels, skip=skip, num_classes=num_classes,
                      cond_features=cond_features, backend=backend)
        self.small: PixelModel = KINDS[kind](
            hidden=small_hidden or hidden, layers=small_layers or layers, **common,
            output_hidden=None if small_hidden else output_hidden,
        )
        self.large: PixelModel = KINDS[kind](hidden=hidden, layers=layers, output_hidden=output_hidden, **common)
        features = condition_features or 2 * hidden
        self.upsample = nn.Sequential(
            nn.Conv2d(channels, features, 3, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(features, features, factor, stride=factor),
            nn.ReLU(),
            nn.Conv2d(features, features, 3, padding=1),
        )
        self.condition_convs = nn.ModuleList(nn.Conv2d(features, block.gate_channels, 1) for block in self.large.blocks)
        self.kind, self.factor, self.channels, self.levels = kind, factor, channels, levels
        self.config = dict(
            name=self.name, kind=kind, channels=channels, levels=levels, hidden=hidden, layers=layers, factor=factor,
            small_hidden=small_hidden, small_layers=small_layers, condition_features=condition_features,
            output_hidden=output_hidden, skip=skip,
        )
        self.config.update({k: v for k, v in (("num_classes", num_classes), ("cond_features", cond_features))
                            if v is not None})
        self.num_classes, self.cond_features = num_classes, cond_features
        self._init_backend(backend)

    @property
    def conditional(self) -> bool:
        """Whether the model takes labels and/or a conditioning vector."""
        return self.large.conditional

    # -- structure -------------------------------------------------------------------------------
    def subsample(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the small image s = x[:, :, ::f, ::f]."""
        return x[:, :, :: self.factor, :: self.factor]

    def small_positions(self, height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """(H, W) bool: the pixels of the full image that belong to s."""
        rows = torch.arange(height, device=device) % self.factor == 0
        cols = torch.arange(width, device=device) % self.factor == 0
        return rows[:, None] & cols[None, :]

    def gate_biases(self, small: torch.Tensor, height: int, width: int) -> list[torch.Tensor]:
        """Integer small images (B, C, h, w) -> one (B, gates, H, W) bias per LSTM layer of ``large``."""
        u = self.small.embed(small)
        condition = self.upsample(u)[:, :, :height, :width]  # deconvolution overshoots by < f
        return [conv(condition) for conv in self.condition_convs]

    # -- the model -------------------------------------------------------------------------------
    def forward(
        self, x: torch.Tensor, *, labels: object = None, cond: torch.Tensor | None = None, validate: bool = True,
        backend: str | None = None,
    ) -> torch.Tensor:
        """x: integer (B, C, H, W) in [0, levels) -> logits (B, levels, C, H, W), each sub-pixel's
        distribution under the multi-scale order (small model on s, conditional model elsewhere).
        labels / cond: a conditional model's, as in ``PixelModel.forward``.
        backend: deprecated (see ``PixelModel.forward``)."""
        check_images(x, channels=self.channels, levels=self.levels, check_values=validate)
        small_cond = self.small.condition_biases(labels, cond, x.shape[0], validate=validate)
        large_cond = self.large.condition_biases(labels, cond, x.shape[0], validate=False)
        with self._deprecated_call_backend(backend, "forward"):
            small = self.subsample(x)
            small_logits = self.small.forward_float(self.small.embed(small), cond_biases=small_cond)
            height, width = x.shape[2:]
            large_logits = self.large.forward_float(self.large.embed(x), self.gate_biases(small, height, width),
                                                    large_cond)
            in_small = self.small_positions(height, width, x.device)
            logits = large_logits.clone()
            logits[:, :, :, in_small] = small_logits.flatten(3)
            return logits

    def generation_order(self, height: int, width: int) -> torch.Tensor:
        """(C, H, W) long: the step at which each sub-pixel is generated (s first, then the rest)."""
        in_small = self.small_positions(height, width)
        pixel_rank = torch.empty(height * width, dtype=torch.long)
        order = torch.cat([in_small.flatten().nonzero()[:, 0], (~in_small).flatten().nonzero()[:, 0]])
        pixel_rank[order] = torch.arange(height * width)
        c = self.channels
        return (pixel_rank.view(1, height, width) * c + torch.arange(c).view(c, 1, 1)).contiguous()
