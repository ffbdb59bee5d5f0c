"""Models of the paper's Table 1 and the factory users build them with."""

from __future__ import annotations

from fastpixel.models.base import PixelModel
from fastpixel.models.multiscale import MultiScalePixelRNN
from fastpixel.models.pixelcnn import PixelCNN
from fastpixel.models.pixelrnn import DiagonalBiLSTMPixelRNN, RowLSTMPixelRNN

MODELS: dict[str, type[PixelModel]] = {
    "pixelcnn": PixelCNN,
    "row_lstm": RowLSTMPixelRNN,
    "diagonal_bilstm": DiagonalBiLSTMPixelRNN,
}


def create_model(name: str, *, channels: int, levels: int, hidden: int, layers: int, **options) -> PixelModel:
    """Build a model of Table 1.

    Args:
      name: "pixelcnn", "row_lstm" or "diagonal_bilstm".
      channels: 1 (grey/binary) or 3 (RGB).
      levels: values per sub-pixel, in [2, 256] (256 for 8-bit images, 2 for binarized MNIST).
      hidden: the paper's h; the residual stream carries 2h features.
      layers: residual blocks / LSTM layers between the first 7x7 conv and the output layers.
      options: output_hidden (width of the first output 1x1 conv, default 2h), skip (learnable
        skip connections from every layer to the output, default False), backend.
    Returns: a PixelModel; ``model(x)`` gives logits (B, levels, C, H, W), ``model.log_prob(x)``
      the (B,) log-likelihood in nats; ``model.config`` rebuilds it: ``create_model(**model.config)``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    allowed = {"output_hidden", "skip", "backend"}
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"create_model: unknown option(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return MODELS[name](channels=channels, levels=levels, hidden=hidden, layers=layers, **options)


__all__ = [
    "MODELS",
    "DiagonalBiLSTMPixelRNN",
    "MultiScalePixelRNN",
    "PixelCNN",
    "PixelModel",
    "RowLSTMPixelRNN",
    "create_model",
]
