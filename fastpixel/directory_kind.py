"""What a directory holds, told by its contents: a training run, a saved model, someone else's files.

A run directory (``fastpixel-train --run-dir``, ``fit(run_dir=)``) and a saved model
(``save_pretrained``) both keep a ``config.json``; they are told apart by it and by their other files:

* a run: ``"format": "fastpixel-run"`` in config.json (written since issue 18), or a
  ``checkpoint.pt`` / ``checkpoint-<step>.pt`` / ``metrics.jsonl``, or an older run's config.json
  (settings such as ``"steps"`` and a model name, no ``"format"``);
* a saved model: ``"format": "fastpixel-pretrained"`` in config.json, or a ``model.safetensors``;
* foreign: a config.json that is neither (a user's own file).

Writing one kind into a directory of the other is refused (:func:`refuse_other_kind`) with one line
naming the directory and what is in it. Imports no model and nothing of training.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

RUN_FORMAT = "fastpixel-run"
SAVED_MODEL_FORMAT = "fastpixel-pretrained"  # fastpixel.saved_model.FORMAT (kept equal by a test)
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
RUN_FILES = ("checkpoint.pt", "metrics.jsonl")
_NUMBERED = re.compile(r"^checkpoint-(\d+)\.pt$")

RUN, SAVED_MODEL, FOREIGN, EMPTY = "a training run", "a saved model", "files fastpixel did not write", "nothing of ours"


class DirectoryKindError(FileExistsError):
    """A directory holds one kind of fastpixel output and another kind was to be written into it."""


@dataclass(frozen=True)
class Contents:
    """kind: RUN, SAVED_MODEL, FOREIGN (a config.json of someone else's) or EMPTY; files: the names
    that show it."""

    kind: str
    files: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.kind} ({', '.join(self.files)})" if self.files else self.kind


def _config_kind(path: Path) -> str:
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return FOREIGN
    if not isinstance(document, dict):
        return FOREIGN
    if document.get("format") == RUN_FORMAT:
        return RUN
    if document.get("format") == SAVED_MODEL_FORMAT:
        return SAVED_MODEL
    if "format" not in document and isinstance(document.get("model"), str) and "steps" in document:
        return RUN  # a run directory written before its format was recorded
    return FOREIGN


def directory_contents(path: str | os.PathLike) -> Contents:
    """What ``path`` holds (EMPTY also for a missing directory or one of unrelated files only)."""
    path = Path(path)
    if not path.is_dir():
        return Contents(EMPTY, ())
    run = [n for n in RUN_FILES if (path / n).exists()]
    run += sorted(p.name for p in path.iterdir() if _NUMBERED.match(p.name))
    saved = [WEIGHTS_NAME] if (path / WEIGHTS_NAME).exists() else []
    config_kind = _config_kind(path / CONFIG_NAME) if (path / CONFIG_NAME).is_file() else None
    if config_kind == RUN or (run and config_kind != SAVED_MODEL):
        return Contents(RUN, tuple(([CONFIG_NAME] if config_kind == RUN else []) + run))
    if config_kind == SAVED_MODEL or saved:
        return Contents(SAVED_MODEL, tuple(([CONFIG_NAME] if config_kind == SAVED_MODEL else []) + saved))
    if config_kind == FOREIGN:
        return Contents(FOREIGN, (CONFIG_NAME,))
    return Contents(EMPTY, ())


def refuse_other_kind(path: str | os.PathLike, writing: str, *, label: str) -> Contents:
    """DirectoryKindError when ``path`` holds the other kind of fastpixel output than ``writing``
    (RUN or SAVED_MODEL); return what it holds."""
    contents = directory_contents(path)
    if contents.kind in (RUN, SAVED_MODEL) and contents.kind != writing:
        raise DirectoryKindError(f"{label}: {path} holds {contents.describe()}; refusing to write {writing} "
                                 f"into it (choose another directory)")
    return contents
