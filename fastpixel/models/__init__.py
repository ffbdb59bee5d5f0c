"""Models of the paper's Table 1 and the factory users build them with."""

from __future__ import annotations

from fastpixel.models.base import PixelModel
from fastpixel.models.gated import GatedPixelCNN
from fastpixel.models.multiscale import MultiScalePixelRNN
from fastpixel.models.pixelcnn import PixelCNN
from fastpixel.models.pixelcnn_pp import PixelCNNPlusPlus
from fastpixel.models.pixelrnn import DiagonalBiLSTMPixelRNN, RowLSTMPixelRNN

MODELS: dict[str, type[PixelModel] | type[MultiScalePixelRNN] | type[PixelCNNPlusPlus]] = {
    "pixelcnn": PixelCNN,
    "row_lstm": RowLSTMPixelRNN,
    "diagonal_bilstm": DiagonalBiLSTMPixelRNN,
    "gated_pixelcnn": GatedPixelCNN,
    "multiscale": MultiScalePixelRNN,
    "pixelcnn_pp": PixelCNNPlusPlus,
}
#: The keyword options each model takes besides channels, levels, hidden and layers.
OPTIONS = {
    **{name: ("output_hidden", "skip", "num_classes", "cond_features", "head", "nr_logistic_mix", "backend")
       for name in ("pixelcnn", "row_lstm", "diagonal_bilstm")},
    "gated_pixelcnn": ("kernel_size", "first_kernel_size", "output_hidden", "skip", "num_classes", "cond_features",
                       "head", "nr_logistic_mix", "backend"),
    "multiscale": ("kind", "factor", "small_hidden", "small_layers", "condition_features", "output_hidden", "skip",
                   "num_classes", "cond_features", "backend"),
    "pixelcnn_pp": ("nr_resnet", "nr_filters", "nr_logistic_mix", "dropout", "num_classes", "cond_features",
                    "backend"),
}


def create_model(
    name: str, *, channels: int, levels: int, hidden: int | None = None, layers: int | None = None, **options
) -> PixelModel | MultiScalePixelRNN | PixelCNNPlusPlus:
    """Build a model of Table 1, the Multi-Scale PixelRNN of section 3.6, or the Gated PixelCNN.

    Args:
      name: "pixelcnn", "row_lstm", "diagonal_bilstm", "gated_pixelcnn", "multiscale" or "pixelcnn_pp".
      channels: 1 (grey/binary) or 3 (RGB).
      levels: values per sub-pixel, in [2, 256] (256 for 8-bit images, 2 for binarized MNIST).
      hidden: the paper's h; the residual stream carries 2h features (Gated PixelCNN: p, the
        features of each stack).
      layers: residual blocks / LSTM layers between the first 7x7 conv and the output layers
        (Gated PixelCNN: gated layers after the first one).
      options: output_hidden (width of the first output 1x1 conv, default 2h), skip (learnable
        skip connections from every layer to the output, default False), backend; for "multiscale"
        also kind ("row_lstm" / "diagonal_bilstm"), factor, small_hidden, small_layers,
        condition_features (see MultiScalePixelRNN); for "gated_pixelcnn" kernel_size (n of the
        layers after the first, odd, default 3) and first_kernel_size (default 7). Every model also
        takes num_classes=K (class-conditional: ``model(x, labels=...)``) and/or cond_features=D
        (``model(x, cond=...)``, a (B, D) vector); see fastpixel.layers.conditioning. The paper's models
        and the Gated PixelCNN take head ("softmax", default, or "dmol": PixelCNN++'s discretized
        mixture of logistics, fastpixel.models.heads) and nr_logistic_mix (K, default 10).
        "pixelcnn_pp" (PixelCNN++) maps hidden -> nr_filters and layers -> nr_resnet (or takes those
        names themselves), and takes nr_logistic_mix (default 10) and dropout (default 0.5).
    Returns: a PixelModel (a MultiScalePixelRNN for "multiscale"); ``model(x)`` gives logits
      (B, levels, C, H, W), ``model.log_prob(x)`` the (B,) log-likelihood in nats; ``model.config`` rebuilds it: ``create_model(**model.config)``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    allowed = set(OPTIONS[name])
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"create_model: unknown option(s) {sorted(unknown)} for {name!r}; allowed: {sorted(allowed)}")
    if name == "pixelcnn_pp":
        for common, own in (("hidden", "nr_filters"), ("layers", "nr_resnet")):
            given = {"hidden": hidden, "layers": layers}[common]
            if given is not None and options.get(own, given) != given:
                raise ValueError(f"create_model('pixelcnn_pp'): {common}={given} and {own}={options[own]} disagree "
                                 f"({common} is {own})")
            if given is not None:
                options[own] = given
        return PixelCNNPlusPlus(channels=channels, levels=levels, **options)
    if hidden is None or layers is None:
        raise TypeError(f"create_model({name!r}) needs hidden= and layers=")
    return MODELS[name](channels=channels, levels=levels, hidden=hidden, layers=layers, **options)


__all__ = [
    "MODELS",
    "DiagonalBiLSTMPixelRNN",
    "GatedPixelCNN",
    "MultiScalePixelRNN",
    "OPTIONS",
    "PixelCNN",
    "PixelCNNPlusPlus",
    "PixelModel",
    "RowLSTMPixelRNN",
    "create_model",
]
