"""``model.save_pretrained(path)`` and ``model.push_to_hub(repo_id)`` on every fastpixel model.

The mixin only forwards to the saved-model format (:mod:`fastpixel.saved_model`) and the Hub
(:mod:`fastpixel.hub`), neither of which imports a model: no import cycle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastpixel import hub
from fastpixel.saved_model import write_saved_model


class SavePretrainedMixin:
    """``save_pretrained`` / ``push_to_hub`` methods for a module with a ``config`` dict."""

    def save_pretrained(self, path: str | os.PathLike, *, info: dict[str, Any] | None = None,
                        overwrite: bool = False) -> Path:
        """Write this model to the directory ``path``; see :func:`fastpixel.save_pretrained`."""
        return write_saved_model(self, path, info=info, overwrite=overwrite)

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        """Upload this model to the Hugging Face Hub; see :func:`fastpixel.push_to_hub`."""
        return hub.push_to_hub(self, repo_id, **kwargs)
