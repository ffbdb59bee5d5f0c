"""Two CPU processes on gloo under torchrun train the same model as one process does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from fastpixel.checkpoint import read_checkpoint
from fastpixel.training import train

FLAGS = ["--preset", "cpu_tiny", "--hidden", "4", "--layers", "1", "--output-hidden", "8", "--batch-size", "8",
         "--train-limit", "32", "--test-limit", "16", "--steps", "3", "--lr", "1e-2", "--eval-every", "0",
         "--checkpoint-every", "3", "--log-every", "1", "--ema", "0.9", "--clip-grad", "0.5",
         "--device", "cpu", "--backend", "reference", "--no-progress", "--quiet", "--sample-grid", "0"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_matches_one_process(tmp_path, one_thread):
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
               "-m", "fastpixel.train", *FLAGS, "--run-dir", str(ddp_dir)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    from fastpixel.cli.train import build_parser, config_from_args
    train(config_from_args(build_parser().parse_args([*FLAGS, "--run-dir", str(single_dir)])))

    ddp, single = read_checkpoint(ddp_dir / "checkpoint.pt"), read_checkpoint(single_dir / "checkpoint.pt")
    assert ddp["world_size"] == 2 and single["world_size"] == 1 and ddp["step"] == single["step"] == 3
    assert not torch.equal(ddp["model"]["input_conv.weight"], ddp["ema"]["module.input_conv.weight"])
    for key in ("model", "ema"):
        for name, value in single[key].items():
            torch.testing.assert_close(ddp[key][name], value, rtol=1e-5, atol=1e-6, msg=f"{key}.{name}")
    config = json.loads((ddp_dir / "config.json").read_text())
    assert config["world_size"] == 2
    lines = lambda d: [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    a, b = lines(ddp_dir), lines(single_dir)
    assert [(r["step"], r["split"], r["images"]) for r in a] == [(r["step"], r["split"], r["images"]) for r in b]
    for ra, rb in zip(a, b):  # rank 0 alone writes; train and test figures are over all processes
        assert ra["nats_per_image"] == pytest.approx(rb["nats_per_image"], rel=1e-5)
