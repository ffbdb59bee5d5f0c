"""The commands fail early and clearly (issue 13, item 6): every argument checked before work starts,
one line ``<command>: error: ...`` and exit status 2 for a user mistake, 0 on success; the installed
console scripts exit 0; ``fastpixel.sample`` stays the sampling function."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

import fastpixel
from fastpixel.cli import evaluate as evaluate_cli
from fastpixel.cli import sample as sample_cli
from fastpixel.cli import train as train_cli
from fastpixel.training import train
from tests.cli_helpers import ROOT, TINY_FLAGS, one_line_error, run_python, tiny_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    train(tiny_config(run_dir, steps=2, eval_every=0, checkpoint_every=2))
    return run_dir / "checkpoint.pt"


# -- console scripts ---------------------------------------------------------------------------------
def console_scripts() -> dict[str, str]:
    """[project.scripts] of pyproject.toml (read with a regex: tomllib is Python >= 3.11)."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]+)"', section, re.M))


def test_console_scripts_point_at_fastpixel_cli():
    assert console_scripts() == {name: f"fastpixel.cli.{name.split('-')[1]}:main" for name in
                                 ("fastpixel-demo", "fastpixel-sample", "fastpixel-train", "fastpixel-evaluate",
                                  "fastpixel-compress", "fastpixel-decompress")}


#: What setuptools' console-script wrapper does, sys.exit(main()), for each entry point in turn; SystemExit's
#: code becomes the exit status (None -> 0; anything else, e.g. a returned dict, -> printed and 1).
WRAPPER = """
import importlib, json, sys
codes = {}
for name, target, argv in json.loads(sys.argv[1]):
    module, func = target.split(":")
    sys.argv = [name, *argv]
    try:
        sys.exit(getattr(importlib.import_module(module), func)())
    except SystemExit as stop:
        codes[name] = stop.code if stop.code is None or isinstance(stop.code, int) else repr(stop.code)[:80]
print("CODES", json.dumps(codes))
"""


def test_console_scripts_exit_status(checkpoint, tmp_path):
    """Each entry point of pyproject.toml, run as its console script runs it: exit status 0 on success
    (not a result dict), 2 with one line on a user mistake. (tests/test_console_scripts_installed.py
    runs the scripts pip installs from a wheel.)"""
    import json

    good = {
        "fastpixel-train": ["--run-dir", str(tmp_path / "run"), "--steps", "2", "--eval-every", "0", *TINY_FLAGS],
        "fastpixel-evaluate": ["--checkpoint", str(checkpoint), "--limit", "2", "--backend", "reference"],
        "fastpixel-sample": ["--checkpoint", str(checkpoint), "--num", "2", "--height", "3", "--width", "3",
                             "--out", str(tmp_path / "s.png"), "--device", "cpu", "--backend", "reference"],
        "fastpixel-demo": ["--model", "pixelcnn", "--hidden", "2", "--layers", "1", "--steps", "2", "--backend",
                           "reference"],
        "fastpixel-compress": ["--pretrained", "digits", "builtin_mnist:test", "--limit", "2", "-o",
                               str(tmp_path / "c.fpx"), "--quiet"],
        "fastpixel-decompress": [str(tmp_path / "c.fpx"), "-o", str(tmp_path / "c.npz"), "--quiet"],
    }
    bad = {"fastpixel-train": ["--batch-size", "0"], "fastpixel-evaluate": ["--checkpoint", str(checkpoint),
           "--batch-size", "0"], "fastpixel-sample": ["--checkpoint", str(checkpoint), "--height", "0"],
           "fastpixel-demo": ["--steps", "0"], "fastpixel-compress": ["--chunk-size", "0"],
           "fastpixel-decompress": [str(tmp_path / "none.fpx"), "-o", str(tmp_path / "none")]}
    scripts = console_scripts()
    assert set(scripts) == set(good)
    ok = run_python(WRAPPER, json.dumps([(n, t, good[n]) for n, t in scripts.items()]), cwd=tmp_path)
    assert json.loads(ok.stdout.split("CODES", 1)[1]) == {name: None for name in scripts}, ok.stderr[-3000:]
    assert "tensor(" not in ok.stderr and "{'png'" not in ok.stderr  # no result dict printed by sys.exit
    wrong = run_python(WRAPPER, json.dumps([(n, t, bad[n]) for n, t in scripts.items()]), cwd=tmp_path)
    assert json.loads(wrong.stdout.split("CODES", 1)[1]) == {name: 2 for name in scripts}, wrong.stderr
    lines = wrong.stderr.strip().splitlines()
    assert sorted(line.split(":")[0] for line in lines) == sorted(scripts) and all(": error: " in x for x in lines)
    assert (tmp_path / "s.png").is_file() and (tmp_path / "run" / "checkpoint.pt").is_file()


