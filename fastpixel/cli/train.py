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
import json
import os
import sys
from typing import Any

from pathlib import Path

from fastpixel import presets
from fastpixel.backend import BACKENDS, check_backend_for_device
from fastpixel.checkpoint import FILENAME, read_checkpoint
from fastpixel.cli.args import CommandError, Parser, from_rule, resolve_device, run_command
from fastpixel.data import DATASETS
from fastpixel.directory_kind import CONFIG_NAME as CONFIG
from fastpixel.directory_kind import directory_contents
from fastpixel.data.datasets import BINARIZE
from fastpixel.models import MODELS
from fastpixel.models.heads import HEADS
from fastpixel.training.config import TrainConfig
from fastpixel.training.from_config import train
from fastpixel.training.loop import check_bf16
from fastpixel.training.resume import settings_for_resume
from fastpixel.training.run_dir import check_run_dir
from fastpixel.training.schedule import SCHEDULES

PROG = "fastpixel-train"
DEFAULT_PRESET = "cpu_tiny"
MODEL_NAMES = sorted(set(MODELS) | {"multiscale"})


def build_parser(preset: str = "cpu_tiny") -> argparse.ArgumentParser:
    """The parser; each settings flag's help shows its value under ``preset``."""
    values = presets.resolve(preset, {}) if preset in presets.PRESETS else dict(presets.DEFAULTS)
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)

    def setting(group, flag: str, help: str = "", **kw) -> None:
        key = flag[2:].replace("-", "_")
        shown = f"{preset}: {values[key]}" if preset in presets.PRESETS else f"default: {values[key]}"
        group.add_argument(flag, help=f"{help} [{shown}]".strip(), **kw)

    p.add_argument("--preset", default=None, choices=sorted(presets.PRESETS),
                   help=f"default: {DEFAULT_PRESET} (with --resume: the run's own)")
    p.add_argument("--run-dir", default=None, help="where config, metrics and checkpoints go (default runs/<preset>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in <run-dir> with its own settings (an error if it has no checkpoint)")
    p.add_argument("--overwrite", action="store_true", help="start afresh in a run dir that holds a run (deletes it)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="ops backend (default auto; with --resume: the run's own)")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (default: cuda when available; with --resume: the run's own)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it is also off when not a TTY)")
    p.add_argument("--quiet", action="store_true", help="do not echo metric lines to stdout")
    g = p.add_argument_group(f"settings (each overrides the preset; [{preset}: value])")
    setting(g, "--model", choices=MODEL_NAMES)
    setting(g, "--hidden", "h; the residual stream has 2h features", type=from_rule("hidden"))
    setting(g, "--layers", type=from_rule("layers"))
    setting(g, "--output-hidden", type=from_rule("output_hidden"))
    setting(g, "--skip", action=argparse.BooleanOptionalAction, default=None)
    setting(g, "--conditional", "class-conditional: num_classes from the data set's labels (its own class ids), "
            "every batch trained on its labels, test NLL -log p(x | y)", action=argparse.BooleanOptionalAction,
            default=None)
    setting(g, "--dataset", choices=DATASETS)
    setting(g, "--data-dir")
    setting(g, "--binarize", "8-bit grey sets only (builtin_mnist, mnist, fashion_mnist)", choices=BINARIZE)
    setting(g, "--binarize-seed", type=from_rule("binarize_seed"))
    g.add_argument("--allow-pickle", action="store_const", const=True, default=None,
                   help="read CIFAR-10's python (pickle) version; unpickling runs code from the file")
    g.add_argument("--png-convert", action="store_const", const=True, default=None,
                   help="--dataset png: convert 16-bit grey, alpha and mixed colour modes instead of refusing them")
    setting(g, "--train-limit", "train on the first N images only", type=from_rule("train_limit"))
    setting(g, "--test-limit", "evaluate on the first N test images only (not the protocol)", type=from_rule("test_limit"))
    setting(g, "--batch-size", "global batch (split over processes)", type=from_rule("batch_size"))
    setting(g, "--eval-batch-size", type=from_rule("eval_batch_size"))
    setting(g, "--steps", "total optimizer steps", type=from_rule("steps"))
    setting(g, "--lr", "Adam learning rate (the schedule's peak)", type=from_rule("lr"))
    setting(g, "--lr-schedule", "after the warmup: constant, cosine decay to 0, or step decay", choices=SCHEDULES)
    setting(g, "--warmup-steps", "linear warmup from lr/N over the first N steps", type=from_rule("warmup_steps"))
    setting(g, "--lr-step-every", "step schedule: multiply the lr by --lr-gamma every N steps", type=from_rule("lr_step_every"))
    setting(g, "--lr-gamma", "step schedule's factor", type=from_rule("lr_gamma"))
    setting(g, "--clip-grad", "max global gradient norm (0: off)", type=from_rule("clip_grad"))
    setting(g, "--ema", "EMA decay of the Polyak-averaged weights (0: off)", type=from_rule("ema"))
    setting(g, "--bf16", "bf16 autocast (CUDA only)", action=argparse.BooleanOptionalAction, default=None)
    setting(g, "--seed", "seeds torch, numpy and Python's random, and the data order", type=from_rule("seed"))
    setting(g, "--log-every", type=from_rule("log_every"))
    setting(g, "--eval-every", "test NLL (and sample grids) every N steps (0: only at the end)", type=from_rule("eval_every"))
    setting(g, "--checkpoint-every", type=from_rule("checkpoint_every"))
    setting(g, "--keep", "keep the last N checkpoints (checkpoint-<step>.pt)", type=from_rule("keep"))
    setting(g, "--sample-grid", "images in the sample grid at each evaluation (0: none)", type=from_rule("sample_grid"))
    setting(g, "--tensorboard", "also log to <run-dir>/tensorboard (pip install 'fastpixel[tensorboard]')",
            action="store_const", const=True, default=None)
    h = p.add_argument_group("the likelihood head, and PixelCNN++'s dropout (None: the model's own)")
    setting(h, "--head", "softmax (the paper's: LEVELS logits per sub-pixel) or dmol (PixelCNN++'s discretized "
            "mixture of logistics) on pixelcnn, row_lstm, diagonal_bilstm, gated_pixelcnn (default softmax); "
            "pixelcnn_pp has only dmol, multiscale only softmax", choices=HEADS)
    setting(h, "--nr-logistic-mix", "K, the dmol head's mixture components (default 10); dmol head only",
            type=from_rule("nr_logistic_mix"), metavar="K")
    setting(h, "--dropout", "dropout probability inside every block in training, in [0, 1) (default 0.5); "
            "--model pixelcnn_pp only", type=from_rule("dropout"), metavar="P")
    m = p.add_argument_group("Multi-Scale PixelRNN (--model multiscale)")
    setting(m, "--kind", "the networks' layers (default diagonal_bilstm)", choices=("row_lstm", "diagonal_bilstm"))
    setting(m, "--factor", "subsampling factor of the small image (default 2)", type=from_rule("factor"))
    setting(m, "--small-hidden", "the small network's h (default --hidden)", type=from_rule("small_hidden"))
    setting(m, "--small-layers", "the small network's depth (default --layers)", type=from_rule("small_layers"))
    setting(m, "--condition-features", "width of the upsampled conditioning map (default 2h)", type=from_rule("condition_features"))
    return p


