"""sample() and complete(): generation in raster order, one sub-pixel at a time.

Order: rows top to bottom, pixels left to right, and inside a pixel channels c = 0 .. C-1 (R, G, B).
Sub-pixel (c, r, j) of image b is drawn from softmax(logits[b, :, c, r, j] / temperature) with the
uniform ``uniforms[b, c, r, j]`` (see :mod:`fastpixel.sampling.categorical`). The logits come from
an engine: "cached" (every layer's state is kept, each pixel costs one step of every layer) or
"naive" (a full forward pass per sub-pixel, the reference). One driver runs both, so they draw the
same random numbers in the same order and return the same images whenever their logits agree.

A model with a discretized-logistic-mixture head (PixelCNN++, ``head="dmol"``) is sampled the same
way: its engine's "logits" for sub-pixel c are the log-probabilities of the mixture's L values given
the pixel's channels written so far (``model.sampling_logits``: ``ops.dmol_log_probs``, the bin
masses, with G's and B's means coupled to the R and G actually drawn and the component posterior
given them). So every value is drawn exactly on the grid (the value's bin, never a continuous value
clipped), by the inverse CDF of the one uniform of its sub-pixel, and **temperature** has the
softmax head's meaning: each sub-pixel's conditional distribution p(v | before) is raised to 1/T and
renormalised (T = 0: its most probable value). This is not ``ops.dmol_sample``'s temperature (which
divides the mixture logits and multiplies every logistic's scale); at T = 1 both sample the model.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from fastpixel.devices import check_generator
from fastpixel.finite import check_finite_weights
from fastpixel.memory import check_fits
from fastpixel.models.base import PixelModel
from fastpixel.models.multiscale import MultiScalePixelRNN
from fastpixel.models.pixelcnn_pp import PixelCNNPlusPlus
from fastpixel.sampling.categorical import check_temperature, draw_uniforms, inverse_cdf
from fastpixel.sampling.engines import make_engine
from fastpixel.training.rules import check_option
from fastpixel.validation import check_images


def sample(
    model: PixelModel,
    num: int,
    *,
    height: int,
    width: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    method: str = "cached",
    progress: bool = False,
    labels: object = None,
    cond: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Draw ``num`` images from ``model``: int64 (num, C, height, width) in [0, levels).

    labels: a class-conditional model's class of each image: (num,) integers in [0, num_classes), a
      list of ``num`` ints, or one int (every image of that class). cond: a vector-conditional
      model's (num, cond_features) vectors (or one, for every image). An unconditional model takes
      neither; a conditional one needs what it was built for.

    temperature: the logits are divided by it (1: the model; < 1 sharper, > 1 flatter; 0: greedy,
      every sub-pixel takes its most likely value given those before it).
    generator: the source of the (num, C, H, W) uniforms (None: torch's default generator); on the
      model's device type (else DeviceError, a ValueError).
    num, height, width: checked by the rules table (fastpixel.training.rules.OPTION_RULES).
    Weights holding NaN or inf are refused (NonFiniteWeightsError) rather than sampled.
    method: "cached" (work proportional to the image) or "naive" (full forward per sub-pixel).
    progress: a tqdm bar over rows. backend: deprecated (the naive method runs ``model.backend``;
      switch it with ``model.to_backend(name)``).
    A :class:`~fastpixel.models.multiscale.MultiScalePixelRNN` draws the small image first, then the
    rest of the full image conditioned on it (see :func:`_sample_multiscale`).
    """
    for label, value in (("num", num), ("height", height), ("width", width)):
        check_option(label, value)
    options = dict(temperature=temperature, generator=generator, method=method, progress=progress)
    if not isinstance(model, (PixelModel, PixelCNNPlusPlus, MultiScalePixelRNN)):
        _check_model(model)
    check_finite_weights(model, "sample")
    device = _device(model.small if isinstance(model, MultiScalePixelRNN) else model)
    check_generator(generator, device)
    # the images (int64) and their uniforms (float64), allocated up front: refused with the estimate if too big
    check_fits(16 * num * model.channels * height * width, device, f"sampling {num} images of {height}x{width}",
               "draw fewer images at once, or smaller ones")
    with model._deprecated_call_backend(backend, "sample"):
        if isinstance(model, MultiScalePixelRNN):
            return _sample_multiscale(model, num, height, width, labels=labels, cond=cond, **options)
        with torch.no_grad():
            cond_biases = model.condition_biases(labels, cond, num)
        images = torch.zeros(num, model.channels, height, width, dtype=torch.long, device=_device(model))
        return generate(model, images, None, cond_biases=cond_biases, **options)


