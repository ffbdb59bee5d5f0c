"""Shared by the command tests: a tiny training config, a one-line-error check, a subprocess runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastpixel import presets

ROOT = Path(__file__).resolve().parents[1]


def tiny_config(run_dir, **overrides) -> dict:
    """A run of a few steps of a 4-wide PixelCNN on 32 built-in digits (seconds on one core)."""
    settings = dict(hidden=4, layers=1, output_hidden=8, batch_size=8, train_limit=32, test_limit=16, steps=6,
                    lr=1e-2, eval_every=3, checkpoint_every=2, log_every=1, ema=0.9, clip_grad=0.5, sample_grid=0)
    settings.update({k: v for k, v in overrides.items() if k in presets.DEFAULTS})
    config = presets.resolve("cpu_tiny", settings)
    config.update(run_dir=str(run_dir), resume=False, overwrite=False, backend="reference", device="cpu",
                  progress=False, quiet=True)
    config.update({k: v for k, v in overrides.items() if k not in presets.DEFAULTS})
    return config


TINY_FLAGS = ["--hidden", "4", "--layers", "1", "--output-hidden", "8", "--batch-size", "8", "--train-limit", "32",
              "--test-limit", "16", "--backend", "reference", "--device", "cpu", "--quiet", "--sample-grid", "0"]


def one_line_error(main, argv, capsys, prog: str, *fragments: str, code: int = 2) -> str:
    """Run ``main(argv)``; assert it exits ``code`` with ONE stderr line '<prog>: error: ...' holding every fragment."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert exit_info.value.code == code, err
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def run_python(code: str, *args: str, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -c code args...`` importing this tree's fastpixel, one thread."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd or ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
