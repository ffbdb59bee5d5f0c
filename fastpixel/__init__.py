"""fastpixel: Pixel Recurrent Neural Networks (van den Oord, Kalchbrenner, Kavukcuoglu, 2016).

    import fastpixel
    model = fastpixel.create_model("diagonal_bilstm", channels=1, levels=2, hidden=16, layers=7)
    logits = model(x)                      # x: (B, 1, 28, 28) ints in {0, 1} -> (B, 2, 1, 28, 28)
    nats = -model.log_prob(x)              # (B,) exact NLL in nats
    model.save_pretrained("my_model")      # config.json + model.safetensors (no pickle)
    model = fastpixel.from_pretrained("my_model")   # or "digits", "hf://owner/repo", "runs/x/checkpoint.pt"
    state = fastpixel.read_checkpoint("runs/x/checkpoint.pt")   # a training checkpoint's dict
    fastpixel.save_image_grid(fastpixel.sample(model, 16, height=28, width=28), "grid.png")   # a PNG grid

Layers for your own models: MaskedConv2d, RowLSTM, DiagonalBiLSTM, ResidualConvBlock,
ResidualLSTMBlock. Ops with a ``backend=`` switch live in :mod:`fastpixel.ops`; the readable
ground truth in :mod:`fastpixel.reference`; Triton kernels in :mod:`fastpixel.kernels`.
Compress images losslessly with ``fastpixel.compress(model, images)`` / ``fastpixel.decompress``
(the ``compress`` extra). Train from Python with ``fastpixel.fit(model, images, steps=...)``; the
commands live in :mod:`fastpixel.cli`. Importing fastpixel needs neither a GPU nor triton.
"""

from fastpixel._version import __version__
from fastpixel.backend import BackendUnavailableError, use_backend
from fastpixel.checkpoint import read_checkpoint
from fastpixel.compression import compress, decompress
from fastpixel.image_grid import save_image_grid
from fastpixel.layers import DiagonalBiLSTM, MaskedConv2d, ResidualConvBlock, ResidualLSTMBlock, RowLSTM
from fastpixel.masks import MaskSpec, color_groups
from fastpixel.metrics import bits_per_dim, nats_per_image
from fastpixel.models import MultiScalePixelRNN, create_model
from fastpixel.models.build import from_pretrained, push_to_hub, save_pretrained
from fastpixel.persistence import load_checkpoint  # deprecated: from_pretrained / read_checkpoint
from fastpixel.sampling import complete, sample
from fastpixel.training import TrainConfig, fit

__all__ = [
    "BackendUnavailableError",
    "DiagonalBiLSTM",
    "MaskSpec",
    "MaskedConv2d",
    "MultiScalePixelRNN",
    "ResidualConvBlock",
    "ResidualLSTMBlock",
    "RowLSTM",
    "TrainConfig",
    "bits_per_dim",
    "color_groups",
    "complete",
    "compress",
    "create_model",
    "decompress",
    "fit",
    "from_pretrained",
    "load_checkpoint",
    "nats_per_image",
    "push_to_hub",
    "read_checkpoint",
    "sample",
    "save_image_grid",
    "save_pretrained",
    "use_backend",
]
