"""fastpixel-evaluate (fastpixel.cli.evaluate): whole-split NLL from a checkpoint, with the protocol printed."""

from __future__ import annotations

import json
import math

import pytest
import torch

import fastpixel
from fastpixel import presets
from fastpixel.data import load_dataset
from fastpixel.cli.evaluate import main, run
from fastpixel.training import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    directory = tmp_path_factory.mktemp("run")
    config = presets.resolve("cpu_tiny", dict(hidden=4, layers=1, output_hidden=8, batch_size=8, train_limit=32,
                                              test_limit=24, steps=3, lr=1e-2, eval_every=0, checkpoint_every=3,
                                              log_every=1, ema=0.5, sample_grid=0))
    config.update(run_dir=str(directory), resume=False, overwrite=False, backend="reference", device="cpu",
                  progress=False, quiet=True)
    result = train(config)
    yield directory, result
    torch.set_num_threads(threads)


def float64_nll(state: dict, model_config: dict, images: torch.Tensor) -> float:
    model = fastpixel.create_model(**model_config, backend="reference").double()
    model.load_state_dict(state)
    with torch.no_grad():
        return float(model.nll(images.long()).mean())


def test_evaluate_matches_float64_and_training_log(run_dir, capsys):
    directory, trained = run_dir
    argv = ["--checkpoint", str(directory / "checkpoint.pt"), "--limit", "24", "--backend", "reference", "--json"]
    result = run(argv)
    out = capsys.readouterr().out
    ckpt = torch.load(directory / "checkpoint.pt", weights_only=True)
    images = load_dataset("builtin_mnist", "test", binarize="fixed").images[:24]
    expected = float64_nll(ckpt["model"], ckpt["model_config"], images)
    assert result["images"] == 24 and result["step"] == 3
    assert result["nats_per_image"] == pytest.approx(expected, rel=1e-6)
    assert result["nats_per_image"] == pytest.approx(trained["test"]["nats_per_image"], rel=1e-12)
    assert result["bits_per_dim"] == pytest.approx(expected / (784 * math.log(2)), rel=1e-6)
    assert "data: built-in MNIST digits" in out and "fixed, seed 0" in out and "NOT the paper's protocol" in out
    assert "test NLL:" in out and "nats/image" in out and "bits/dim" in out
    assert "-log p(x|y)" not in out  # an unconditional model's NLL is -log p(x)
    assert json.loads(out.strip().splitlines()[-1])["nats_per_image"] == result["nats_per_image"]


def test_evaluate_whole_split_and_ema(run_dir, capsys):
    directory, _ = run_dir
    whole = run(["--checkpoint", str(directory / "checkpoint.pt"), "--backend", "reference", "--batch-size", "500"])
    assert whole["images"] == 1000 and "1000 images of (1, 28, 28)" in capsys.readouterr().out
    ema = run(["--checkpoint", str(directory / "checkpoint.pt"), "--weights", "ema", "--limit", "24",
                "--backend", "reference"])
    ckpt = torch.load(directory / "checkpoint.pt", weights_only=True)
    state = {k[len("module."):]: v for k, v in ckpt["ema"].items() if k.startswith("module.")}
    images = load_dataset("builtin_mnist", "test", binarize="fixed").images[:24]
    assert ema["nats_per_image"] == pytest.approx(float64_nll(state, ckpt["model_config"], images), rel=1e-6)


def test_evaluate_errors(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        run(["--checkpoint", str(tmp_path / "absent.pt")])
    (tmp_path / "broken.pt").write_bytes(b"\x00" * 10)
    with pytest.raises(RuntimeError, match="broken.pt: cannot read"):
        run(["--checkpoint", str(tmp_path / "broken.pt")])
    for name in ("absent.pt", "broken.pt"):  # the console entry point: one line, exit status 2
        with pytest.raises(SystemExit) as exit_info:
            main(["--checkpoint", str(tmp_path / name)])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.startswith("fastpixel-evaluate: error: ") and name in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_console_entry_point_and_missing_ema(run_dir, tmp_path, capsys):
    directory, _ = run_dir
    assert main(["--checkpoint", str(directory / "checkpoint.pt"), "--limit", "2", "--backend", "reference"]) is None
    ckpt = torch.load(directory / "checkpoint.pt", weights_only=True)
    torch.save({**ckpt, "ema": None}, tmp_path / "no_ema.pt")
    with pytest.raises(ValueError, match="no EMA weights"):
        run(["--checkpoint", str(tmp_path / "no_ema.pt"), "--weights", "ema"])
    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", str(tmp_path / "no_ema.pt"), "--weights", "ema"])
    assert exit_info.value.code == 2 and "no EMA weights" in capsys.readouterr().err


def test_a_conditional_model_says_its_nll_is_given_the_label(capsys):
    run(["--pretrained", "digits-conditional", "--limit", "4", "--backend", "torch", "--device", "cpu"])
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[-2].startswith("test NLL:")
    assert lines[-1].startswith("conditional model:") and "-log p(x|y)" in lines[-1]