def _preset_in(argv: list[str]) -> str:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=DEFAULT_PRESET)
    known, _ = pre.parse_known_args(argv)
    return known.preset


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The preset and the flags as a TrainConfig (checked there; a bad setting -> CommandError).

    ``--resume`` takes every setting from the run directory instead (its config.json, else its
    checkpoint): a flag that repeats the run's value changes nothing, one that would change the
    trajectory is refused naming both values, any other is honoured and recorded
    (:func:`fastpixel.training.resume.settings_for_resume`). ``--data-dir`` is recorded as an absolute
    path, so the run's commands work from any directory.
    """
    given = {k: getattr(args, k, None) for k in presets.DEFAULTS}
    if given.get("data_dir") is not None:
        given["data_dir"] = os.path.abspath(given["data_dir"])
    invocation = dict(run_dir=args.run_dir or os.path.join("runs", args.preset or DEFAULT_PRESET), resume=args.resume,
                      overwrite=args.overwrite, backend=args.backend or (None if args.resume else "auto"),
                      device=args.device,
                      progress=not args.no_progress, quiet=args.quiet)
    try:
        if args.resume:
            return _resumed_config(args.preset, given, invocation)
        return TrainConfig.from_preset(args.preset or DEFAULT_PRESET, **given, **invocation)
    except ValueError as err:
        raise CommandError(str(err)) from None


def _resumed_config(preset: str | None, given: dict[str, Any], invocation: dict[str, Any]) -> TrainConfig:
    run_dir = invocation["run_dir"]
    check_run_dir(run_dir, resume=True, overwrite=invocation["overwrite"])
    if directory_contents(run_dir).files[:1] == (CONFIG,):
        ran = json.loads((Path(run_dir) / CONFIG).read_text())  # how the run ran: its backend and device
        invocation.update({k: ran.get(k) for k in ("backend", "device") if invocation[k] is None})
        recorded = TrainConfig.from_run(**invocation)
    else:  # a run whose config.json is gone: its checkpoint records the settings too
        recorded = TrainConfig.from_saved(read_checkpoint(Path(run_dir) / FILENAME)["train_config"], **invocation)
    if preset is not None and recorded.preset is not None and preset != recorded.preset:
        raise CommandError(f"--resume {run_dir}: --preset {preset} on the command line, {recorded.preset} in the run; "
                           f"the run continues with its own settings, so leave --preset out")
    config, notes = settings_for_resume(recorded, given, run_dir)
    for note in notes:
        print(f"fastpixel: resuming {run_dir}: {note}", file=sys.stderr)
    return config


def _preflight(config: TrainConfig) -> None:
    """Everything that can be checked before any data is read or any model built: the device, bf16,
    the backend on that device, tensorboard, the run directory (writable, of the right kind, ...)."""
    device = resolve_device(config.device)
    check_bf16(config.bf16, device)
    check_backend_for_device(config.backend, device, label="--backend")
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
