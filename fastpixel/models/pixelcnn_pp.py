"""PixelCNN++ (Salimans, Karpathy, Chen, Kingma, ICLR 2017; the architecture of openai/pixel-cnn).

    x (B, C, H, W) ints -> y = x * 2/(L-1) - 1, with a channel of ones appended (it tells the image
      from the zero padding of the shifted convs)
    u  = down_shift(down-shifted 2x3 conv(y))                                       rows above
    ul = down_shift(down-shifted 1x3 conv(y)) + right_shift(down-right-shifted 2x1 conv(y))   pixels before
    up pass, 3 resolutions (H x W, ceil(H/2) x ceil(W/2), ceil(H/4) x ceil(W/4)):
      nr_resnet x { u = GatedResNet(u);  ul = GatedResNet(ul, a=u) }   (every u and ul kept)
      between resolutions: u, ul = stride-2 down-shifted 2x3 conv(u), down-right-shifted 2x2 conv(ul) (kept)
    down pass, from the lowest resolution up:
      {nr_resnet, nr_resnet + 1, nr_resnet + 1} x
        { u = GatedResNet(u, a=popped u);  ul = GatedResNet(ul, a=[u, popped ul]) }
      between resolutions: u, ul = stride-2 down-shifted 2x3 / down-right-shifted 2x2 deconvs,
        cropped to the size of the resolution above (any H, W >= 1: fastpixel.layers.shifted_conv)
    params = 1x1 conv(elu(ul))                 (B, 10K, H, W) RGB, (B, 3K, H, W) grey
    log p(x) = -sum over pixels of dmol_nll(params, x)    (the discretized mixture of logistics)

Every kept u / ul is consumed once by the down pass's shortcuts (3 nr_resnet + 3 of each). The
network never reads the current pixel: params[:, :, r, j] depends only on pixels before (r, j)
(ul's property, fastpixel.layers.shifted_conv); within a pixel, the channels are coupled only by the
mixture's linear coefficients (G's mean on R, B's on R and G).

Differences from the published code, on purpose: no weight normalisation and no data-dependent
initialisation (plain ``nn.Conv2d`` with PyTorch's default initialisation; conv' of each block at a
tenth of it, as the published ``init_scale=0.1``); the downsampling and upsampling are exact for odd
sizes (published: sizes divisible by 4). A conditional model adds ``E[label] + W cond`` to every
gated block's c2 (the published ``h`` projection; fastpixel.layers.conditioning).
The convolutions are PyTorch's (cuDNN / oneDNN); the model's backend runs the DMoL likelihood.
"""

from __future__ import annotations

import torch
from torch import nn

from fastpixel.backend import BackendChoice, requested_backend
from fastpixel.layers.conditioning import ConditionBias, check_condition, check_condition_options
from fastpixel.layers.gated_resnet import GatedResNet
from fastpixel.layers.shifted_conv import ShiftedConv2d, ShiftedDeconv2d, down_shift, right_shift
from fastpixel.metrics import bits_per_dim
from fastpixel.models.heads import dmol_channels, head_log_probs, head_nll, head_sampling_logits
from fastpixel.models.saving import SavePretrainedMixin
from fastpixel.validation import check_channels, check_images, check_levels

#: Resolutions of the U-Net (the published 32x32 -> 16x16 -> 8x8).
RESOLUTIONS = 3