def test_mains_return_none(checkpoint, tmp_path):
    assert evaluate_cli.main(["--checkpoint", str(checkpoint), "--limit", "1", "--backend", "reference"]) is None
    assert sample_cli.main(["--checkpoint", str(checkpoint), "--num", "1", "--height", "2", "--width", "2",
                            "--out", str(tmp_path / "a.png")]) is None


def test_fastpixel_sample_is_the_function_after_every_command_import():
    import importlib

    for name in ("train", "evaluate", "sample", "demo"):
        importlib.import_module(f"fastpixel.cli.{name}")
        with pytest.raises(ImportError, match=f"fastpixel.cli.{name}"):
            importlib.import_module(f"fastpixel.{name}")
    assert fastpixel.sample is fastpixel.sampling.sample and callable(fastpixel.sample)
    assert type(fastpixel).__name__ == "module" and not hasattr(fastpixel.sampling.sample, "main")


@pytest.mark.parametrize("module", ["fastpixel.train", "fastpixel.evaluate", "fastpixel.cli.train"])
def test_python_dash_m_still_works(module):
    proc = run_python(f"import runpy, sys; sys.argv = ['x', '--help']; runpy.run_module({module!r}, run_name='__main__')")
    assert proc.returncode == 0, proc.stderr
    assert "usage: fastpixel-" in proc.stdout


# -- fastpixel-train: every mistake is one line, before any work ------------------------------------
@pytest.mark.parametrize("argv, fragments", [
    (["--train-limit", "-3"], ["--train-limit", ">= 1", "-3"]),
    (["--test-limit", "0"], ["--test-limit", ">= 1"]),
    (["--batch-size", "0"], ["--batch-size"]),
    (["--steps", "0"], ["--steps"]),
    (["--eval-batch-size", "0"], ["--eval-batch-size"]),
    (["--lr", "nan"], ["--lr", "finite"]),
    (["--ema", "1"], ["--ema"]),
    (["--hidden", "x"], ["--hidden", "integer"]),
    (["--device", "tpu"], ["--device", "cpu, cuda"]),
    (["--dataset", "cifar10"], ["cifar10", "binarize='fixed'", "--binarize none", "paper_cifar10"]),
    (["--dataset", "cifar10", "--binarize", "dynamic"], ["--binarize dynamic applies only to"]),
    (["--factor", "2"], ["--factor", "--model multiscale"]),
    (["--lr-schedule", "step"], ["lr_step_every", "--lr-step-every"]),
    (["--lr-schedule", "cosine", "--warmup-steps", "300"], ["warmup_steps", "below steps"]),
    (["--model", "multiscale", "--layers", "0"], ["--layers >= 1"]),
])
def test_train_argument_errors(argv, fragments, capsys, tmp_path):
    one_line_error(train_cli.main, [*argv, "--run-dir", str(tmp_path / "r")], capsys, "fastpixel-train", *fragments)
    assert not (tmp_path / "r").exists()  # refused before anything was written


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without CUDA")
def test_train_device_cuda_without_cuda_is_explained(capsys, tmp_path):
    line = one_line_error(train_cli.main, ["--device", "cuda", "--run-dir", str(tmp_path / "r")], capsys,
                          "fastpixel-train", "--device cuda", "no CUDA device", "--device cpu")
    assert "_cuda_setDevice" not in line


def test_train_resume_without_checkpoint_is_an_error(capsys, tmp_path):
    one_line_error(train_cli.main, ["--resume", "--run-dir", str(tmp_path / "typo")], capsys, "fastpixel-train",
                   "--resume", "no checkpoint", "typo")
    assert not (tmp_path / "typo").exists()


