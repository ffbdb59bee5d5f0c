"""Learning-rate schedules (resumable) and the Multi-Scale PixelRNN through train / evaluate / sample
(issue 13, item 7, the commands' part)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fastpixel.checkpoint import read_checkpoint
from fastpixel.cli import evaluate as evaluate_cli
from fastpixel.cli import sample as sample_cli
from fastpixel.cli import train as train_cli
from fastpixel.training import RunDirError, learning_rate, train
from fastpixel.training.run_dir import read_metrics
from tests.cli_helpers import tiny_config


@pytest.mark.parametrize("schedule, kwargs, expected", [
    ("constant", {}, [1.0] * 6),
    ("constant", {"warmup_steps": 2}, [0.5, 1.0, 1.0, 1.0, 1.0, 1.0]),
    ("cosine", {}, [0.5 * (1 + math.cos(math.pi * s / 6)) for s in range(6)]),
    ("cosine", {"warmup_steps": 2}, [0.5, 1.0] + [0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(4)]),
    ("step", {"step_every": 2, "gamma": 0.5}, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]),
    ("step", {"step_every": 2, "gamma": 0.5, "warmup_steps": 1}, [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]),
])
def test_learning_rate_schedules(schedule, kwargs, expected):
    got = [learning_rate(s, base=2.0, schedule=schedule, steps=6, **kwargs) for s in range(6)]
    assert got == pytest.approx([2.0 * e for e in expected], rel=1e-12)


def test_the_run_uses_and_logs_the_schedule(tmp_path):
    train(tiny_config(tmp_path, steps=4, eval_every=0, lr_schedule="step", lr_step_every=2, lr_gamma=0.1,
                      warmup_steps=1))
    lrs = [r["lr"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["split"] == "train"]
    assert lrs == pytest.approx([1e-2, 1e-2, 1e-2, 1e-3], rel=1e-12)  # steps 0..3: warmup (1/1), then x0.1 every 2
    assert read_checkpoint(tmp_path / "checkpoint.pt")["train_config"]["lr_schedule"] == "step"


class Stop(Exception):
    pass


def test_cosine_schedule_resumes_exactly(tmp_path):
    settings = dict(steps=6, eval_every=0, checkpoint_every=3, lr_schedule="cosine", warmup_steps=2)
    train(tiny_config(tmp_path / "straight", **settings))

    def stop(step):
        if step == 4:
            raise Stop  # after the step-3 checkpoint: step 4 is redone on resume

    cut = tiny_config(tmp_path / "cut", **settings)
    with pytest.raises(Stop):
        train(cut, on_step=stop)
    train({**cut, "resume": True})
    a, b = read_checkpoint(tmp_path / "straight" / "checkpoint.pt"), read_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    def records(run):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in read_metrics(tmp_path / run / "metrics.jsonl")]

    assert records("straight") == records("cut")  # the same lr at every step, no row twice
    with pytest.raises(RunDirError, match="cosine schedule's length"):
        train({**cut, "resume": True, "steps": 8})  # would bend the curve mid-run
    with pytest.raises(RunDirError, match="lr_schedule"):
        train({**cut, "resume": True, "lr_schedule": "constant"})


@pytest.mark.slow
def test_multiscale_train_evaluate_sample(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train_cli.main(["--model", "multiscale", "--kind", "row_lstm", "--factor", "2", "--hidden", "3", "--layers", "1",
                    "--small-hidden", "2", "--output-hidden", "8", "--steps", "2", "--batch-size", "4",
                    "--train-limit", "8", "--test-limit", "4", "--eval-every", "0", "--sample-grid", "2",
                    "--backend", "reference", "--quiet", "--run-dir", str(run_dir)])
    ckpt = read_checkpoint(run_dir / "checkpoint.pt")
    assert ckpt["model_config"]["name"] == "multiscale" and ckpt["model_config"]["kind"] == "row_lstm"
    assert ckpt["model_config"]["small_hidden"] == 2 and (run_dir / "samples" / "step-0000002-model.png").is_file()
    logged = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["split"] == "test"][-1]
    capsys.readouterr()
    evaluate_cli.main(["--checkpoint", str(run_dir / "checkpoint.pt"), "--limit", "4", "--backend", "reference",
                       "--json"])
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scored["nats_per_image"] == pytest.approx(logged["nats_per_image"], rel=1e-9)
    result = sample_cli.run(["--checkpoint", str(run_dir / "checkpoint.pt"), "--num", "2", "--out",
                             str(tmp_path / "ms.png")])
    assert tuple(result["images"].shape) == (2, 1, 28, 28)
