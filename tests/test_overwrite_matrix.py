"""Nothing lost (issue 18, item 1): every writer x every kind of existing file.

Writers: ``save_pretrained``, ``fastpixel-train --run-dir``, ``fit(run_dir=)``, ``fastpixel-sample
--out`` (its PNG and the npz beside it), ``save_image_grid``, ``fastpixel-demo --plot``. Existing
things at the destination: a saved model, a training run, a user's own config.json, a plain file,
and (for the file writers) the call's own input. A refusal is one line naming the path and what is
there, and leaves every byte where it was; asking (``overwrite``) replaces what may be replaced;
a run and a saved model are never written into each other, asked or not.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import fastpixel
from fastpixel.cli import demo as demo_cli
from fastpixel.cli import sample as sample_cli
from fastpixel.cli import train as train_cli
from fastpixel.training import train
from tests.cli_helpers import TINY_FLAGS, one_line_error, tiny_config


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1, output_hidden=4)


def snapshot(folder) -> dict:
    """Every file under ``folder`` and its bytes (what a refusal must leave as it was)."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    """One directory of each kind, built once; tests copy them."""
    root = tmp_path_factory.mktemp("kinds")
    tiny_model().save_pretrained(root / "saved")
    train(tiny_config(root / "run", steps=1, eval_every=0, ema=0.0))
    (root / "foreign").mkdir()
    (root / "foreign" / "config.json").write_text('{"my": "own settings"}\n')
    (root / "plain").write_text("a file, not a directory\n")
    return root


def copy_kind(kinds, name, tmp_path):
    import shutil

    target = tmp_path / name
    if (kinds / name).is_dir():
        shutil.copytree(kinds / name, target)
    else:
        shutil.copyfile(kinds / name, target)
    return target


# -- directory writers: save_pretrained, fastpixel-train, fit ----------------------------------------------
@pytest.mark.parametrize("kind, refused, fragments", [
    ("saved", True, ["already holds a saved model", "overwrite=True"]),
    ("run", True, ["holds a training run", "refusing to write a saved model"]),
    ("foreign", True, ["files fastpixel did not write", "overwrite=True"]),
    ("plain", True, ["not a directory"]),
])
def test_save_pretrained_over_each_kind(kinds, tmp_path, kind, refused, fragments):
    target = copy_kind(kinds, kind, tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises((FileExistsError, NotADirectoryError)) as info:
        tiny_model(1).save_pretrained(target)
    assert all(f in str(info.value) for f in fragments), str(info.value)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind, replaced", [("saved", True), ("foreign", True), ("run", False), ("plain", False)])
def test_save_pretrained_overwrite_true(kinds, tmp_path, kind, replaced):
    """overwrite=True replaces a saved model or a user's config.json; never a run, never a file."""
    target = copy_kind(kinds, kind, tmp_path)
    model = tiny_model(1)
    if replaced:
        model.save_pretrained(target, overwrite=True)
        loaded = fastpixel.from_pretrained(target)
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    else:
        before = snapshot(tmp_path)
        with pytest.raises((FileExistsError, NotADirectoryError)):
            model.save_pretrained(target, overwrite=True)
        assert snapshot(tmp_path) == before


TRAIN = ["--steps", "1", "--eval-every", "0", "--ema", "0", *TINY_FLAGS]


@pytest.mark.parametrize("kind, extra, fragments", [
    ("saved", [], ["holds a saved model", "config.json, model.safetensors", "refusing to write a training run"]),
    ("saved", ["--overwrite"], ["holds a saved model", "refusing to write a training run"]),
    ("run", [], ["already holds a run", "--overwrite"]),
    ("foreign", [], ["config.json that fastpixel did not write", "--overwrite"]),
    ("plain", [], ["is a file, not a directory"]),
    ("plain", ["--overwrite"], ["is a file, not a directory"]),
])
def test_train_over_each_kind(kinds, tmp_path, capsys, kind, extra, fragments):
    target = copy_kind(kinds, kind, tmp_path)
    before = snapshot(tmp_path)
    one_line_error(train_cli.main, ["--run-dir", str(target), *TRAIN, *extra], capsys, "fastpixel-train",
                   str(target), *fragments)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind, error", [("saved", FileExistsError), ("run", FileExistsError),
                                         ("foreign", FileExistsError), ("plain", NotADirectoryError)])