def test_train_tensorboard_missing_is_explained(capsys, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name == "tensorboard" or name.startswith("tensorboard."):
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    one_line_error(train_cli.main, ["--tensorboard", "--run-dir", str(tmp_path / "r")], capsys, "fastpixel-train",
                   "--tensorboard", "pip install 'fastpixel[tensorboard]'")


# -- fastpixel-evaluate -------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, fragments", [
    (["--batch-size", "0"], ["--batch-size", ">= 1"]),
    (["--limit", "-1"], ["--limit", ">= 1"]),
    (["--limit", "0"], ["--limit"]),
    (["--pretrained", "digits"], ["not allowed with argument"]),
    (["--device", "cuda:7"], ["--device cuda:7"]),
    (["--dataset", "cifar10", "--data-dir", "/nonexistent"], ["/nonexistent"]),
])
def test_evaluate_argument_errors(checkpoint, extra, fragments, capsys):
    if extra[:2] == ["--device", "cuda:7"] and torch.cuda.device_count() > 7:
        pytest.skip("8 GPUs here")
    one_line_error(evaluate_cli.main, ["--checkpoint", str(checkpoint), *extra], capsys, "fastpixel-evaluate",
                   *fragments)


def test_evaluate_needs_a_model_source(capsys):
    one_line_error(evaluate_cli.main, [], capsys, "fastpixel-evaluate", "--checkpoint", "--pretrained")


