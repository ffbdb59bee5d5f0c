"""Draw samples or complete occluded images from a trained model.

    fastpixel-sample --checkpoint RUN/checkpoint.pt --num 64 --out runs/samples.png
    fastpixel-sample --pretrained digits --num 16
    fastpixel-sample --checkpoint RUN/checkpoint.pt --complete --num 8 --out runs/completions.png

Sampling writes a PNG grid of the ``--num`` images and, beside it, the same name with ``.npz``
holding the raw integers (``images``, int (N, C, H, W), and ``levels``). The default size is the
training images' size. ``--complete`` occludes part of ``--num`` images (``--occlude
bottom|right|center``; from ``--images FILE.npz|.npy`` or the model's data set, test split), fills the
occluded sub-pixels ``--per-image`` times, and writes one row per image: occluded | completions |
original (npz: ``originals``, ``known``, ``completions`` (N, K, C, H, W)). ``--method naive`` reruns
the network per sub-pixel (slow; the reference). The same ``--seed`` gives the same images with either
method. Outputs default under ``runs/``; an existing PNG or npz is replaced only with ``--overwrite``,
an input (``--images``, ``--checkpoint``) never; both land atomically. A class-conditional model needs
``--label N`` (every image of class N) or ``--labels 0,1,...`` (equal consecutive blocks; by default 10 images
per class id, one row each): ``fastpixel-sample --pretrained digits-conditional --labels 0,1,2,3,4,5,6,7,8,9``.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastpixel import sampling
from fastpixel.atomic import write_bytes_atomically
from fastpixel.backend import BACKENDS, check_backend_for_device
from fastpixel.cli.args import MAX_PNG_SIDE, CommandError, Parser, from_rule, resolve_device, run_command
from fastpixel.cli.model_source import LoadedModel, add_model_source, load_model_source
from fastpixel.output_paths import check_output_file
from fastpixel.data.image_file import read_image_file
from fastpixel.image_grid import default_columns, grid, grid_shape, save_png, to_rgb8

PROG = "fastpixel-sample"
DEFAULT_NUM = 64
OCCLUSIONS = ("bottom", "right", "center")


def occlusion_mask(height: int, width: int, kind: str) -> torch.Tensor:
    """bool (1, 1, H, W), True where known: the top half ("bottom" occluded), the left half
    ("right"), or everything but the central quarter ("center")."""
    known = torch.ones(height, width, dtype=torch.bool)
    if kind == "bottom":
        known[height // 2 :] = False
    elif kind == "right":
        known[:, width // 2 :] = False
    elif kind == "center":
        known[height // 4 : height - height // 4, width // 4 : width - width // 4] = False
    else:
        raise ValueError(f"occlusion must be one of {OCCLUSIONS}, got {kind!r}")
    return known[None, None]


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_source(p)
    p.add_argument("--num", type=from_rule("num"), default=None,
                   help=f"images to sample (default {DEFAULT_NUM}, or 10 per class id with --labels; --complete: "
                        f"images to complete, default all of --images up to {DEFAULT_NUM})")
    p.add_argument("--out", default="runs/samples.png",
                   help="PNG grid (a name without extension gets .png); the integers go to the same name .npz")
    p.add_argument("--height", type=from_rule("height"), default=None, help="default: the training images' height")
    p.add_argument("--width", type=from_rule("width"), default=None,
                   help="default: the training images' width (or --height when only that is given)")
    p.add_argument("--temperature", type=from_rule("temperature"), default=1.0,
                   help="divides the logits; 0: greedy (argmax)")
    p.add_argument("--seed", type=from_rule("seed"), default=0)
    p.add_argument("--method", choices=sampling.METHODS, default="cached")
    p.add_argument("--batch-size", type=from_rule("sample_batch_size"), default=64, help="images generated at once")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--threads", type=from_rule("threads"), default=1,
                   help="torch CPU threads (default 1: the cached sampler's per-pixel steps are small; more threads "
                        "help only --method naive with a large model)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="ops backend of the model's forward passes")
    p.add_argument("--columns", type=from_rule("columns"), default=None, help="grid columns (default: about sqrt(num))")
    p.add_argument("--scale", type=from_rule("scale"), default=4,
                   help="draw each pixel as a SCALE x SCALE block in the PNG (at most 64)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (off anyway when stderr is not a terminal)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the PNG and the npz if they exist (refused otherwise; an input is never replaced)")
    k = p.add_argument_group("class-conditional models (trained with --conditional, or digits-conditional)")
    k.add_argument("--label", type=from_rule("label"), default=None, help="every image of this class id")
    k.add_argument("--labels", type=class_list, default=None,
                   help="comma-separated class ids, e.g. 0,1,2: --num split into equal consecutive blocks, one "
                        "per id (default --num: 10 per id, --columns 10: one row per class)")
    c = p.add_argument_group("completion")
    c.add_argument("--complete", action="store_true", help="complete occluded images instead of sampling")
    c.add_argument("--occlude", choices=OCCLUSIONS, default="bottom", help="the part hidden from the model")
    c.add_argument("--per-image", type=from_rule("per_image"), default=3, help="completions drawn per image")
    c.add_argument("--images", default=None, help=".npz or .npy of integer images (N, C, H, W) or (N, H, W), or a "
                                                  ".png (default: the model's data set)")
    c.add_argument("--split", default="test", help="data set split to take images from (default test)")
    return p


def output_path(text: str) -> Path:
    """``--out``: a .png path (``name`` -> ``name.png``); any other extension is refused."""
    out = Path(text)
    if out.name in ("", ".", ".."):
        raise CommandError(f"--out {text!r}: expected a file name such as samples.png")
    if out.suffix == "":
        return out.with_name(out.name + ".png")
    if out.suffix.lower() != ".png":
        raise CommandError(f"--out {text!r}: the grid is written as PNG; give a name ending in .png "
                           f"(the integers go beside it as {out.with_suffix('.npz').name})")
    if out.exists() and out.is_dir():
        raise CommandError(f"--out {text!r} is a folder; expected a file name such as {out / 'samples.png'}")
    return out


def read_images_file(path: str) -> torch.Tensor:
    """``--images``: int64 (N, C, H, W) from an .npz (key "images", else its only array), an .npy or a
    .png (:func:`fastpixel.data.image_file.read_image_file`; DataFileError naming the file)."""
    array = read_image_file(path)
    if array.ndim == 3:
        array = array[:, None]
    return torch.from_numpy(array.astype(np.int64))


def class_list(text: str) -> list[int]:
    """``--labels 0,1,2`` -> [0, 1, 2] (non-negative ints)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated class ids such as 0,1,2; got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated class ids >= 0 such as 0,1,2; got {text!r}")
    return values


