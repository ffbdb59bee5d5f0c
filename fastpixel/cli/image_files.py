"""Images in and out of the compression commands: what ``fastpixel-compress`` reads, what
``fastpixel-decompress`` writes, and the model they are read for.

Inputs (``read_images``), always brought to integers (N, C, H, W) in [0, levels) of the model or refused:
* ``DATASET:SPLIT`` (e.g. ``builtin_mnist:test``): a data set of fastpixel.data, binarized the way the
  model records it was trained (``binarize`` / ``binarize_seed`` of its info; fixed, seed 0 otherwise)
  when the model has 2 levels and the data set is 8-bit grey;
* ``.npy`` / ``.npz`` (the array ``images``, or the only array): integers (N, C, H, W) or (N, H, W)
  already in [0, levels);
* a PNG file or a folder of PNGs (all one size): 8-bit values on the model's level grid
  v = round(k * 255 / (levels - 1)) (a 1-bit PNG is 0/255: levels 0/1), as ``fastpixel-decompress``
  writes them.
Outputs (``write_images``): ``FILE.npz`` (``images`` uint8 (N, C, H, W), ``levels``), ``FILE.npy``, or a
folder of PNGs ``000000.png`` ... (1-bit for 2 levels), written under a temporary name, fsynced and renamed
(:func:`fastpixel.atomic.write_atomically`).
"""

from __future__ import annotations

import argparse
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from fastpixel.atomic import write_atomically
from fastpixel.cli.args import CommandError, from_rule
from fastpixel.data import DATASETS, load_dataset, read_png, read_png_folder
from fastpixel.data.datasets import GREY_8BIT

ARRAY_SUFFIXES = (".npy", ".npz")


