"""Deprecated module: saving and loading moved to three modules (this one re-exports them for a release).

* :mod:`fastpixel.saved_model`: the saved-model format (write / read a directory, checks); no model;
* :mod:`fastpixel.models.build`: models from saved files (``from_pretrained``, ``save_pretrained``);
* :mod:`fastpixel.hub`: the Hugging Face Hub (``hub`` extra).

``fastpixel.persistence.load_checkpoint`` (a checkpoint's model) is deprecated: use
``fastpixel.from_pretrained(path, weights=...)``; ``fastpixel.read_checkpoint`` reads the checkpoint's dict.
"""

from __future__ import annotations

import os
import warnings

import torch

from fastpixel.hub import HUB_INSTALL, HUB_PREFIX  # noqa: F401
from fastpixel.models.build import (from_pretrained, load_weights, model_from_checkpoint,  # noqa: F401
                                    push_to_hub, read_pretrained_config, resolve_pretrained, save_pretrained)
from fastpixel.models.saving import SavePretrainedMixin  # noqa: F401
from fastpixel.saved_model import (CONFIG_NAME, FORMAT, FORMAT_VERSION, PRETRAINED_DIR,  # noqa: F401
                                   WEIGHTS_NAME, PretrainedFormatError, pretrained_names)


def load_checkpoint(
    path: str | os.PathLike, *, weights: str = "model", device: str | torch.device | None = None,
    backend: str | None = None,
) -> torch.nn.Module:
    """Deprecated: ``fastpixel.from_pretrained(path, weights=weights, ...)`` (the model of a training
    checkpoint, in eval mode); kept for one release."""
    warnings.warn("fastpixel.load_checkpoint is deprecated: use fastpixel.from_pretrained(path, weights=...) to "
                  "load the model of a checkpoint, or fastpixel.read_checkpoint(path) for the checkpoint's dict",
                  DeprecationWarning, stacklevel=2)
    return model_from_checkpoint(path, weights=weights, device=device, backend=backend)