def class_labels(args: argparse.Namespace, model: torch.nn.Module, num: int, label: str) -> torch.Tensor | None:
    """(num,) class ids for ``--label`` / ``--labels`` (None for an unconditional model); CommandError
    when a conditional model gets none, an unconditional one gets some, or an id is out of range."""
    num_classes = getattr(model, "num_classes", None)
    if args.label is not None and args.labels is not None:
        raise CommandError("pass --label or --labels, not both")
    if num_classes is None:
        if args.label is not None or args.labels is not None:
            raise CommandError(f"{label} is not class-conditional: it takes no --label / --labels")
        return None
    if args.label is None and args.labels is None:
        raise CommandError(f"{label} is class-conditional ({num_classes} classes, ids 0..{num_classes - 1}): "
                           "pass --label N or --labels 0,1,...")
    ids = [args.label] if args.label is not None else args.labels
    bad = [v for v in ids if v >= num_classes]
    if bad:
        raise CommandError(f"class id(s) {bad} out of range: {label} has {num_classes} classes, ids 0..{num_classes - 1}")
    return torch.tensor(ids)[torch.arange(num) * len(ids) // num]


def _check_images(images: torch.Tensor, model: torch.nn.Module, where: str) -> torch.Tensor:
    if images.shape[1] != model.channels or int(images.min()) < 0 or int(images.max()) >= model.levels:
        raise CommandError(f"{where}: images of shape {tuple(images.shape)} with values in [{int(images.min())}, "
                           f"{int(images.max())}] do not fit a model of {model.channels} channel(s), "
                           f"{model.levels} levels")
    return images


def _first(images: torch.Tensor, args: argparse.Namespace) -> torch.Tensor:
    """The first ``--num`` of ``images``; an explicit --num beyond them is refused (never silently fewer)."""
    if args.num_given and args.num > images.shape[0]:
        raise CommandError(f"--num {args.num}: --images {args.images} holds {images.shape[0]} images; ask for at "
                           f"most {images.shape[0]} (or leave --num out: all of them, up to {DEFAULT_NUM})")
    return images[: args.num]


def _source_images(args: argparse.Namespace, loaded: LoadedModel) -> torch.Tensor:
    """The images to occlude: --images FILE, else the model's data set (``--split``)."""
    if args.images:
        return _first(_check_images(read_images_file(args.images), loaded.model, f"--images {args.images}"), args)
    from fastpixel.data import binarize_dynamic, load_dataset

    cfg = loaded.data
    if "dataset" not in cfg:
        raise CommandError(f"{loaded.label}: records no data set; pass --images FILE.npz")
    data = load_dataset(cfg["dataset"], args.split, data_dir=cfg.get("data_dir"), binarize=cfg.get("binarize", "none"),
                        binarize_seed=cfg.get("binarize_seed", 0), allow_pickle=cfg.get("allow_pickle", False),
                        limit=args.num if args.num_given else None)  # an explicit --num: exactly, or refused
    images = data.images[: args.num]
    if data.dynamic:
        images = binarize_dynamic(images, torch.Generator().manual_seed(args.seed))
    return _check_images(images.long(), loaded.model, f"{cfg['dataset']} {args.split!r}")


def _check_png_size(rows: int, cols: int, scale: int) -> None:
    if max(rows, cols) * scale > MAX_PNG_SIDE:
        raise CommandError(f"the PNG would be {rows * scale} x {cols * scale} pixels (over {MAX_PNG_SIDE} on a side): "
                           f"lower --scale, --num or the image size")


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse and check ``argv``, sample (or complete), write the PNG and the npz; return what was written."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)  # the command owns its process; the API never does this
    args.num_given = args.num is not None  # an explicit --num is honoured exactly or refused
    if args.num is None:  # 10 per class id with --labels (one row per class), else DEFAULT_NUM
        args.num = 10 * len(args.labels) if args.labels and not args.complete else DEFAULT_NUM
        if args.labels and args.columns is None and not args.complete:
            args.columns = 10
    out = output_path(args.out)
    device = resolve_device(args.device)
    if args.images is not None and not args.complete:
        raise CommandError("--images applies to --complete only")
    npz = out.with_suffix(".npz")
    inputs = [("--images", args.images), ("--checkpoint", args.checkpoint)]
    for path in (out, npz):  # before any work: neither replaces an input, nor a file unasked, nor fails to land
        check_output_file(path, overwrite=args.overwrite, label="--out", inputs=inputs)
    check_backend_for_device(args.backend, device, label="--backend")
    if args.backend == "triton" and args.method == "cached":
        raise CommandError("--backend triton applies to --method naive: the cached sampler runs its own per-pixel "
                           "steps in PyTorch (leave --backend out, or pass --method naive)")
    originals = read_images_file(args.images) if args.images and args.complete else None
    loaded = load_model_source(args, device)
    model = loaded.model
    labels = class_labels(args, model, args.num, loaded.label)
    if args.complete:
        originals = _source_images(args, loaded) if originals is None else \
            _first(_check_images(originals, model, f"--images {args.images}"), args)
        n, _, height, width = originals.shape
        _check_png_size(*grid_shape(n, height, width, args.per_image + 2), args.scale)
    else:
        default = loaded.default_size()
        if (args.height is None or args.width is None) and default is None and args.height is None:
            raise CommandError(f"{loaded.label}: records no image size; pass --height and --width")
        height = args.height or default[0]
        width = args.width or (args.height if args.height else default[1])
        columns = args.columns or default_columns(args.num)
        _check_png_size(*grid_shape(args.num, height, width, columns), args.scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    options = dict(temperature=args.temperature, generator=torch.Generator().manual_seed(args.seed),
                   method=args.method, progress=not args.no_progress and sys.stderr.isatty())
    model.to_backend(args.backend)
    if args.complete:
        known = occlusion_mask(height, width, args.occlude)
        repeated = originals.repeat_interleave(args.per_image, dim=0)  # image k's completions are adjacent
        repeated_labels = None if labels is None else labels[:n].repeat_interleave(args.per_image)
        parts = [sampling.complete(model, chunk.to(device), known.to(device), **options,
                                   labels=None if repeated_labels is None else
                                   repeated_labels[k * args.batch_size:(k + 1) * args.batch_size]).cpu()
                 for k, chunk in enumerate(repeated.split(args.batch_size))]
        completions = torch.cat(parts).view(n, args.per_image, *originals.shape[1:])
        rows = [to_rgb8(originals, model.levels, known), *(to_rgb8(completions[:, k], model.levels)
                for k in range(args.per_image)), to_rgb8(originals, model.levels)]
        tiles = np.stack(rows, axis=1).reshape(-1, height, width, 3)  # per image: occluded | completions | original
        save_png(out, grid(tiles, columns=args.per_image + 2), args.scale)
        save_npz(npz, originals=originals.numpy(), known=known.numpy(), completions=completions.numpy(),
                 levels=model.levels)
        result = {"png": str(out), "npz": str(npz), "completions": completions}
    else:
        parts = [sampling.sample(model, min(args.batch_size, args.num - k), height=height, width=width, **options,
                                 labels=None if labels is None else labels[k:k + args.batch_size]).cpu()
                 for k in range(0, args.num, args.batch_size)]
        images = torch.cat(parts)
        save_png(out, grid(to_rgb8(images, model.levels), columns=columns), args.scale)
        extra = {} if labels is None else {"labels": labels.numpy()}
        save_npz(npz, images=images.numpy(), levels=model.levels, **extra)
        result = {"png": str(out), "npz": str(npz), "images": images}
    print(f"wrote {result['png']} and {result['npz']}")
    return result


def save_npz(path: Path, **arrays) -> None:
    """``np.savez_compressed`` of ``arrays`` to ``path``, atomically (a full disk: DiskFullError)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes_atomically(path, buffer.getbuffer())


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``fastpixel-sample``): exit 0 on success, one-line errors otherwise."""
    run_command(PROG, lambda: run(argv))


if __name__ == "__main__":
    main()