# -- fastpixel-sample ---------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, fragments", [
    (["--height", "0"], ["--height"]),
    (["--width", "0"], ["--width"]),
    (["--columns", "0"], ["--columns"]),
    (["--num", "0"], ["--num"]),
    (["--scale", "1000"], ["--scale", "[1, 64]"]),
    (["--batch-size", "0"], ["--batch-size"]),
    (["--temperature", "-1"], ["--temperature"]),
    (["--out", "grid.jpg"], ["--out", ".png", "grid.npz"]),
    (["--num", "400", "--scale", "64", "--height", "28"], ["PNG would be", "--scale"]),
    (["--images", "x.npz"], ["--images applies to --complete only"]),
])
def test_sample_argument_errors_before_sampling(checkpoint, extra, fragments, capsys, tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("sampled before refusing the arguments")

    monkeypatch.setattr(sample_cli.sampling, "sample", never)
    monkeypatch.setattr(sample_cli.sampling, "complete", never)
    monkeypatch.chdir(tmp_path)
    one_line_error(sample_cli.main, ["--checkpoint", str(checkpoint), *extra], capsys, "fastpixel-sample", *fragments)
    assert not list(tmp_path.rglob("*.png")) and not list(tmp_path.rglob("*.npz"))


def test_sample_out_without_extension_gets_png(checkpoint, tmp_path):
    result = sample_cli.run(["--checkpoint", str(checkpoint), "--num", "2", "--height", "3", "--width", "2",
                             "--out", str(tmp_path / "name")])
    assert result["png"] == str(tmp_path / "name.png") and (tmp_path / "name.png").is_file()
    assert (tmp_path / "name.npz").is_file()


def test_sample_default_output_is_under_runs(checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sample_cli.build_parser().parse_args(["--checkpoint", "x"]).out.startswith("runs/")
    sample_cli.run(["--checkpoint", str(checkpoint), "--num", "1", "--height", "2", "--width", "2"])
    assert (tmp_path / "runs" / "samples.png").is_file()
    assert "runs/" in (ROOT / ".gitignore").read_text().split()


def write_pngs(folder, count: int, size: int, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        Image.fromarray((rng.random((size, size)) < 0.5).astype(np.uint8) * 255, mode="L").save(folder / f"{k}.png")


def test_sample_size_defaults_to_the_training_images(tmp_path):
    """A model trained on 8x8 PNGs samples 8x8 (it sampled 32x32 before)."""
    write_pngs(tmp_path / "data" / "train", 8, 8, 0)
    write_pngs(tmp_path / "data" / "test", 2, 8, 1)
    train_cli.main(["--dataset", "png", "--data-dir", str(tmp_path / "data"), "--binarize", "none", "--steps", "1",
                    "--batch-size", "4", "--hidden", "2", "--layers", "0", "--output-hidden", "4", "--quiet",
                    "--sample-grid", "0", "--backend", "reference", "--run-dir", str(tmp_path / "run")])
    result = sample_cli.run(["--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--num", "2",
                             "--out", str(tmp_path / "s.png")])
    assert tuple(result["images"].shape) == (2, 1, 8, 8)
    assert int(result["images"].max()) < 256


# -- --complete --images --------------------------------------------------------------------------------
def complete_argv(checkpoint, images, out) -> list[str]:
    return ["--checkpoint", str(checkpoint), "--complete", "--images", str(images), "--num", "1", "--per-image", "1",
            "--out", str(out)]


@pytest.mark.parametrize("make, fragments", [
    (lambda p: np.savez(p, images=np.full((2, 1, 4, 4), 0.7, dtype=np.float32)), ["float32", "integers"]),
    (lambda p: np.savez(p), ["holds no arrays"]),
    (lambda p: np.savez(p, images=np.zeros((0, 1, 4, 4), dtype=np.uint8)), ["N >= 1"]),
    (lambda p: np.savez(p, images=np.zeros((2, 3, 4, 4), dtype=np.uint8)), ["do not fit", "1 channel"]),
    (lambda p: np.savez(p, images=np.full((2, 1, 4, 4), 5, dtype=np.uint8)), ["values in [5, 5]", "2 levels"]),
    (lambda p: np.savez(p, a=np.zeros((2, 1, 4, 4), np.uint8), b=np.zeros(3)), ["no 'images' array"]),
    (lambda p: p.write_bytes(b"not numpy"), ["cannot read"]),
])
def test_complete_images_file_errors(checkpoint, tmp_path, make, fragments, capsys):
    path = tmp_path / "src.npz"
    make(path)
    one_line_error(sample_cli.main, complete_argv(checkpoint, path, tmp_path / "c.png"), capsys, "fastpixel-sample",
                   *fragments)
    assert not (tmp_path / "c.png").exists()


def test_complete_images_from_npy(checkpoint, tmp_path, capsys):
    images = np.random.default_rng(0).integers(0, 2, (3, 4, 5), dtype=np.int64)  # (N, H, W): one channel
    np.save(tmp_path / "src.npy", images)
    result = sample_cli.run(complete_argv(checkpoint, tmp_path / "src.npy", tmp_path / "c.png"))
    assert tuple(result["completions"].shape) == (1, 1, 1, 4, 5)
    assert torch.equal(result["completions"][0, 0, 0, :2], torch.from_numpy(images[0, :2]))  # the known top half
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    one_line_error(sample_cli.main, complete_argv(checkpoint, tmp_path / "objects.npy", tmp_path / "d.png"), capsys,
                   "fastpixel-sample", "cannot read")


def test_readme_commands_parse():
    """Every fastpixel-* / python -m fastpixel.* command line in the README parses; completion shows --num."""
    parsers = {"train": train_cli.build_parser(), "evaluate": evaluate_cli.build_parser(),
               "sample": sample_cli.build_parser()}
    text = (ROOT / "README.md").read_text()
    lines = re.findall(r"^(?:fastpixel-|python -m fastpixel\.(?:cli\.)?)(train|evaluate|sample)\b(.*)$", text, re.M)
    assert {name for name, _ in lines} == set(parsers)
    for name, rest in lines:
        argv = rest.split("#")[0].split()
        if "--help" not in argv:
            parsers[name].parse_args(argv)
    completions = [rest for name, rest in lines if name == "sample" and "--complete" in rest]
    assert completions and all("--num" in rest for rest in completions)


# -- --pretrained ----------------------------------------------------------------------------------------
def test_pretrained_model_in_sample_and_evaluate(tmp_path, capsys):
    torch.manual_seed(0)
    model = fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1)
    model.save_pretrained(tmp_path / "saved", info={"dataset": "builtin_mnist", "binarize": "fixed",
                                                     "height": 28, "width": 28})
    drawn = sample_cli.run(["--pretrained", str(tmp_path / "saved"), "--num", "2", "--out", str(tmp_path / "p.png"),
                            "--backend", "reference"])
    assert tuple(drawn["images"].shape) == (2, 1, 28, 28)
    expected = fastpixel.sample(model, 2, height=28, width=28, generator=torch.Generator().manual_seed(0))
    assert torch.equal(drawn["images"], expected)
    scored = evaluate_cli.run(["--pretrained", str(tmp_path / "saved"), "--limit", "3", "--backend", "reference"])
    assert "fixed, seed 0" in capsys.readouterr().out and scored["images"] == 3
    one_line_error(sample_cli.main, ["--pretrained", str(tmp_path / "saved"), "--weights", "ema"], capsys,
                   "fastpixel-sample", "--weights ema applies to --checkpoint only")
    one_line_error(sample_cli.main, ["--pretrained", "no_such_model"], capsys, "fastpixel-sample", "no_such_model")


@pytest.mark.skipif("digits" not in __import__("fastpixel.persistence").persistence.pretrained_names(),
                    reason="the shipped digits model is not in this tree yet")
def test_pretrained_digits_samples_28x28(tmp_path):
    drawn = sample_cli.run(["--pretrained", "digits", "--num", "1", "--out", str(tmp_path / "d.png")])
    assert tuple(drawn["images"].shape[2:]) == (28, 28)