def add_shared_arguments(p: argparse.ArgumentParser, *, model_required: bool, pretrained_help: str) -> None:
    """The arguments fastpixel-compress and fastpixel-decompress share: the model (``--pretrained`` /
    ``--model``, one of them; ``model_required``: one must be given), ``--overwrite``, ``--device``,
    ``--threads``, ``--quiet``."""
    source = p.add_mutually_exclusive_group(required=model_required)
    source.add_argument("--pretrained", metavar="NAME", help=pretrained_help)
    source.add_argument("--model", metavar="PATH", help="a save_pretrained folder or a fastpixel-train checkpoint.pt")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    p.add_argument("--device", default="cpu",
                   help="cpu (default), cuda or cuda:N; a stream decodes on the kind it was coded on")
    p.add_argument("--threads", type=from_rule("threads"), default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def load_model(pretrained: str | None, model_path: str | None,
               device: torch.device) -> tuple[torch.nn.Module, str | None]:
    """The model of ``--pretrained NAME`` or ``--model PATH`` (a save_pretrained folder or a checkpoint .pt),
    in eval mode on ``device``, and the name to record (a shipped or hf:// name, else None)."""
    import fastpixel

    if pretrained is not None:
        model = fastpixel.from_pretrained(pretrained, device=device)
        bare = os.sep not in pretrained and "/" not in pretrained and not pretrained.startswith(".")
        name = pretrained if pretrained.startswith("hf://") or (bare and not Path(pretrained).is_dir()) else None
        return model.eval(), name
    path = Path(model_path)
    if path.is_file():
        return fastpixel.from_pretrained(path, device=device).eval(), None
    if path.is_dir():
        return fastpixel.from_pretrained(path, device=device).eval(), None
    raise CommandError(f"--model {model_path}: no such file or folder (a folder written by save_pretrained, or a "
                       "checkpoint.pt written by fastpixel-train)")


def read_images(spec: str, model: torch.nn.Module, *, data_dir: str | None = None,
                limit: int | None = None) -> np.ndarray:
    """``spec`` (see the module doc) -> uint8 (N, C, H, W) in [0, model.levels)."""
    levels, channels = model.levels, model.channels
    path = Path(spec)
    name, colon, split = spec.partition(":")
    if colon and name in DATASETS and not path.exists():
        images = _dataset(name, split, model, data_dir, limit)
    elif path.suffix.lower() in ARRAY_SUFFIXES:
        images = _array(path, channels)[:limit]
    elif path.is_dir() or path.suffix.lower() == ".png":
        if path.is_dir():
            pixels = read_png_folder(path, channels=channels, limit=limit)
        else:
            pixels = read_png(path, channels=channels)[None]
        images = _from_png_values(pixels, levels, spec)
    elif not path.exists():
        raise CommandError(f"{spec}: no such file or folder (expected PNG file or folder, .npy/.npz, or DATASET:SPLIT "
                           f"with DATASET one of {', '.join(DATASETS)})")
    else:
        raise CommandError(f"{spec}: expected a PNG file or folder, a .npy/.npz array, or DATASET:SPLIT")
    if images.shape[1] != channels:
        raise CommandError(f"{spec}: {images.shape[1]}-channel images, but the model takes {channels} channel(s)")
    low, high = int(images.min()), int(images.max())
    if low < 0 or high >= levels:
        hint = " (8-bit data: binarize it first, or use a 256-level model)" if high > 1 and levels == 2 else ""
        raise CommandError(f"{spec}: values in [{low}, {high}], but the model takes {levels} levels, "
                           f"[0, {levels - 1}]{hint}")
    return images.astype(np.uint8)


def _dataset(name: str, split: str, model: torch.nn.Module, data_dir: str | None, limit: int | None) -> np.ndarray:
    info = dict(getattr(model, "pretrained_info", None) or {})
    binarize = "none"
    if model.levels == 2 and name in GREY_8BIT:
        binarize = "fixed"  # a dynamic training binarization scores its test split with the fixed draw too
    data = load_dataset(name, split, data_dir=data_dir or info.get("data_dir"), binarize=binarize,
                        binarize_seed=int(info.get("binarize_seed", 0) or 0), limit=limit)
    if data.levels != model.levels:
        raise CommandError(f"{name}:{split} has {data.levels} levels, the model {model.levels}: the data do not fit "
                           "the model")
    return data.images.numpy()


def _array(path: Path, channels: int) -> np.ndarray:
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                keys = list(loaded.keys())
                if "images" in keys:
                    key = "images"
                elif len(keys) == 1:
                    key = keys[0]
                else:
                    raise CommandError(f"{path}: holds {keys}; expected an array named 'images' or a single array")
                array = np.asarray(loaded[key])
        else:
            array = np.asarray(loaded)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise CommandError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
    if array.dtype.kind not in "iub":
        raise CommandError(f"{path}: a {array.dtype} array; expected integers in [0, levels) "
                           "(quantise float pixels first)")
    if array.ndim == 3 and channels == 1:
        array = array[:, None]
    if array.ndim != 4 or 0 in array.shape:
        grey = " or (N, H, W)" if channels == 1 else ""
        raise CommandError(f"{path}: shape {array.shape}; expected (N, C, H, W){grey}")
    return array


def level_grid(levels: int) -> np.ndarray:
    """The 8-bit value of each level: round(k * 255 / (levels - 1)), k = 0 .. levels-1 (distinct)."""
    return np.round(np.arange(levels) * 255.0 / (levels - 1)).astype(np.uint8)


def _from_png_values(pixels: np.ndarray, levels: int, spec: str) -> np.ndarray:
    if levels == 256:
        return pixels
    grid = level_grid(levels)
    lookup = np.full(256, -1, dtype=np.int16)
    lookup[grid] = np.arange(levels)
    values = lookup[pixels]
    if (values < 0).any():
        off = sorted(set(np.unique(pixels)) - set(grid.tolist()))[:6]
        raise CommandError(f"{spec}: 8-bit values such as {off} are not on the model's {levels}-level grid "
                           f"({grid.tolist()[:6]}{' ...' if levels > 6 else ''}); quantise the images to {levels} "
                           "levels first")
    return values.astype(np.uint8)


def check_output(path: Path, overwrite: bool, *, folder: bool) -> None:
    """Refuse to replace an existing output without ``--overwrite`` (or a folder by a file, and back)."""
    if not path.exists():
        return
    if not overwrite:
        raise CommandError(f"{path}: exists; pass --overwrite to replace it")
    if path.is_dir() != folder:
        kind = "folder" if path.is_dir() else "file"
        wanted = "folder" if folder else "file"
        raise CommandError(f"{path}: exists and is a {kind}; --overwrite replaces a {wanted} only")


def write_images(path: Path, chunks: list[np.ndarray], levels: int, *, overwrite: bool = True) -> int:
    """Write decoded images (a list of uint8 (n, C, H, W)) to ``path`` (see the module doc); returns the count.

    Atomically (:func:`fastpixel.atomic.write_atomically`); ``overwrite=False`` never replaces an existing ``path``."""
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        if len({c.shape[1:] for c in chunks}) > 1:
            raise CommandError(f"{path}: the stream holds images of several sizes; decompress it to a folder of PNGs")
        images = np.concatenate(chunks)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, images=images, levels=np.int64(levels)) if suffix == ".npz" else np.save(f, images)

        write_atomically(path, write, overwrite=overwrite)
        return len(images)
    return _write_pngs(path, chunks, levels, overwrite)


def _write_pngs(folder: Path, chunks: list[np.ndarray], levels: int, overwrite: bool) -> int:
    from PIL import Image

    grid = level_grid(levels)

    def write(tmp: Path) -> None:
        tmp.mkdir()
        index = 0
        for chunk in chunks:
            for image in chunk:
                values = grid[image]  # (C, H, W) uint8
                if image.shape[0] == 3:
                    picture = Image.fromarray(np.ascontiguousarray(values.transpose(1, 2, 0)), "RGB")
                else:
                    picture = Image.fromarray(values[0], "L")
                    if levels == 2:
                        picture = picture.convert("1")  # 1-bit PNG: exactly 0 / 255
                picture.save(tmp / f"{index:06d}.png", optimize=True)
                index += 1

    write_atomically(folder, write, overwrite=overwrite)
    return sum(len(c) for c in chunks)
