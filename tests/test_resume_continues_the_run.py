"""Resume continues the run that was interrupted (issue 18, item 3), and runs work from anywhere (item 5).

``fastpixel-train --run-dir R --resume`` -- what the interrupt message advises -- takes the steps,
schedule, data and model from R; a flag that would change the run is refused naming both values;
one that is safe is honoured and recorded; ``--resume --overwrite`` is refused.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from fastpixel.checkpoint import read_checkpoint
from fastpixel.cli import evaluate as evaluate_cli
from fastpixel.cli import train as train_cli
from fastpixel.training import from_config
from tests.cli_helpers import TINY_FLAGS, one_line_error

#: The run's own settings, none of them the preset's: 7 steps (cpu_tiny has 300), a cosine schedule.
RUN = ["--steps", "7", "--lr", "0.02", "--lr-schedule", "cosine", "--warmup-steps", "2", "--checkpoint-every", "100",
       "--eval-every", "0", "--ema", "0.5", "--log-every", "1", *TINY_FLAGS]


def interrupt_at(monkeypatch, step: int, signum=signal.SIGINT) -> None:
    """Send ``signum`` to this process after optimizer step ``step`` of the next run (as Ctrl-C would)."""
    real = from_config.train_loop

    def send(done: int) -> None:
        if done == step:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(from_config, "train_loop", lambda *a, **k: real(*a, **{**k, "on_step": send}))


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_interrupt_equals_the_uninterrupted_run(tmp_path, capsys, monkeypatch):
    """The issue: a `--steps 1200` run, Ctrl-C, `--resume` ended at the preset's 300 steps."""
    train_cli.main(["--run-dir", str(tmp_path / "straight"), *RUN])
    interrupt_at(monkeypatch, 3)
    with pytest.raises(SystemExit) as stopped:
        train_cli.main(["--run-dir", str(tmp_path / "cut"), *RUN])
    assert stopped.value.code == 130 and "continue with --resume" in capsys.readouterr().err
    monkeypatch.undo()
    result = train_cli.run(["--run-dir", str(tmp_path / "cut"), "--resume", "--quiet"])  # nothing but --resume
    a, b = (read_checkpoint(tmp_path / name / "checkpoint.pt") for name in ("straight", "cut"))
    assert result["step"] == a["step"] == b["step"] == 7
    assert same_weights(a["model"], b["model"]) and same_weights(a["ema"], b["ema"])
    assert same_weights(a["optimizer"]["state"][0], b["optimizer"]["state"][0])
    metrics = [(tmp_path / name / "metrics.jsonl").read_text().splitlines() for name in ("straight", "cut")]
    strip = lambda lines: [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]  # noqa: E731
    assert strip(metrics[0]) == strip(metrics[1])


def test_a_differing_flag_is_refused_naming_both_values(tmp_path, capsys):
    train_cli.main(["--run-dir", str(tmp_path), *RUN, "--steps", "2", "--warmup-steps", "1"])
    before = (tmp_path / "checkpoint.pt").read_bytes()
    one_line_error(train_cli.main, ["--run-dir", str(tmp_path), "--resume", "--lr", "0.5"], capsys,
                   "fastpixel-train", "--lr 0.5 on the command line, 0.02 in the run", "leave the flag out")
    one_line_error(train_cli.main, ["--run-dir", str(tmp_path), "--resume", "--preset", "cpu_small"], capsys,
                   "fastpixel-train", "--preset cpu_small on the command line, cpu_tiny in the run")
    one_line_error(train_cli.main, ["--run-dir", str(tmp_path), "--resume", "--steps", "9"], capsys,
                   "fastpixel-train", "--steps 9 on the command line, 2 in the run")  # cosine: steps shape it
    one_line_error(train_cli.main, ["--run-dir", str(tmp_path), "--resume", "--overwrite"], capsys,
                   "fastpixel-train", "--resume and --overwrite contradict each other")
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_a_safe_flag_is_honoured_and_recorded(tmp_path, capsys):
    flags = [a for a in RUN if a not in ("cosine",)]
    flags[flags.index("--lr-schedule") + 1:flags.index("--lr-schedule") + 1] = ["constant"]
    train_cli.main(["--run-dir", str(tmp_path), *flags, "--steps", "2", "--warmup-steps", "0"])
    capsys.readouterr()
    result = train_cli.run(["--run-dir", str(tmp_path), "--resume", "--steps", "3", "--log-every", "3",
                            "--hidden", "4"])  # --hidden repeats the run's value: nothing changes
    err = capsys.readouterr().err
    assert result["step"] == 3 and "--steps 3 (the run had 2): honoured and recorded" in err
    assert "--hidden" not in err
    recorded = json.loads((tmp_path / "config.json").read_text())
    assert recorded["steps"] == 3 and recorded["log_every"] == 3 and recorded["lr"] == 0.02


def write_pngs(folder, count: int, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        Image.fromarray((rng.random((6, 6)) < 0.5).astype(np.uint8) * 255, mode="L").save(folder / f"{k}.png")


def test_a_run_with_a_relative_data_dir_works_from_another_directory(tmp_path, monkeypatch, capsys):
    """The data path used to be stored relative to where training started."""
    write_pngs(tmp_path / "work" / "data" / "train", 8, 0)
    write_pngs(tmp_path / "work" / "data" / "test", 4, 1)
    monkeypatch.chdir(tmp_path / "work")
    train_cli.main(["--dataset", "png", "--binarize", "none", "--data-dir", "data", "--run-dir", "run", "--steps", "2", "--batch-size", "4",
                    "--hidden", "2", "--layers", "1", "--output-hidden", "4", "--eval-every", "0", "--quiet",
                    "--sample-grid", "0", "--backend", "reference", "--device", "cpu"])
    recorded = json.loads((tmp_path / "work" / "run" / "config.json").read_text())
    assert recorded["data_dir"] == str(tmp_path / "work" / "data") and os.path.isabs(recorded["run_dir"])
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    scored = evaluate_cli.run(["--checkpoint", str(tmp_path / "work" / "run" / "checkpoint.pt"), "--backend",
                               "reference", "--device", "cpu"])
    assert scored["images"] == 4
    resumed = train_cli.run(["--run-dir", str(tmp_path / "work" / "run"), "--resume", "--steps", "3", "--quiet"])
    assert resumed["step"] == 3
