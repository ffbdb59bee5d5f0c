"""Train a model: ``fastpixel-train --preset cpu_tiny --run-dir runs/tiny`` (or ``python -m fastpixel.cli.train``).

A preset (fastpixel.presets) gives every setting; any flag overrides it (``--preset NAME --help``
shows that preset's values). The run directory gets ``config.json``, ``metrics.jsonl`` (train and
test NLL in nats/image and bits/dim), ``checkpoint.pt`` (atomic; ``--keep N`` keeps the last N),
``loss.png`` (bits/dim against steps) and ``samples/`` (a grid of samples at every evaluation).
``--resume`` continues from the checkpoint with the same step, optimizer, EMA, RNG state and data
order; SIGINT / SIGTERM save a checkpoint before exiting. Under ``torchrun --nproc-per-node N`` the
same code runs DistributedDataParallel.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from fastpixel import presets
from fastpixel.backend import BACKENDS
from fastpixel.cli.args import CommandError, Parser, int_at_least, number, resolve_device, run_command
from fastpixel.data import DATASETS
from fastpixel.data.datasets import BINARIZE
from fastpixel.models import MODELS
from fastpixel.training.config import TrainConfig
from fastpixel.training.from_config import train
from fastpixel.training.run_dir import check_run_dir
from fastpixel.training.schedule import SCHEDULES

PROG = "fastpixel-train"
MODEL_NAMES = sorted(set(MODELS) | {"multiscale"})


def build_parser(preset: str = "cpu_tiny") -> argparse.ArgumentParser:
    """The parser; each settings flag's help shows its value under ``preset``."""
    values = presets.resolve(preset, {}) if preset in presets.PRESETS else dict(presets.DEFAULTS)
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)

    def setting(group, flag: str, help: str = "", **kw) -> None:
        key = flag[2:].replace("-", "_")
        shown = f"{preset}: {values[key]}" if preset in presets.PRESETS else f"default: {values[key]}"
        group.add_argument(flag, help=f"{help} [{shown}]".strip(), **kw)

    p.add_argument("--preset", default="cpu_tiny", choices=sorted(presets.PRESETS), help="default: cpu_tiny")
    p.add_argument("--run-dir", default=None, help="where config, metrics and checkpoints go (default runs/<preset>)")
    p.add_argument("--resume", action="store_true", help="continue from <run-dir>/checkpoint.pt (an error if absent)")
    p.add_argument("--overwrite", action="store_true", help="start afresh in a run dir that holds a run (deletes it)")
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it is also off when not a TTY)")
    p.add_argument("--quiet", action="store_true", help="do not echo metric lines to stdout")
    g = p.add_argument_group(f"settings (each overrides the preset; [{preset}: value])")
    setting(g, "--model", choices=MODEL_NAMES)
    setting(g, "--hidden", "h; the residual stream has 2h features", type=int_at_least(1))
    setting(g, "--layers", type=int_at_least(0))
    setting(g, "--output-hidden", type=int_at_least(1))
    setting(g, "--skip", action=argparse.BooleanOptionalAction, default=None)
    setting(g, "--conditional", "class-conditional: num_classes from the data set's labels (its own class ids), "
            "every batch trained on its labels, test NLL -log p(x | y)", action=argparse.BooleanOptionalAction,
            default=None)
    setting(g, "--dataset", choices=DATASETS)
    setting(g, "--data-dir")
    setting(g, "--binarize", "8-bit grey sets only (builtin_mnist, mnist, fashion_mnist)", choices=BINARIZE)
    setting(g, "--binarize-seed", type=int_at_least(0))
    g.add_argument("--allow-pickle", action="store_const", const=True, default=None,
                   help="read CIFAR-10's python (pickle) version; unpickling runs code from the file")
    g.add_argument("--png-convert", action="store_const", const=True, default=None,
                   help="--dataset png: convert 16-bit grey, alpha and mixed colour modes instead of refusing them")
    setting(g, "--train-limit", "train on the first N images only", type=int_at_least(1))
    setting(g, "--test-limit", "evaluate on the first N test images only (not the protocol)", type=int_at_least(1))
    setting(g, "--batch-size", "global batch (split over processes)", type=int_at_least(1))
    setting(g, "--eval-batch-size", type=int_at_least(1))
    setting(g, "--steps", "total optimizer steps", type=int_at_least(1))
    setting(g, "--lr", "Adam learning rate (the schedule's peak)", type=number(0, low_open=True))
    setting(g, "--lr-schedule", "after the warmup: constant, cosine decay to 0, or step decay", choices=SCHEDULES)
    setting(g, "--warmup-steps", "linear warmup from lr/N over the first N steps", type=int_at_least(0))
    setting(g, "--lr-step-every", "step schedule: multiply the lr by --lr-gamma every N steps", type=int_at_least(1))
    setting(g, "--lr-gamma", "step schedule's factor", type=number(0, 1, low_open=True))
    setting(g, "--clip-grad", "max global gradient norm (0: off)", type=number(0))
    setting(g, "--ema", "EMA decay of the Polyak-averaged weights (0: off)", type=number(0, 1, high_open=True))
    setting(g, "--bf16", "bf16 autocast (CUDA only)", action=argparse.BooleanOptionalAction, default=None)
    setting(g, "--seed", "seeds torch, numpy and Python's random, and the data order", type=int_at_least(0))
    setting(g, "--log-every", type=int_at_least(1))
    setting(g, "--eval-every", "test NLL (and sample grids) every N steps (0: only at the end)", type=int_at_least(0))
    setting(g, "--checkpoint-every", type=int_at_least(1))
    setting(g, "--keep", "keep the last N checkpoints (checkpoint-<step>.pt)", type=int_at_least(1))
    setting(g, "--sample-grid", "images in the sample grid at each evaluation (0: none)", type=int_at_least(0, 256))
    setting(g, "--tensorboard", "also log to <run-dir>/tensorboard (pip install 'fastpixel[tensorboard]')",
            action="store_const", const=True, default=None)
    m = p.add_argument_group("Multi-Scale PixelRNN (--model multiscale)")
    setting(m, "--kind", "the networks' layers (default diagonal_bilstm)", choices=("row_lstm", "diagonal_bilstm"))
    setting(m, "--factor", "subsampling factor of the small image (default 2)", type=int_at_least(2))
    setting(m, "--small-hidden", "the small network's h (default --hidden)", type=int_at_least(1))
    setting(m, "--small-layers", "the small network's depth (default --layers)", type=int_at_least(1))
    setting(m, "--condition-features", "width of the upsampled conditioning map (default 2h)", type=int_at_least(1))
    return p


