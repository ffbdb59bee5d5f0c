"""A full disk (issue 18, item 4): one line naming the file and what was kept, never a torn file.

ENOSPC is injected into fastpixel's writes (every output goes through ``fastpixel.atomic``, and the
metrics through ``run_dir.append_metrics``); where this machine allows it (root, Linux), a real 1 MiB
tmpfs is filled by a training run too.
"""

from __future__ import annotations

import errno
import subprocess
import sys

import numpy as np
import pytest

import fastpixel
from fastpixel import atomic
from fastpixel.atomic import DiskFullError
from fastpixel.checkpoint import read_checkpoint
from fastpixel.cli import sample as sample_cli
from fastpixel.cli import train as train_cli
from fastpixel.training import run_dir as run_files
from tests.cli_helpers import ROOT, TINY_FLAGS, one_line_error


class FullFile:
    """A file object whose writes fail as a full disk does (after ``room`` bytes)."""

    def __init__(self, real, room: int) -> None:
        self.real, self.room = real, room

    def write(self, data) -> int:
        if len(data) > self.room:
            self.real.write(data[: self.room])
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.real.write(data)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


def fill_disk_after(monkeypatch, module, *, writes: int = 0, room: int = 10):
    """Let ``writes`` file writes through ``module``'s open(), then every later one fails with ENOSPC."""
    seen = {"n": 0}

    def fake_open(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        if "w" not in mode and "a" not in mode:
            return f
        seen["n"] += 1
        return f if seen["n"] <= writes else FullFile(f, room)

    monkeypatch.setattr(module, "open", fake_open, raising=False)


RUN = ["--steps", "4", "--checkpoint-every", "2", "--eval-every", "0", "--ema", "0", *TINY_FLAGS]


def test_training_checkpoint_on_a_full_disk_keeps_the_last_good_one(tmp_path, capsys, monkeypatch):
    """Used to be 40 lines ending in torch's `enforce fail at inline_container.cc`."""
    fill_disk_after(monkeypatch, atomic, writes=2)  # config.json, checkpoint of step 2; step 4's fails
    line = one_line_error(train_cli.main, ["--run-dir", str(tmp_path), *RUN], capsys, "fastpixel-train",
                          "no space left on device writing", str(tmp_path / "checkpoint.pt"),
                          "last good checkpoint (step 2) is kept")
    assert "Traceback" not in line and read_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2
    assert not list(tmp_path.glob(".*tmp*"))


def test_metrics_on_a_full_disk(tmp_path, capsys, monkeypatch):
    fill_disk_after(monkeypatch, run_files, writes=0, room=0)
    one_line_error(train_cli.main, ["--run-dir", str(tmp_path), "--log-every", "1", *RUN], capsys, "fastpixel-train",
                   "no space left on device writing", "no checkpoint had been written yet")


def test_sample_outputs_on_a_full_disk(tmp_path, capsys, monkeypatch):
    fill_disk_after(monkeypatch, atomic, writes=0)
    one_line_error(sample_cli.main, ["--pretrained", "digits", "--num", "1", "--height", "2", "--width", "2",
                                     "--out", str(tmp_path / "s.png")], capsys, "fastpixel-sample",
                   "no space left on device writing", "s.png", "nothing was written there")
    assert list(tmp_path.iterdir()) == []


def test_save_pretrained_on_a_full_disk_keeps_the_old_model(tmp_path, monkeypatch):
    old = fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1)
    old.save_pretrained(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    fill_disk_after(monkeypatch, atomic, writes=0)
    new = fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1)
    with pytest.raises(DiskFullError, match="g.png; nothing was written there"):
        fastpixel.save_image_grid(np.zeros((1, 1, 2, 2), np.uint8), tmp_path / "g.png")
    with pytest.raises(DiskFullError, match="model.safetensors; the previous file is kept as it was"):
        new.save_pretrained(tmp_path, overwrite=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.skipif(sys.platform != "linux", reason="a real tmpfs needs Linux")
def test_a_real_small_filesystem(tmp_path):
    """A 1 MiB tmpfs (where mount is allowed): the run stops with one line, its last checkpoint intact."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not allowed here (ENOSPC is injected by the tests above)")
    try:
        bin_dir = __import__("pathlib").Path(sys.executable).parent
        script = bin_dir / "fastpixel-train"
        command = [str(script)] if script.exists() else [sys.executable, "-m", "fastpixel.cli.train"]
        flags = [*RUN[:-len(TINY_FLAGS)], *TINY_FLAGS]
        flags[flags.index("--hidden") + 1], flags[flags.index("--layers") + 1] = "40", "3"  # ~0.85 MB checkpoints
        proc = subprocess.run([*command, "--run-dir", str(mount / "run"), *flags, "--checkpoint-every", "1"],
                              capture_output=True, text=True, cwd=ROOT, timeout=300,
                              env={"OMP_NUM_THREADS": "1", "PATH": str(bin_dir), "PYTHONPATH": str(ROOT)})
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert "no space left on device writing" in lines[0] and "last good checkpoint (step 1)" in lines[0]
        assert read_checkpoint(mount / "run" / "checkpoint.pt")["step"] == 1
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
