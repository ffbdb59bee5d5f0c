"""The console scripts as pip installs them: a wheel of this tree in a fresh venv, each script run by
name. Success exits 0 (``main()`` returns None, never a result dict for ``sys.exit`` to print and turn
into status 1); a user mistake exits 2 with one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.test_packaging import copy_source, make_venv

pytestmark = pytest.mark.slow


def test_installed_console_scripts_exit_status(tmp_path):
    source = copy_source(tmp_path / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    tmp_path / "dist", source], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("fastpixel-*.whl")
    python = make_venv(tmp_path / "venv")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], check=True,
                   capture_output=True)
    bin_dir = python.parent
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", FASTPIXEL_BACKEND="reference")

    def script(name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([bin_dir / name, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)

    tiny = ["--hidden", "2", "--layers", "1", "--output-hidden", "4", "--batch-size", "4", "--train-limit", "8",
            "--test-limit", "4", "--steps", "2", "--eval-every", "0", "--sample-grid", "0", "--quiet",
            "--backend", "reference", "--device", "cpu"]
    runs = {
        "fastpixel-train": (["--run-dir", "runs/t", *tiny], ["--steps", "0"]),
        "fastpixel-evaluate": (["--checkpoint", "runs/t/checkpoint.pt", "--limit", "2", "--backend", "reference"],
                               ["--checkpoint", "runs/t/checkpoint.pt", "--limit", "-1"]),
        "fastpixel-sample": (["--checkpoint", "runs/t/checkpoint.pt", "--num", "2", "--height", "3", "--width", "3",
                              "--backend", "reference"], ["--checkpoint", "runs/t/checkpoint.pt", "--width", "0"]),
        "fastpixel-demo": (["--model", "pixelcnn", "--hidden", "2", "--layers", "1", "--steps", "1", "--backend",
                            "reference"], ["--batch", "0"]),
    }
    for name, (good, bad) in runs.items():  # in this order: evaluate and sample read train's checkpoint
        ok = script(name, *good)
        assert ok.returncode == 0, (name, ok.stdout[-2000:], ok.stderr[-2000:])
        wrong = script(name, *bad)
        lines = wrong.stderr.strip().splitlines()
        assert wrong.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"{name}: error: "), wrong.stderr
    assert (tmp_path / "runs" / "samples.png").is_file()  # the sample command's default output, under runs/
    where = subprocess.run([python, "-c", "import fastpixel.cli; print(fastpixel.cli.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True)
    assert "site-packages" in where.stdout  # the wheel's code ran, not this tree's
