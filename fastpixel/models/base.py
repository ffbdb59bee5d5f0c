"""The shared skeleton of every model in Table 1 of the paper.

    x (B, C, H, W) ints in [0, levels)
      -> scale to [-1, 1]                                              (B, C, H, W) float
      -> 7x7 conv, mask A                                              (B, 2h, H, W)
      -> `layers` residual blocks (PixelCNN conv / Row LSTM / Diagonal BiLSTM), 2h stream
      -> [skip: sum of a 1x1 mask-B conv of the stream after the first conv and every block]
      -> ReLU, 1x1 conv mask B (2h -> output_hidden), ReLU, 1x1 conv mask B (-> levels * C)
      -> view as logits (B, levels, C, H, W): a softmax over the levels of every sub-pixel.

A conditional model (``num_classes=K`` and/or ``cond_features=D``) also takes ``labels`` (B,) and/or
``cond`` (B, D) and adds to every block one bias per image, ``b_l = E_l[label] + W_l cond``
(:mod:`fastpixel.layers.conditioning`; where each block adds it, its docstring says). A model
without an input conv (the Gated PixelCNN) feeds the embedded image to its first block.

Every mask keeps colour group g of pixel p reading only earlier pixels and groups < g (first
conv) or <= g (everything after), so logits[:, :, c, r, j] depend only on sub-pixels before
(r, j, c) in raster-then-RGB order. log p(x) = -sum of the per-sub-pixel cross-entropies.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from fastpixel.backend import BackendChoice, requested_backend
from fastpixel.layers.conditioning import ConditionBias, check_condition, check_condition_options
from fastpixel.layers.masked_conv import MaskedConv2d
from fastpixel.masks import color_groups, logit_groups
from fastpixel.memory import check_fits, forward_bytes
from fastpixel.metrics import bits_per_dim
from fastpixel.models.heads import (
    check_head, dmol_groups, head_log_probs, head_nll, head_sampling_logits,
)
from fastpixel.models.saving import SavePretrainedMixin
from fastpixel.validation import check_channels, check_images, check_levels


class DiscreteLikelihood:
    """log p(x) from ``self.forward(x)``'s output: per-sub-pixel logits (B, levels, C, H, W) (the
    softmax head) or, with ``head_kind == "dmol"``, mixture parameters (B, P, H, W) (fastpixel.models.heads).

    The class needs ``forward(x, validate=)``, ``levels`` and is a
    :class:`~fastpixel.backend.BackendChoice` (the loss runs on ``self.backend``).
    """

    head_kind = "softmax"
    nr_logistic_mix = None

    def output_nll(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x) per image (B,) in nats from ``forward``'s output, on ``self.backend``."""
        return head_nll(self.head_kind, out, x, levels=self.levels, nr_logistic_mix=self.nr_logistic_mix,
                        backend=self.backend)

    def categorical_log_probs(
        self, x: torch.Tensor, *, labels: object = None, cond: torch.Tensor | None = None, validate: bool = True
    ) -> torch.Tensor:
        """(B, levels, C, H, W): log p(x[b, c, r, j] = v | the sub-pixels before it in x), for every
        value v (softmax head: the log-softmax of the logits; DMoL: the mixture's bin masses, G given
        x's R, B given x's R and G). ``log_prob(x)`` is its sum gathered at x's values."""
        out = self.forward(x, labels=labels, cond=cond, validate=validate)
        return head_log_probs(self.head_kind, out, x, levels=self.levels, nr_logistic_mix=self.nr_logistic_mix)

    def sampling_logits(self, out: torch.Tensor, x: torch.Tensor, channel: int) -> torch.Tensor:
        """The samplers' logits (B, levels, h, w) of sub-pixel ``channel`` from ``forward``'s output at
        some pixels and those pixels of x (softmax: the output's; DMoL: log-probabilities given x's
        channels before ``channel``)."""
        return head_sampling_logits(self.head_kind, out, x, channel, levels=self.levels,
                                    nr_logistic_mix=self.nr_logistic_mix)

    def log_prob(
        self, x: torch.Tensor, *, labels: object = None, cond: torch.Tensor | None = None, validate: bool = True,
        backend: str | None = None,
    ) -> torch.Tensor:
        """log p(x) in nats, (B,): minus the sum of every sub-pixel's cross-entropy
        (log p(x | labels, cond) for a conditional model).

        backend: deprecated (a model runs the backend it was built with; see ``to_backend``).
        """
        with self._deprecated_call_backend(backend, "log_prob"):
            out = self.forward(x, labels=labels, cond=cond, validate=validate)
            return -self.output_nll(out, x)

    def nll(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Negative log-likelihood in nats per image, (B,)."""
        return -self.log_prob(x, **kwargs)

    def bits_per_dim(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Negative log-likelihood in bits per sub-pixel, (B,)."""
        return bits_per_dim(self.nll(x, **kwargs), x.shape[1] * x.shape[2] * x.shape[3])


class PixelModel(BackendChoice, DiscreteLikelihood, SavePretrainedMixin, nn.Module):
    """Base class: subclasses return their blocks from ``build_blocks`` (each built with
    ``backend=self.requested_backend``), on a stream of ``stream_channels`` features (2h).

    A subclass may also override ``build_input_conv`` (None: no input conv, the first block reads the
    embedded image) and ``forward_float``; the cached sampler needs only ``input_conv``, ``blocks``
    (each with its incremental step), ``skip_convs`` (one per block, after one for the input conv's
    stream when there is one) and the two output convs.
    """

    name = "base"

    def __init__(
        self,
        *,
        channels: int,
        levels: int,
        hidden: int,
        layers: int,
        output_hidden: int | None = None,
        skip: bool = False,
        num_classes: int | None = None,
        cond_features: int | None = None,
        head: str = "softmax",
        nr_logistic_mix: int = 10,
        backend: str | None = None,
    ) -> None:
        super().__init__()
        self.channels = check_channels(channels)
        check_head(head, nr_logistic_mix)
        self.head_kind = head
        self.nr_logistic_mix = nr_logistic_mix if head == "dmol" else None
        self.levels = check_levels(levels)
        check_condition_options(num_classes, cond_features)
        self.num_classes, self.cond_features = num_classes, cond_features
        for label, value, low in (("hidden", hidden, 1), ("layers", layers, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{label} must be an int >= {low}, got {value!r}")
        output_hidden = 2 * hidden if output_hidden is None else output_hidden
        if isinstance(output_hidden, bool) or not isinstance(output_hidden, int) or output_hidden < 1:
            raise ValueError(f"output_hidden must be an int >= 1, got {output_hidden!r}")
        self.hidden, self.num_layers, self.output_hidden, self.skip = hidden, layers, output_hidden, skip
        self.requested_backend = backend = requested_backend(backend)  # every layer gets the same name
        self.config = dict(
            name=self.name, channels=channels, levels=levels, hidden=hidden, layers=layers,
            output_hidden=output_hidden, skip=skip,
        )
        # recorded only when set: an unconditional model's config stays what older versions wrote
        self.config.update({k: v for k, v in (("num_classes", num_classes), ("cond_features", cond_features))
                            if v is not None})
        if head == "dmol":  # recorded only when set, as above
            self.config.update(head=head, nr_logistic_mix=nr_logistic_mix)
        colors = channels
        stream = self.stream_channels
        self.input_conv = self.build_input_conv()
        self.blocks = nn.ModuleList()  # filled below, after the output layers: the order parameters are drawn in
        # one skip conv per layer: the input conv and each block, or (no input conv) each of the layers + 1 blocks
        self.skip_convs = nn.ModuleList(
            [MaskedConv2d(stream, stream, 1, "B", num_colors=colors, backend=backend) for _ in range(layers + 1)]
            if skip else []
        )
        self.output_conv1 = MaskedConv2d(stream, output_hidden, 1, "B", num_colors=colors, backend=backend)
        out_groups = (dmol_groups(channels, nr_logistic_mix) if head == "dmol"  # models.heads: who sees what
                      else logit_groups(levels, channels))
        self.output_conv2 = MaskedConv2d(
            output_hidden, len(out_groups), 1, "B", in_groups=color_groups(output_hidden, colors),
            out_groups=out_groups, backend=backend,
        )
        # Blocks last: a seed gives the weights it gave before blocks were built here (the shipped
        # models' training scripts reproduce them); the conditioning tables after them.
        self.blocks.extend(self.build_blocks())
        if skip and len(self.skip_convs) != len(self.blocks) + (self.input_conv is not None):
            raise ValueError(f"{type(self).__name__}: {len(self.blocks)} blocks and an input conv "
                             f"{'' if self.input_conv is not None else 'absent '}need as many skip convs")
        conditional = num_classes is not None or cond_features is not None
        self.condition = (
            ConditionBias([block.cond_channels for block in self.blocks], num_classes=num_classes,
                          cond_features=cond_features)
            if conditional else None
        )
        self._init_backend(backend)

    # -- structure (what subclasses choose) -------------------------------------------------------
    @property
    def stream_channels(self) -> int:
        """Features of the stream between blocks (2h)."""
        return 2 * self.hidden

    def build_input_conv(self) -> MaskedConv2d | None:
        """The 7x7 mask-A conv of the paper (image -> stream); None: the first block reads the image."""
        colors = self.channels
        return MaskedConv2d(
            self.channels, self.stream_channels, 7, "A", in_groups=color_groups(self.channels, colors),
            out_groups=color_groups(self.stream_channels, colors), backend=self.requested_backend,
        )

    def build_blocks(self) -> list[nn.Module]:
        """The blocks between the input conv and the output layers (none here)."""
        return []

    @property
    def conditional(self) -> bool:
        """Whether the model takes labels and/or a conditioning vector."""
        return self.condition is not None

    # -- the network ---------------------------------------------------------------------------
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Integer images (B, C, H, W) -> floats in [-1, 1] of the parameters' dtype."""
        dtype = self.output_conv2.weight.dtype
        return x.to(dtype) * (2.0 / (self.levels - 1)) - 1.0

    def condition_biases(
        self, labels: object, cond: torch.Tensor | None, batch: int, *, validate: bool = True
    ) -> list[torch.Tensor] | None:
        """The per-block conditioning biases (B, G_l) for these labels / cond (None: an unconditional
        model, which takes neither); one clear error for what is missing, out of range or misshapen."""
        labels, cond = check_condition(self.num_classes, self.cond_features, labels, cond, batch,
                                       self.output_conv2.weight.device, validate=validate)
        return None if self.condition is None else self.condition(labels, cond)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Stream features (B, S, H, W) -> logits (B, levels, C, H, W): ReLU, 1x1, ReLU, 1x1
        (head "dmol": the mixture parameters (B, P, H, W))."""
        out = self.output_conv2(torch.relu(self.output_conv1(torch.relu(features))))
        if self.head_kind == "dmol":
            return out
        return rearrange(out, "b (level c) h w -> b level c h w", level=self.levels)  # a view, no copy

    def forward_float(
        self, u: torch.Tensor, gate_biases: list[torch.Tensor] | None = None,
        cond_biases: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Embedded input (B, C, H, W) floats -> logits (B, levels, C, H, W).

        The network proper, differentiable in its input (the receptive-field tests use this).
        gate_biases: optional, one conditioning map per LSTM block added to its input-to-state gates
        (the Multi-Scale PixelRNN's biasing; see fastpixel.models.multiscale).
        cond_biases: optional, one (B, G_l) bias per block (``condition_biases``).
        """
        stream = self.input_conv(u)
        skips = [self.skip_convs[0](stream)] if self.skip else []
        for i, block in enumerate(self.blocks):
            kwargs = {}
            if gate_biases is not None:
                kwargs["gate_bias"] = gate_biases[i]
            if cond_biases is not None:
                kwargs["cond_bias"] = cond_biases[i]
            stream = block(stream, **kwargs)
            if self.skip:
                skips.append(self.skip_convs[i + 1](stream))
        return self.head(torch.stack(skips).sum(0) if self.skip else stream)

    def forward(
        self, x: torch.Tensor, *, labels: object = None, cond: torch.Tensor | None = None, validate: bool = True,
        backend: str | None = None,
    ) -> torch.Tensor:
        """x: integer images (B, C, H, W) in [0, levels) -> logits (B, levels, C, H, W).

        labels: a conditional model's class ids, (B,) integers in [0, num_classes) (or one int).
        cond: a conditional model's vectors, (B, cond_features) floats.
        validate: check dtype, shape and value range (one device sync for the range), and that the
          pass fits in the device's free memory (TooLargeError with the estimate otherwise).
        backend: deprecated (every op runs ``self.backend``, chosen when the model was built;
          switch it with ``model.to_backend(name)``).
        """
        check_images(x, channels=self.channels, levels=self.levels, check_values=False)
        if validate and not torch.compiler.is_compiling():  # a size that cannot fit: refused, with the estimate
            keep_all = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
            check_fits(forward_bytes(self, x.shape[0], x.shape[2], x.shape[3], keep_all=keep_all), x.device,
                       f"{self.name} on images of shape {tuple(x.shape)}", "use a smaller batch or image (or score it "
                       "in pieces)")
            check_images(x, channels=self.channels, levels=self.levels)  # the value range: one device sync
        cond_biases = self.condition_biases(labels, cond, x.shape[0], validate=validate)
        with self._deprecated_call_backend(backend, "forward"):
            return self.forward_float(self.embed(x), cond_biases=cond_biases)