def _sample_multiscale(
    model: MultiScalePixelRNN, num: int, height: int, width: int, *, labels: object, cond: torch.Tensor | None,
    **options,
) -> torch.Tensor:
    """s ~ p_small (its own cached/naive sampler), then every other sub-pixel ~ p_large(. | s).

    The uniforms of the small image are drawn first, then those of the full image; the sub-pixels
    of s are known in the second pass (their uniforms are drawn and unused).
    """
    f = model.factor
    small = sample(model.small, num, height=-(-height // f), width=-(-width // f), labels=labels, cond=cond,
                   **options)
    images = torch.zeros(num, model.channels, height, width, dtype=torch.long, device=small.device)
    images[:, :, ::f, ::f] = small
    known = model.small_positions(height, width, small.device).expand_as(images)
    with torch.no_grad():
        biases = model.gate_biases(small, height, width)
        cond_biases = model.large.condition_biases(labels, cond, num)
    return generate(model.large, images, known, gate_biases=biases, cond_biases=cond_biases, **options)


def complete(
    model: PixelModel,
    images: torch.Tensor,
    known: torch.Tensor,
    *,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    method: str = "cached",
    progress: bool = False,
    labels: object = None,
    cond: torch.Tensor | None = None,
    backend: str | None = None,
) -> torch.Tensor:
    """Image completion: keep the known sub-pixels of ``images``, sample the others.

    images: integer (N, C, H, W) in [0, levels) (values where ``known`` is False are ignored).
    known: bool, broadcastable to images' shape (e.g. (1, 1, H, W) for an occlusion mask).
    Each unknown sub-pixel is drawn given everything before it in raster/channel order, known or
    sampled (an autoregressive model conditions on the past only; the paper's completions occlude
    the bottom of the image). Returns int64 (N, C, H, W), equal to ``images`` wherever known.
    Other arguments as in :func:`sample` (labels / cond: one per image of ``images``); the uniforms
    of known sub-pixels are drawn and unused.
    """
    _check_model(model)
    check_images(images, channels=model.channels, levels=model.levels, check_values=False)
    check_finite_weights(model, "complete images")
    check_generator(generator, _device(model))
    with torch.no_grad():
        cond_biases = model.condition_biases(labels, cond, images.shape[0])
    if not isinstance(known, torch.Tensor) or known.dtype != torch.bool:
        raise TypeError(f"known must be a bool tensor broadcastable to {tuple(images.shape)}")
    try:
        known = torch.broadcast_to(known.to(images.device), images.shape)
    except RuntimeError:
        raise ValueError(f"known of shape {tuple(known.shape)} does not broadcast to {tuple(images.shape)}") from None
    kept = images[known]
    if kept.numel() and (int(kept.min()) < 0 or int(kept.max()) >= model.levels):
        raise ValueError(f"known image values must lie in [0, {model.levels})")
    work = torch.where(known, images.long(), torch.zeros((), dtype=torch.long, device=images.device))
    work = work.to(_device(model))
    with model._deprecated_call_backend(backend, "complete"):
        return generate(model, work, known.to(work.device), temperature=temperature, generator=generator,
                        method=method, progress=progress, cond_biases=cond_biases)


@torch.no_grad()
def generate(
    model: PixelModel,
    images: torch.Tensor,
    known: torch.Tensor | None,
    *,
    temperature: float,
    generator: torch.Generator | None,
    method: str,
    progress: bool = False,
    gate_biases: list[torch.Tensor] | None = None,
    cond_biases: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """The driver: fill ``images`` (int64 (B, C, H, W), modified in place and returned) where not known.

    gate_biases: optional per-block LSTM conditioning of ``model`` (the Multi-Scale PixelRNN's).
    cond_biases: a conditional model's per-block biases (``model.condition_biases(labels, cond, B)``).
    """
    temperature = check_temperature(temperature)
    batch, channels, height, width = images.shape
    engine = make_engine(method, model, images, gate_biases, cond_biases)  # checks the method
    _check_no_active_dropout(model)
    uniforms = draw_uniforms(tuple(images.shape), generator=generator, device=images.device)
    # todo[c][r][j]: some image of the batch still needs sub-pixel (c, r, j); one host copy up front
    todo = [[[True] * width] * height] * channels if known is None else (~known).any(0).tolist()
    for r in tqdm(range(height), desc=f"sampling ({method})", unit="row", disable=not progress):
        engine.start_row(r)
        for j in range(width):
            final = False  # whether the engine's states at (r, j) already saw channels 0..C-2
            for c in range(channels):
                if todo[c][r][j]:
                    logits = engine.logits(r, j, c)  # [B, L]
                    value = inverse_cdf(logits, uniforms[:, c, r, j], temperature)
                    if known is not None:
                        value = torch.where(known[:, c, r, j], images[:, c, r, j], value)
                    images[:, c, r, j] = value
                    final = c == channels - 1
                engine.write(r, j, c, images[:, c, r, j])
            if not final:
                engine.settle(r, j)
        engine.end_row(r)
    return images


@torch.no_grad()
def cached_logits(
    model: PixelModel, images: torch.Tensor, *, labels: object = None, cond: torch.Tensor | None = None
) -> torch.Tensor:
    """Logits (B, L, C, H, W) of known ``images`` computed by the cached engine, pixel by pixel.

    Equal to ``model(images, labels=labels, cond=cond)`` up to float rounding: the check that the
    caches compute the network.
    """
    _check_model(model)
    check_images(images, channels=model.channels, levels=model.levels)
    images = images.long().to(_device(model))
    batch, channels, height, width = images.shape
    engine = make_engine("cached", model, images, cond_biases=model.condition_biases(labels, cond, batch))
    out = torch.empty(batch, model.levels, channels, height, width, dtype=_dtype(model), device=images.device)
    for r in range(height):
        engine.start_row(r)
        for j in range(width):
            for c in range(channels):
                out[:, :, c, r, j] = engine.logits(r, j, c)
                engine.write(r, j, c, images[:, c, r, j])
        engine.end_row(r)
    return out


def _check_model(model: object) -> None:
    if not isinstance(model, (PixelModel, PixelCNNPlusPlus)):
        raise TypeError(f"model must be a fastpixel PixelModel (create_model(...)), got {type(model).__name__}")


def _check_no_active_dropout(model: torch.nn.Module) -> None:
    """A model in training mode with dropout (PixelCNN++) would drop activations at random while sampling."""
    dropout = getattr(model, "dropout", 0.0)
    if model.training and dropout:
        raise ValueError(f"{type(model).__name__} is in training mode with dropout {dropout}: sampling would drop "
                         "activations at random; call model.eval() first")


def _device(model: PixelModel | PixelCNNPlusPlus) -> torch.device:
    return next(model.parameters()).device


def _dtype(model: PixelModel | PixelCNNPlusPlus) -> torch.dtype:
    return next(model.parameters()).dtype
