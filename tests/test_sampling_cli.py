"""fastpixel-sample (fastpixel.cli.sample): PNG grid + npz of samples, and the --complete mode, from a checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fastpixel
from fastpixel.checkpoint import FORMAT, save_checkpoint
from fastpixel.cli.sample import occlusion_mask, run
from fastpixel.sampling import complete, sample

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = fastpixel.create_model("row_lstm", channels=3, levels=4, hidden=3, layers=1, output_hidden=4)
    path = tmp_path_factory.mktemp("run") / "checkpoint.pt"
    save_checkpoint(path, {"format": FORMAT, "step": 0, "model_config": model.config, "model": model.state_dict(),
                           "ema": None, "train_config": {"dataset": "png"}})
    return path, model


def test_sample_writes_png_grid_and_npz(checkpoint, tmp_path):
    path, model = checkpoint
    out = tmp_path / "grid" / "samples.png"
    result = run(["--checkpoint", str(path), "--num", "5", "--height", "4", "--width", "6", "--out", str(out),
                   "--seed", "3", "--batch-size", "2", "--device", "cpu", "--backend", "reference", "--no-progress",
                   "--scale", "1"])
    with np.load(out.with_suffix(".npz")) as data:
        images = data["images"]
        assert int(data["levels"]) == 4
    assert images.shape == (5, 3, 4, 6) and images.min() >= 0 and images.max() < 4
    # the CLI draws in batches of 2 from one generator seeded with --seed: the same as the API
    g = torch.Generator().manual_seed(3)
    expected = torch.cat([sample(model, n, height=4, width=6, generator=g) for n in (2, 2, 1)])
    assert torch.equal(torch.from_numpy(images), expected) and torch.equal(result["images"], expected)
    png = np.asarray(Image.open(out))
    # round(sqrt(5)) = 2 columns, 3 rows of 4x6 tiles, 1 px apart
    assert png.shape[:2] == (3 * 5 + 1, 2 * 7 + 1)
    assert np.array_equal(png[1:5, 1:7, :3], np.rint(images[0].transpose(1, 2, 0) * 85).astype(np.uint8))
    run(["--checkpoint", str(path), "--num", "5", "--height", "4", "--width", "6", "--out", str(out), "--seed", "3",
          "--batch-size", "2", "--device", "cpu", "--backend", "reference", "--no-progress",
          "--overwrite"])  # default --scale 4; replacing the first run's files needs --overwrite (issue 18)
    big = np.asarray(Image.open(out))
    assert big.shape[:2] == (4 * (3 * 5 + 1), 4 * (2 * 7 + 1))
    assert np.array_equal(big[::4, ::4], png) and np.array_equal(big[3::4, 3::4], png)


def test_threads_are_the_commands_own(checkpoint, tmp_path):
    """--threads sets torch's CPU threads for the command (default 1); 0 is refused before any work."""
    path, _ = checkpoint
    flags = ["--checkpoint", str(path), "--num", "1", "--height", "2", "--width", "2", "--device", "cpu",
             "--no-progress", "--scale", "1"]
    run([*flags, "--threads", "2", "--out", str(tmp_path / "a.png")])
    assert torch.get_num_threads() == 2
    run([*flags, "--out", str(tmp_path / "b.png")])
    assert torch.get_num_threads() == 1
    proc = subprocess.run([sys.executable, "-m", "fastpixel.cli.sample", *flags, "--threads", "0", "--out",
                           str(tmp_path / "c.png")], capture_output=True, text=True)
    assert proc.returncode != 0 and "threads" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "c.png").exists()


def test_complete_mode_keeps_the_visible_part(checkpoint, tmp_path):
    path, model = checkpoint
    originals = torch.randint(0, 4, (3, 3, 6, 5), generator=torch.Generator().manual_seed(1))
    np.savez(tmp_path / "src.npz", images=originals.numpy())
    out = tmp_path / "completions.png"
    run(["--checkpoint", str(path), "--complete", "--images", str(tmp_path / "src.npz"), "--num", "2",
          "--per-image", "3", "--out", str(out), "--device", "cpu", "--no-progress", "--scale", "1"])
    with np.load(out.with_suffix(".npz")) as data:
        comp, known = torch.from_numpy(data["completions"]), torch.from_numpy(data["known"])
        assert np.array_equal(data["originals"], originals[:2].numpy())
    assert comp.shape == (2, 3, 3, 6, 5)
    assert torch.equal(known, occlusion_mask(6, 5, "bottom")) and not known[..., 3:, :].any()
    for k in range(3):
        assert torch.equal(comp[:, k, :, :3], originals[:2, :, :3])  # top half (known) unchanged
    expected = complete(model, originals[:2].repeat_interleave(3, 0), known, generator=torch.Generator().manual_seed(0))
    assert torch.equal(comp.flatten(0, 1), expected)
    png = np.asarray(Image.open(out))
    assert png.shape[:2] == (2 * 7 + 1, 5 * 6 + 1)  # per row: occluded | 3 completions | original


@pytest.mark.parametrize("kind,hidden", [("bottom", 3 * 5), ("right", 6 * 3), ("center", 4 * 3)])
def test_occlusion_masks(kind, hidden):
    known = occlusion_mask(6, 5, kind)
    assert known.shape == (1, 1, 6, 5) and int((~known).sum()) == hidden


def test_bad_occlusion():
    with pytest.raises(ValueError, match="occlusion"):
        occlusion_mask(4, 4, "top")


@pytest.mark.parametrize("module", ["fastpixel.sample", "fastpixel.cli.sample"])
def test_python_dash_m_help_runs_cleanly(module):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", module, "--help"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--checkpoint" in proc.stdout and "--complete" in proc.stdout and "--pretrained" in proc.stdout
