"""Watching a run (issue 13, item 3): sample grids at every evaluation, a loss curve that grows with
the run, optional TensorBoard logs, and ``--help`` that shows the preset's values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fastpixel.checkpoint import read_checkpoint
from fastpixel.cli import train as train_cli
from fastpixel.image_grid import default_columns, grid, to_rgb8
from fastpixel.models import create_model
from fastpixel.training import train
from fastpixel.training.watch import draw_samples, plot_loss_curve
from tests.cli_helpers import tiny_config


def test_sample_grids_at_every_evaluation(tmp_path):
    config = tiny_config(tmp_path, steps=4, eval_every=2, checkpoint_every=2, ema=0.5, sample_grid=4)
    train(config)
    names = sorted(p.name for p in (tmp_path / "samples").iterdir())
    assert names == ["step-0000002-ema.png", "step-0000002-model.png", "step-0000004-ema.png", "step-0000004-model.png"]
    ckpt = read_checkpoint(tmp_path / "checkpoint.pt")
    model = create_model(**ckpt["model_config"])
    model.load_state_dict(ckpt["model"])
    images = draw_samples(model, 4, 28, 28, seed=config["seed"])  # the grid is reproducible from the weights
    expected = grid(to_rgb8(images, 2), columns=default_columns(4)).repeat(4, axis=0).repeat(4, axis=1)
    written = np.asarray(Image.open(tmp_path / "samples" / "step-0000004-model.png").convert("RGB"))
    assert written.shape == (4 * (2 * 29 + 1), 4 * (2 * 29 + 1), 3) and np.array_equal(written, expected)
    assert not list(tmp_path.rglob("*.tmp"))


def test_sampling_does_not_change_the_training(tmp_path):
    """Grids use their own generator: weights and RNG state match a run without grids bit for bit."""
    a = train(tiny_config(tmp_path / "a", steps=4, eval_every=2, sample_grid=3))
    b = train(tiny_config(tmp_path / "b", steps=4, eval_every=2, sample_grid=0))
    ca, cb = read_checkpoint(tmp_path / "a" / "checkpoint.pt"), read_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])
    assert torch.equal(ca["rng"]["torch"], cb["rng"]["torch"]) and a["test"] == b["test"]
    assert not (tmp_path / "b" / "samples").exists()


def test_loss_curve_is_redrawn_as_the_run_goes(tmp_path):
    config = tiny_config(tmp_path, steps=2, eval_every=2, checkpoint_every=2)
    train(config)
    first = (tmp_path / "loss.png").read_bytes()
    train({**config, "steps": 4, "resume": True})
    second = (tmp_path / "loss.png").read_bytes()
    assert first[:8] == second[:8] == b"\x89PNG\r\n\x1a\n" and first != second
    assert Image.open(tmp_path / "loss.png").size[0] > 300


def test_plot_loss_curve_draws_train_and_test(tmp_path):
    records = [{"step": s, "split": "train", "bits_per_dim": 1.0 / s} for s in range(1, 6)]
    records += [{"step": 5, "split": "test", "weights": "model", "bits_per_dim": 0.3},
                {"step": 5, "split": "test", "weights": "ema", "bits_per_dim": 0.25}]
    assert plot_loss_curve(records, tmp_path / "loss.png") == tmp_path / "loss.png"
    picture = np.asarray(Image.open(tmp_path / "loss.png").convert("RGB"))
    colours = {tuple(c) for c in picture.reshape(-1, 3)[::7]}
    assert len(colours) > 10  # axes, text and three coloured series, not a blank canvas
    assert plot_loss_curve([], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_tensorboard_logs_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tiny_config(tmp_path, steps=2, eval_every=2, sample_grid=2, tensorboard=True))
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    assert {"bits_per_dim/train", "bits_per_dim/test_model", "lr"} <= set(events.Tags()["scalars"])
    assert "samples/model" in events.Tags()["images"]


def test_tensorboard_is_imported_only_when_asked(tmp_path):
    import subprocess
    import sys

    from tests.cli_helpers import ROOT

    code = ("import sys, fastpixel, fastpixel.cli.train, fastpixel.training; "
            "print(any(m == 'tensorboard' or m.startswith(('tensorboard.', 'torch.utils.tensorboard')) "
            "for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_help_shows_the_presets_values(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_cli.main(["--preset", "paper_cifar10", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_info.value.code == 0
    for shown in ("[paper_cifar10: 128]", "[paper_cifar10: 12]", "[paper_cifar10: 1024]", "[paper_cifar10: cifar10]",
                  "[paper_cifar10: 500000]", "[paper_cifar10: diagonal_bilstm]"):
        assert shown in text, shown
    default = " ".join(train_cli.build_parser().format_help().split())
    assert "[cpu_tiny: 300]" in default and "[cpu_tiny: fixed]" in default
