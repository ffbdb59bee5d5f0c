"""Draw samples or complete occluded images from a trained checkpoint.

    python -m fastpixel.sample --checkpoint RUN/checkpoint.pt --num 64 --out samples.png
    python -m fastpixel.sample --checkpoint RUN/checkpoint.pt --complete --num 8 --out completions.png

Sampling writes a PNG grid of the ``--num`` images and, beside it, ``samples.npz`` with the raw
integers (``images``, int (N, C, H, W), and ``levels``). ``--complete`` occludes part of ``--num``
images (``--occlude bottom|right|center``; from ``--images FILE.npz`` or the checkpoint's data set,
test split), fills the occluded sub-pixels ``--per-image`` times, and writes one row per image:
occluded | completions | original (npz: ``originals``, ``known``, ``completions`` (N, K, C, H, W)).
A progress bar runs over rows. ``--method naive`` reruns the network per sub-pixel (slow; the
reference). The same ``--seed`` gives the same images with either method.

This module is also callable: ``fastpixel.sample(model, num, height=..., width=...)`` works whether
``fastpixel.sample`` is the function :func:`fastpixel.sampling.sample` or, once this module has been
imported (which rebinds the package attribute to the module), this module: its class forwards
calls to that function.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np
import torch

from fastpixel import sampling as _sampling
from fastpixel.backend import BACKENDS, use_backend

# Image size of the data sets fastpixel.data reads (the checkpoint records the data set, not the size).
DATASET_SIZES = {
    "builtin_mnist": 28, "mnist": 28, "fashion_mnist": 28, "binarized_mnist": 28,
    "cifar10": 32, "imagenet32": 32, "imagenet64": 64,
}
OCCLUSIONS = ("bottom", "right", "center")


def load_model(path: str | Path, *, weights: str = "model", device: str | torch.device = "cpu"):
    """(model, checkpoint) from a checkpoint written by ``fastpixel.train``; weights "model" or "ema"."""
    from fastpixel.checkpoint import load_checkpoint
    from fastpixel.models import create_model

    ckpt = load_checkpoint(path)
    model = create_model(**ckpt["model_config"])
    if weights == "ema":
        if ckpt.get("ema") is None:
            raise SystemExit(f"{path}: no EMA weights (the run was trained without --ema)")
        model.load_state_dict({k[len("module."):]: v for k, v in ckpt["ema"].items() if k.startswith("module.")})
    else:
        model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt


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


def to_rgb8(images: torch.Tensor, levels: int, known: torch.Tensor | None = None) -> np.ndarray:
    """int (N, C, H, W) in [0, levels) -> uint8 (N, H, W, 3); unknown sub-pixels drawn mid-grey-blue."""
    x = images.detach().cpu().double() * (255.0 / (levels - 1))
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = x.round().clamp(0, 255).to(torch.uint8)
    if known is not None:
        hidden = ~torch.broadcast_to(known.cpu(), images.shape).all(dim=1)  # (N, H, W)
        x = x.permute(0, 2, 3, 1).clone()
        x[hidden] = torch.tensor([90, 90, 140], dtype=torch.uint8)
        return x.numpy()
    return x.permute(0, 2, 3, 1).numpy()


def grid(tiles: np.ndarray, columns: int, pad: int = 1) -> np.ndarray:
    """uint8 (N, H, W, 3) -> one uint8 image of the tiles in rows of ``columns``, ``pad`` px apart."""
    n, h, w, _ = tiles.shape
    rows = -(-n // columns)
    out = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for k in range(n):
        r, c = divmod(k, columns)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = tiles[k]
    return out


def save_png(path: Path, image: np.ndarray, scale: int = 1) -> None:
    """Write uint8 (H, W, 3) as a PNG, each pixel drawn as a ``scale`` x ``scale`` block."""
    from PIL import Image

    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    Image.fromarray(image).save(path)


def _source_images(args, ckpt: dict, model) -> torch.Tensor:
    """The images to occlude: --images FILE.npz, else the checkpoint's data set (test split)."""
    if args.images:
        with np.load(args.images) as data:
            key = "images" if "images" in data else data.files[0]
            images = torch.from_numpy(np.asarray(data[key])).long()
    else:
        from fastpixel.data import binarize_dynamic, load_dataset

        cfg = ckpt.get("train_config") or {}
        if "dataset" not in cfg:
            raise SystemExit(f"{args.checkpoint}: records no data set; pass --images FILE.npz")
        data = load_dataset(cfg["dataset"], args.split, data_dir=cfg.get("data_dir"),
                            binarize=cfg.get("binarize", "none"), binarize_seed=cfg.get("binarize_seed", 0),
                            allow_pickle=cfg.get("allow_pickle", False), limit=args.num)
        images = data.images
        if data.dynamic:
            images = binarize_dynamic(images, torch.Generator().manual_seed(args.seed))
        images = images.long()
    if images.ndim == 3:
        images = images[:, None]
    if images.shape[1] != model.channels or images.min() < 0 or images.max() >= model.levels:
        raise SystemExit(f"images of shape {tuple(images.shape)} with values in [{int(images.min())}, "
                         f"{int(images.max())}] do not fit a model of {model.channels} channel(s), "
                         f"{model.levels} levels")
    return images[: args.num]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fastpixel.sample", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by fastpixel.train")
    p.add_argument("--num", type=int, default=64, help="images to sample (--complete: images to complete)")
    p.add_argument("--out", default="samples.png", help="PNG grid; the integers go to the same name .npz")
    p.add_argument("--height", type=int, default=None, help="default: the training data set's size")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=_sampling.METHODS, default="cached")
    p.add_argument("--batch-size", type=int, default=64, help="images generated at once")
    p.add_argument("--weights", choices=("model", "ema"), default="model")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="ops backend of the model's forward passes")
    p.add_argument("--columns", type=int, default=None, help="grid columns (default: about sqrt(num))")
    p.add_argument("--scale", type=int, default=4, help="draw each pixel as a SCALE x SCALE block in the PNG")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it is off anyway when stderr is not a terminal)")
    c = p.add_argument_group("completion")
    c.add_argument("--complete", action="store_true", help="complete occluded images instead of sampling")
    c.add_argument("--occlude", choices=OCCLUSIONS, default="bottom", help="the part hidden from the model")
    c.add_argument("--per-image", type=int, default=3, help="completions drawn per image")
    c.add_argument("--images", default=None, help=".npz of integer images (N, C, H, W) (default: the data set)")
    c.add_argument("--split", default="test", help="data set split to take images from (default test)")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    for label in ("num", "batch_size", "per_image", "scale"):
        if getattr(args, label) < 1:
            raise SystemExit(f"--{label.replace('_', '-')} must be >= 1")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, ckpt = load_model(args.checkpoint, weights=args.weights, device=device)
    generator = torch.Generator().manual_seed(args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    options = dict(temperature=args.temperature, generator=generator, method=args.method,                    progress=not args.no_progress and sys.stderr.isatty())
    with use_backend(args.backend):
        if args.complete:
            originals = _source_images(args, ckpt, model)
            n, _, height, width = originals.shape
            known = occlusion_mask(height, width, args.occlude)
            repeated = originals.repeat_interleave(args.per_image, dim=0)  # image k's completions are adjacent
            parts = [_sampling.complete(model, chunk.to(device), known, **options).cpu()
                     for chunk in repeated.split(args.batch_size)]
            completions = torch.cat(parts).view(n, args.per_image, *originals.shape[1:])
            rows = [to_rgb8(originals, model.levels, known), *(to_rgb8(completions[:, k], model.levels)
                    for k in range(args.per_image)), to_rgb8(originals, model.levels)]
            tiles = np.stack(rows, axis=1).reshape(-1, height, width, 3)  # per image: occluded | completions | original
            save_png(out, grid(tiles, columns=args.per_image + 2), args.scale)
            np.savez_compressed(out.with_suffix(".npz"), originals=originals.numpy(), known=known.numpy(),
                                completions=completions.numpy(), levels=model.levels)
            result = {"png": str(out), "npz": str(out.with_suffix(".npz")), "completions": completions}
        else:
            cfg = ckpt.get("train_config") or {}
            default = DATASET_SIZES.get(cfg.get("dataset"), 28 if model.channels == 1 else 32)
            height, width = args.height or default, args.width or args.height or default
            parts = [_sampling.sample(model, min(args.batch_size, args.num - k), height=height, width=width,
                                      **options).cpu() for k in range(0, args.num, args.batch_size)]
            images = torch.cat(parts)
            columns = args.columns or max(1, int(round(args.num ** 0.5)))
            save_png(out, grid(to_rgb8(images, model.levels), columns=columns), args.scale)
            np.savez_compressed(out.with_suffix(".npz"), images=images.numpy(), levels=model.levels)
            result = {"png": str(out), "npz": str(out.with_suffix(".npz")), "images": images}
    print(f"wrote {result['png']} and {result['npz']}")
    return result


class _CallableModule(types.ModuleType):
    """This module's class: calling the module calls :func:`fastpixel.sampling.sample`."""

    def __call__(self, *args, **kwargs):
        return _sampling.sample(*args, **kwargs)


sample = _sampling.sample
complete = _sampling.complete

if __name__ == "__main__":
    main()
else:
    sys.modules[__name__].__class__ = _CallableModule
