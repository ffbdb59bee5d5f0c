"""Training never loses work (issue 13, item 4): no non-finite model is ever written, --keep N,
stale temporary files removed, torn metrics tolerated, run dirs never silently overwritten, --resume
checked, finished runs left alone, SIGINT/SIGTERM save before exiting, numpy/Python seeded."""

from __future__ import annotations

import json
import os
import random
import signal

import numpy as np
import pytest
import torch

from fastpixel.checkpoint import read_checkpoint
from fastpixel.cli import train as train_cli
from fastpixel.training import DivergedError, RunDirError, RunDirExistsError, train
from fastpixel.training.run_dir import read_metrics
from tests.cli_helpers import TINY_FLAGS, one_line_error, run_python, tiny_config


def finite(state: dict) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


def test_diverging_run_never_writes_a_non_finite_model(tmp_path, capsys):
    """The issue's `--lr 1e6 --steps 10 --checkpoint-every 1 --log-every 5`: NaN weights used to be saved
    over the last good checkpoint."""
    argv = ["--lr", "1e6", "--steps", "10", "--checkpoint-every", "1", "--log-every", "5", "--eval-every", "0",
            "--run-dir", str(tmp_path), *TINY_FLAGS]
    line = one_line_error(train_cli.main, argv, capsys, "fastpixel-train", "not finite", "nothing was written",
                          "last good checkpoint", "--lr", code=1)
    ckpt = read_checkpoint(tmp_path / "checkpoint.pt")
    assert finite(ckpt["model"]) and f"(step {ckpt['step']})" in line and ckpt["step"] < 10
    assert all(np.isfinite(r["nats_per_image"]) for r in read_metrics(tmp_path / "metrics.jsonl"))


def test_divergence_is_checked_before_every_save(tmp_path, monkeypatch):
    """Poison the weights after step 3: the save at step 4 is refused; the step-2 checkpoint stays."""
    def poison(step):
        if step == 3:
            with torch.no_grad():
                next(iter(model_holder["model"].parameters())).fill_(float("nan"))

    from fastpixel.training import loop

    model_holder = {}
    real = loop.train_loop

    def capture(model, *args, **kwargs):
        model_holder["model"] = model
        return real(model, *args, **kwargs)

    monkeypatch.setattr("fastpixel.training.from_config.train_loop", capture)
    with pytest.raises(DivergedError, match=r"step 4: model\.\S+ is not finite.*last good checkpoint \(step 2\)"):
        train(tiny_config(tmp_path, steps=6, eval_every=0, log_every=100, checkpoint_every=2), on_step=poison)
    ckpt = read_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 2 and finite(ckpt["model"])


def test_keep_last_n_checkpoints(tmp_path):
    train(tiny_config(tmp_path, steps=8, checkpoint_every=2, eval_every=0, keep=3))
    kept = sorted(p.name for p in tmp_path.glob("checkpoint*.pt"))
    assert kept == ["checkpoint-00000004.pt", "checkpoint-00000006.pt", "checkpoint-00000008.pt", "checkpoint.pt"]
    assert [read_checkpoint(tmp_path / name)["step"] for name in kept] == [4, 6, 8, 8]
    latest, newest = read_checkpoint(tmp_path / "checkpoint.pt"), read_checkpoint(tmp_path / kept[2])
    assert all(torch.equal(latest["model"][k], newest["model"][k]) for k in latest["model"])
    assert not list(tmp_path.glob(".*tmp*"))


def test_stale_temporary_files_are_removed_on_start(tmp_path):
    """kill -9 during a checkpoint write used to leave .checkpoint.pt.tmp-PID files forever."""
    tmp_path.mkdir(exist_ok=True)
    dead = run_python("import os; print(os.getpid())")  # a pid that has exited
    stale = tmp_path / f".checkpoint.pt.tmp-{int(dead.stdout)}"
    stale.write_bytes(b"x" * 1000)
    live = tmp_path / f".checkpoint.pt.tmp-{os.getppid()}"  # a running writer's file is left alone
    live.write_bytes(b"y")
    (tmp_path / "samples").mkdir()
    torn_plots = [tmp_path / "loss.png.tmp", tmp_path / "samples" / "step-0000002-model.png.tmp"]
    for path in torn_plots:
        path.write_bytes(b"\x89PNG half")
    train(tiny_config(tmp_path, steps=1, eval_every=0, overwrite=True))
    assert not stale.exists() and live.exists() and not any(p.exists() for p in torn_plots)


def test_torn_last_metrics_line_is_tolerated(tmp_path, capsys):
    config = tiny_config(tmp_path, steps=4, eval_every=0, checkpoint_every=2)
    train({**config, "steps": 2})
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 3, "split": "tra')  # killed mid-write
    result = train({**config, "resume": True})
    assert result["step"] == 4 and "torn last line" in capsys.readouterr().err
    assert [r["step"] for r in read_metrics(metrics) if r["split"] == "train"] == [1, 2, 3, 4]