class PixelCNNPlusPlus(BackendChoice, SavePretrainedMixin, nn.Module):
    """PixelCNN++ with the discretized-logistic-mixture head.

    Args:
      channels: 1 (grey: the one-channel mixture, 3K maps) or 3 (RGB: 10K maps).
      levels: values per sub-pixel, in [2, 256].
      nr_resnet: gated ResNet blocks per resolution and stream (published: 5). ``layers`` in
        ``create_model``.
      nr_filters: features of both streams (published: 160). ``hidden`` in ``create_model``.
      nr_logistic_mix: K, mixture components (published: 10).
      dropout: dropout probability inside every block in training (published: 0.5).
      num_classes, cond_features: a class- / vector-conditional model, as every fastpixel model.
      backend: the DMoL likelihood's backend (fastpixel.backend).
    """

    name = "pixelcnn_pp"
    head_kind = "dmol"

    def __init__(
        self, *, channels: int, levels: int, nr_resnet: int = 5, nr_filters: int = 160, nr_logistic_mix: int = 10,
        dropout: float = 0.5, num_classes: int | None = None, cond_features: int | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        self.channels = check_channels(channels)
        self.levels = check_levels(levels)
        check_condition_options(num_classes, cond_features)
        for label, value, low in (("nr_resnet", nr_resnet, 0), ("nr_filters", nr_filters, 1),
                                  ("nr_logistic_mix", nr_logistic_mix, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{label} must be an int >= {low}, got {value!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.nr_resnet, self.nr_filters, self.nr_logistic_mix = nr_resnet, nr_filters, nr_logistic_mix
        self.dropout = float(dropout)
        self.num_classes, self.cond_features = num_classes, cond_features
        self.requested_backend = requested_backend(backend)
        self.config = dict(name=self.name, channels=channels, levels=levels, hidden=nr_filters, layers=nr_resnet,
                           nr_logistic_mix=nr_logistic_mix, dropout=self.dropout)
        self.config.update({k: v for k, v in (("num_classes", num_classes), ("cond_features", cond_features))
                            if v is not None})
        f, n = nr_filters, nr_resnet

        def block(kind: str, shortcut: int) -> GatedResNet:
            return GatedResNet(f, kind, shortcut_channels=shortcut, dropout=self.dropout)

        self.u_input = ShiftedConv2d(channels + 1, f, (2, 3), "down")
        self.ul_input_above = ShiftedConv2d(channels + 1, f, (1, 3), "down")
        self.ul_input_left = ShiftedConv2d(channels + 1, f, (2, 1), "down_right")
        self.up_u = nn.ModuleList(nn.ModuleList(block("down", 0) for _ in range(n)) for _ in range(RESOLUTIONS))
        self.up_ul = nn.ModuleList(nn.ModuleList(block("down_right", f) for _ in range(n)) for _ in range(RESOLUTIONS))
        self.downsample_u = nn.ModuleList(ShiftedConv2d(f, f, (2, 3), "down", stride=2)
                                          for _ in range(RESOLUTIONS - 1))
        self.downsample_ul = nn.ModuleList(ShiftedConv2d(f, f, (2, 2), "down_right", stride=2)
                                           for _ in range(RESOLUTIONS - 1))
        down_sizes = [n] + [n + 1] * (RESOLUTIONS - 1)  # lowest resolution first
        self.down_u = nn.ModuleList(nn.ModuleList(block("down", f) for _ in range(m)) for m in down_sizes)
        self.down_ul = nn.ModuleList(nn.ModuleList(block("down_right", 2 * f) for _ in range(m)) for m in down_sizes)
        self.upsample_u = nn.ModuleList(ShiftedDeconv2d(f, f, (2, 3), "down") for _ in range(RESOLUTIONS - 1))
        self.upsample_ul = nn.ModuleList(ShiftedDeconv2d(f, f, (2, 2), "down_right") for _ in range(RESOLUTIONS - 1))
        self.output_conv = nn.Conv2d(f, dmol_channels(channels, nr_logistic_mix), 1)
        conditional = num_classes is not None or cond_features is not None
        self.condition = (
            ConditionBias([b.cond_channels for b in self.gated_blocks()], num_classes=num_classes,
                          cond_features=cond_features)
            if conditional else None
        )
        self._init_backend(backend)

    # -- structure -----------------------------------------------------------------------------
    def gated_blocks(self) -> list[GatedResNet]:
        """Every gated block in the order ``forward_float`` applies them (u then ul, pass by pass):
        the order of the conditioning biases."""
        out = []
        for u_blocks, ul_blocks in (*zip(self.up_u, self.up_ul), *zip(self.down_u, self.down_ul)):
            for bu, bul in zip(u_blocks, ul_blocks):
                out += [bu, bul]
        return out

    @property
    def conditional(self) -> bool:
        """Whether the model takes labels and/or a conditioning vector."""
        return self.condition is not None

    @property
    def num_layers(self) -> int:
        return self.nr_resnet

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Integer images (B, C, H, W) -> floats in [-1, 1] of the parameters' dtype."""
        return x.to(self.output_conv.weight.dtype) * (2.0 / (self.levels - 1)) - 1.0

    def condition_biases(
        self, labels: object, cond: torch.Tensor | None, batch: int, *, validate: bool = True
    ) -> list[torch.Tensor] | None:
        """One (B, 2F) bias per gated block (``gated_blocks`` order); None for an unconditional model."""
        labels, cond = check_condition(self.num_classes, self.cond_features, labels, cond, batch,
                                       self.output_conv.weight.device, validate=validate)
        return None if self.condition is None else self.condition(labels, cond)

    # -- the network ---------------------------------------------------------------------------
    def forward_float(
        self, y: torch.Tensor, gate_biases: list[torch.Tensor] | None = None,
        cond_biases: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Embedded images (B, C, H, W) -> mixture parameters (B, P, H, W) (see the module docstring)."""
        if gate_biases is not None:
            raise TypeError("PixelCNN++ takes no gate_biases (it is conditioned through cond_biases)")
        biases = iter(cond_biases) if cond_biases is not None else None

        def bias() -> torch.Tensor | None:
            return None if biases is None else next(biases)

        y = torch.cat([y, torch.ones_like(y[:, :1])], dim=1)
        u = down_shift(self.u_input(y))
        ul = down_shift(self.ul_input_above(y)) + right_shift(self.ul_input_left(y))
        us, uls = [u], [ul]
        for level in range(RESOLUTIONS):
            for bu, bul in zip(self.up_u[level], self.up_ul[level]):
                u = bu(u, cond_bias=bias())
                ul = bul(ul, u, cond_bias=bias())
                us.append(u)
                uls.append(ul)
            if level < RESOLUTIONS - 1:
                u, ul = self.downsample_u[level](u), self.downsample_ul[level](ul)
                us.append(u)
                uls.append(ul)
        u, ul = us.pop(), uls.pop()
        for level in range(RESOLUTIONS):
            if level:
                size = us[-1].shape[2:]  # the resolution above, where the next shortcut is
                u, ul = self.upsample_u[level - 1](u, size), self.upsample_ul[level - 1](ul, size)
            for bu, bul in zip(self.down_u[level], self.down_ul[level]):
                u = bu(u, us.pop(), cond_bias=bias())
                ul = bul(ul, torch.cat([u, uls.pop()], dim=1), cond_bias=bias())
        return self.output_conv(torch.nn.functional.elu(ul))

    def forward(
        self, x: torch.Tensor, *, labels: object = None, cond: torch.Tensor | None = None, validate: bool = True,
        backend: str | None = None,
    ) -> torch.Tensor:
        """x: integer images (B, C, H, W) in [0, levels) -> mixture parameters (B, P, H, W) (docs/dmol.md's
        layout; P = 10 nr_logistic_mix for RGB, 3 nr_logistic_mix for grey).
        labels / cond: a conditional model's, as in ``PixelModel.forward``; backend: deprecated."""
        check_images(x, channels=self.channels, levels=self.levels, check_values=validate)
        cond_biases = self.condition_biases(labels, cond, x.shape[0], validate=validate)
        with self._deprecated_call_backend(backend, "forward"):
            return self.forward_float(self.embed(x), cond_biases=cond_biases)

    # -- the likelihood ------------------------------------------------------------------------
    def output_nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x) per image (B,) in nats from ``forward``'s output, on ``self.backend``."""
        return head_nll("dmol", out, x, levels=self.levels, nr_logistic_mix=self.nr_logistic_mix,
                        backend=self.backend)

    def log_prob(
        self, x: torch.Tensor, *, labels: object = None, cond: torch.Tensor | None = None, validate: bool = True,
        backend: str | None = None,
    ) -> torch.Tensor:
        """log p(x) in nats, (B,) (log p(x | labels, cond) for a conditional model)."""
        with self._deprecated_call_backend(backend, "log_prob"):
            return -self.output_nll(self.forward(x, labels=labels, cond=cond, validate=validate), x)

    def nll(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Negative log-likelihood in nats per image, (B,)."""
        return -self.log_prob(x, **kwargs)

    def bits_per_dim(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Negative log-likelihood in bits per sub-pixel, (B,)."""
        return bits_per_dim(self.nll(x, **kwargs), x.shape[1] * x.shape[2] * x.shape[3])

    def categorical_log_probs(
        self, x: torch.Tensor, *, labels: object = None, cond: torch.Tensor | None = None, validate: bool = True
    ) -> torch.Tensor:
        """(B, levels, C, H, W): log p(x[b, c, r, j] = v | the sub-pixels before it in x), every v."""
        out = self.forward(x, labels=labels, cond=cond, validate=validate)
        return head_log_probs("dmol", out, x, levels=self.levels, nr_logistic_mix=self.nr_logistic_mix)

    def sampling_logits(self, out: torch.Tensor, x: torch.Tensor, channel: int) -> torch.Tensor:
        """The samplers' logits (B, levels, h, w) of sub-pixel ``channel`` from ``forward``'s output at some
        pixels and those pixels of x (log-probabilities given x's channels before ``channel``)."""
        return head_sampling_logits("dmol", out, x, channel, levels=self.levels,
                                    nr_logistic_mix=self.nr_logistic_mix)