def _preset_in(argv: list[str]) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default="cpu_tiny")
    known, _ = pre.parse_known_args(argv)
    return known.preset


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The preset and the flags as a TrainConfig (checked there; a bad setting -> CommandError)."""
    overrides = {k: getattr(args, k, None) for k in presets.DEFAULTS}
    try:
        return TrainConfig.from_preset(
            args.preset, **overrides, run_dir=args.run_dir or os.path.join("runs", args.preset), resume=args.resume,
            overwrite=args.overwrite, backend=args.backend, device=args.device, progress=not args.no_progress,
            quiet=args.quiet)
    except ValueError as err:
        raise CommandError(str(err)) from None


def _preflight(config: TrainConfig) -> None:
    """Everything that can be checked before any data is read or any model built."""
    resolve_device(config.device)
    if config.tensorboard:
        from fastpixel.training.watch import require_tensorboard

        try:
            require_tensorboard()
        except ImportError as err:
            raise CommandError(f"--tensorboard: {err}") from None
    check_run_dir(config.run_dir, resume=config.resume, overwrite=config.overwrite)


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse ``argv``, check everything, train; return train()'s result."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_preset_in(argv)).parse_args(argv)
    config = config_from_args(args)
    _preflight(config)
    return train(config)


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``fastpixel-train``): exit 0 on success, one-line errors otherwise."""
    run_command(PROG, lambda: run(argv))


if __name__ == "__main__":
    main()