def test_fit_over_each_kind(kinds, tmp_path, kind, error):
    target = copy_kind(kinds, kind, tmp_path)
    before = snapshot(tmp_path)
    images = torch.randint(0, 2, (8, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    with pytest.raises(error, match=str(target)):
        fastpixel.fit(tiny_model(), images, steps=1, batch_size=4, run_dir=target)
    assert snapshot(tmp_path) == before


def test_a_run_dir_is_marked_and_a_saved_model_still_loads_after_refusals(kinds, tmp_path):
    """The issue's data loss: save_pretrained into a run replaced its config.json; train over a saved model
    destroyed the model's config. Both kinds are now told apart by their contents."""
    run, saved = copy_kind(kinds, "run", tmp_path), copy_kind(kinds, "saved", tmp_path)
    assert json.loads((run / "config.json").read_text())["format"] == "fastpixel-run"
    with pytest.raises(FileExistsError):
        tiny_model().save_pretrained(run, overwrite=True)
    with pytest.raises(FileExistsError):
        train(tiny_config(saved, steps=1, eval_every=0, overwrite=True))
    fastpixel.from_pretrained(saved)
    assert train(tiny_config(run, steps=1, eval_every=0, ema=0.0, resume=True))["step"] == 1


# -- file writers: fastpixel-sample --out (PNG + npz), save_image_grid, fastpixel-demo --plot ---------------
@pytest.fixture(scope="module")
def saved(kinds):
    return kinds / "saved"


SAMPLE = ["--num", "1", "--height", "2", "--width", "2", "--no-progress"]


@pytest.mark.parametrize("existing", ["png", "npz"])
def test_sample_refuses_to_replace_either_output(saved, tmp_path, capsys, existing):
    out = tmp_path / "s.png"
    (tmp_path / f"s.{existing}").write_bytes(b"the user's own file")
    before = snapshot(tmp_path)
    one_line_error(sample_cli.main, ["--pretrained", str(saved), *SAMPLE, "--out", str(out)], capsys,
                   "fastpixel-sample", f"s.{existing} already exists", "--overwrite")
    assert snapshot(tmp_path) == before
    sample_cli.run(["--pretrained", str(saved), *SAMPLE, "--out", str(out), "--overwrite"])
    assert np.load(tmp_path / "s.npz")["images"].shape == (1, 1, 2, 2)


def test_sample_never_writes_over_its_own_input(saved, tmp_path, capsys):
    """The issue's `fastpixel-sample --out X.png` writing X.npz over the `--images X.npz` it completes."""
    np.savez(tmp_path / "x.npz", images=np.zeros((1, 1, 2, 2), dtype=np.uint8))
    before = snapshot(tmp_path)
    for extra in ([], ["--overwrite"]):
        one_line_error(sample_cli.main, ["--pretrained", str(saved), "--complete", "--images", str(tmp_path / "x.npz"),
                                         "--num", "1", "--per-image", "1", "--out", str(tmp_path / "x.png"), *extra],
                       capsys, "fastpixel-sample", "is also the input --images", "x.npz")
    assert snapshot(tmp_path) == before


def test_sample_out_naming_a_directory(saved, tmp_path, capsys):
    (tmp_path / "d.png").mkdir()
    one_line_error(sample_cli.main, ["--pretrained", str(saved), *SAMPLE, "--out", str(tmp_path / "d.png")], capsys,
                   "fastpixel-sample", "is a folder")


def test_save_image_grid_refuses_and_overwrites(tmp_path):
    path = tmp_path / "grid.png"
    path.write_bytes(b"mine")
    images = torch.randint(0, 2, (4, 1, 3, 3), generator=torch.Generator().manual_seed(0))
    with pytest.raises(FileExistsError, match="grid.png already exists.*overwrite=True"):
        fastpixel.save_image_grid(images, path)
    assert path.read_bytes() == b"mine"
    fastpixel.save_image_grid(images, path, overwrite=True, scale=1)
    from PIL import Image

    assert np.asarray(Image.open(path)).shape == (2 * 4 + 1, 2 * 4 + 1, 3)
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(IsADirectoryError):
        fastpixel.save_image_grid(images, tmp_path / "folder.png", overwrite=True)
    assert not list(tmp_path.glob(".*tmp*"))


def test_demo_plot_refused_before_training(tmp_path, capsys, monkeypatch):
    plot = tmp_path / "nll.png"
    plot.write_bytes(b"mine")

    def never(*args, **kwargs):
        raise AssertionError("trained before checking --plot")

    monkeypatch.setattr(demo_cli, "create_model", never)
    one_line_error(demo_cli.main, ["--plot", str(plot), "--steps", "1"], capsys, "fastpixel-demo",
                   "nll.png already exists", "--overwrite")
    one_line_error(demo_cli.main, ["--plot", str(tmp_path / "nll.jpg")], capsys, "fastpixel-demo", ".png")
    assert plot.read_bytes() == b"mine"