def test_malformed_metrics_line_names_the_file(tmp_path):
    config = tiny_config(tmp_path, steps=4, eval_every=0, checkpoint_every=2)
    train({**config, "steps": 2})
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("garbage\n" + metrics.read_text())
    with pytest.raises(ValueError, match=r"metrics\.jsonl, line 1"):
        train({**config, "resume": True})


def test_a_run_dir_with_metrics_is_not_overwritten(tmp_path, capsys):
    """A run dir with metrics.jsonl but no checkpoint used to be silently overwritten."""
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "split": "train", "bits_per_dim": 0.5}) + "\n")
    with pytest.raises(RunDirExistsError, match="metrics.jsonl.*--overwrite"):
        train(tiny_config(tmp_path, steps=1, eval_every=0))
    one_line_error(train_cli.main, ["--run-dir", str(tmp_path), "--steps", "1", *TINY_FLAGS], capsys,
                   "fastpixel-train", "already holds a run", "--overwrite")
    assert read_metrics(tmp_path / "metrics.jsonl")[0]["bits_per_dim"] == 0.5  # untouched
    train_cli.main(["--run-dir", str(tmp_path), "--steps", "1", "--eval-every", "0", "--overwrite", *TINY_FLAGS])
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 1]  # a new train and test row


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(RunDirError, match="--resume: no checkpoint"):
        train(tiny_config(tmp_path / "typo", resume=True))
    assert not (tmp_path / "typo").exists()


def test_resuming_a_finished_run_says_so_and_writes_nothing(tmp_path, capsys):
    config = tiny_config(tmp_path, steps=2, eval_every=0)
    first = train(config)
    before = (tmp_path / "metrics.jsonl").read_text()
    capsys.readouterr()
    again = train({**config, "resume": True})
    assert "already finished at step 2 of 2" in capsys.readouterr().err
    assert (tmp_path / "metrics.jsonl").read_text() == before  # no duplicate test row
    assert again["test"] == first["test"] and again["step"] == 2
    lower = train({**config, "resume": True, "steps": 1})
    assert "at step 2, beyond --steps 1" in capsys.readouterr().err and lower["step"] == 2
    assert (tmp_path / "metrics.jsonl").read_text() == before


def test_raising_steps_on_resume_is_reported(tmp_path, capsys):
    config = tiny_config(tmp_path, steps=2, eval_every=0)
    train(config)
    capsys.readouterr()
    assert train({**config, "resume": True, "steps": 3})["step"] == 3
    assert "--steps 2 -> 3" in capsys.readouterr().err


SIGNAL_SCRIPT = """
import json, os, signal, sys
import torch
torch.set_num_threads(1)
from fastpixel.cli.args import run_command
from fastpixel.training import train
config, at, sig = json.loads(sys.argv[1]), int(sys.argv[2]), getattr(signal, sys.argv[3])
def send(step):
    if step == at:
        os.kill(os.getpid(), sig)
run_command("fastpixel-train", lambda: train(config, on_step=send))
"""


@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_signal_saves_before_exiting_and_resume_matches(tmp_path, name, code):
    """Ctrl-C / SIGTERM used to lose up to --checkpoint-every steps; now the step finishes, a checkpoint is
    written, and resuming ends bit-identical to an uninterrupted run."""
    straight = tiny_config(tmp_path / "straight", steps=5, checkpoint_every=100, eval_every=0)
    train(straight)
    stopped = tiny_config(tmp_path / "stopped", steps=5, checkpoint_every=100, eval_every=0)
    proc = run_python(SIGNAL_SCRIPT, json.dumps(stopped), "3", name)
    assert proc.returncode == code, proc.stderr
    assert f"interrupted by {name} after step 3" in proc.stderr and "--resume" in proc.stderr
    assert read_checkpoint(tmp_path / "stopped" / "checkpoint.pt")["step"] == 3
    train({**stopped, "resume": True})
    a = read_checkpoint(tmp_path / "straight" / "checkpoint.pt")
    b = read_checkpoint(tmp_path / "stopped" / "checkpoint.pt")
    assert a["step"] == b["step"] == 5
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_signal_handlers_are_restored(tmp_path):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    train(tiny_config(tmp_path, steps=1, eval_every=0))
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_seed_seeds_numpy_and_python(tmp_path):
    seen = {}

    def look(step):
        if step == 1:
            seen["numpy"], seen["python"] = np.random.get_state()[1].copy(), random.getstate()

    np.random.seed(12345), random.seed(12345)
    train(tiny_config(tmp_path, steps=1, eval_every=0, seed=7), on_step=look)
    np.random.seed(7), random.seed(7)
    assert np.array_equal(seen["numpy"], np.random.get_state()[1]) and seen["python"] == random.getstate()


def test_checkpoint_write_failure_keeps_the_previous(tmp_path, monkeypatch):
    train(tiny_config(tmp_path, steps=2, eval_every=0))
    from fastpixel import checkpoint as ckpt_module

    def broken(obj, f):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_module.torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        train({**tiny_config(tmp_path, steps=4, eval_every=0), "resume": True})
    assert read_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2
    assert not list(tmp_path.glob(".*tmp*"))
