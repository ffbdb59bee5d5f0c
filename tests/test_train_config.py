"""TrainConfig (issue 17, item 4): one typed, frozen training config, checked once against one table of
rules, with the messages the commands gave before; built from a preset, the command line, fit() and a
saved run."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

import fastpixel
from fastpixel import presets
from fastpixel.cli import train as train_cli
from fastpixel.training import TrainConfig, train
from fastpixel.training.config import FIELDS, INVOCATION
from fastpixel.training.rules import RULES
from tests.cli_helpers import one_line_error

FIXTURE_RUN = Path(__file__).resolve().parent / "fixtures" / "format_0_1_0" / "run"

#: (setting, bad value, the message): the first block is what train() / fit() said before issue 17 (checked
#: against that code), word for word.
REFUSED = [
    ("steps", 0, "steps must be an int >= 1, got 0"),
    ("batch_size", 0, "batch_size must be an int >= 1, got 0"),
    ("eval_batch_size", 0, "eval_batch_size must be an int >= 1, got 0"),
    ("log_every", 0, "log_every must be an int >= 1, got 0"),
    ("checkpoint_every", 0, "checkpoint_every must be an int >= 1, got 0"),
    ("keep", 0, "keep must be an int >= 1, got 0"),
    ("eval_every", -1, "eval_every must be an int >= 0, got -1"),
    ("sample_grid", -1, "sample_grid must be an int >= 0, got -1"),
    ("warmup_steps", -1, "warmup_steps must be an int >= 0, got -1"),
    ("steps", True, "steps must be an int >= 1, got True"),  # a bool is not a count
    ("steps", 2.0, "steps must be an int >= 1, got 2.0"),
    ("lr", float("nan"), "lr must be a finite number, got nan"),
    ("lr", "0.1", "lr must be a finite number, got '0.1'"),
    ("lr", 0.0, "lr must be > 0, got 0.0"),
    ("clip_grad", -1.0, "clip_grad must be >= 0 (0: off), got -1.0"),
    ("clip_grad", float("inf"), "clip_grad must be a finite number, got inf"),
    ("ema", 1.0, "ema must be a decay in [0, 1) (0: off), got 1.0"),
    ("lr_schedule", "linear", "lr_schedule must be one of ('constant', 'cosine', 'step'), got 'linear'"),
    # checked before issue 17 by argparse only (or not at all): every door now gets them from the same table
    ("ema", True, "ema must be a finite number, got True"),  # was "a decay in [0, 1)": True counted as 1
    ("hidden", 0, "hidden must be an int >= 1, got 0"),
    ("layers", -1, "layers must be an int >= 0, got -1"),
    ("train_limit", 0, "train_limit must be an int >= 1 or None, got 0"),
    ("skip", "yes", "skip must be a bool (True or False), got 'yes'"),
    ("bf16", 1, "bf16 must be a bool (True or False), got 1"),
    ("resume", "False", "resume must be a bool (True or False), got 'False'"),
    ("model", "pixelsnail", "model must be one of ('diagonal_bilstm', 'gated_pixelcnn', 'multiscale', 'pixelcnn', "
                            "'pixelcnn_pp', 'row_lstm'), got 'pixelsnail'"),
    ("backend", "cuda", "backend must be one of ('reference', 'torch', 'triton', 'auto') or None, got 'cuda'"),
    ("seed", -1, "seed must be an int >= 0, got -1"),
]

#: (settings, the message): the rules between settings, as the commands said them.
REFUSED_TOGETHER = [
    (dict(lr_schedule="step"), "the step schedule needs lr_step_every, an int >= 1 (--lr-step-every), got None"),
    (dict(lr_schedule="step", lr_step_every=2, lr_gamma=0.0), "lr_gamma must be in (0, 1], got 0.0"),
    (dict(lr_schedule="cosine", steps=300, warmup_steps=300),
     "warmup_steps (300) must be below steps (300) for the cosine schedule"),
    (dict(steps=5, warmup_steps=10), "--warmup-steps 10 exceeds --steps 5"),
    (dict(factor=2), "--factor applies only to --model multiscale, not 'pixelcnn'"),
    (dict(model="row_lstm", kind="row_lstm", factor=2), "--factor, --kind apply only to --model multiscale, not "
                                                        "'row_lstm'"),
    (dict(model="multiscale", layers=0), "--model multiscale needs --layers >= 1 (the small image biases every LSTM "
                                         "layer)"),
    (dict(dataset="cifar10", binarize="dynamic"),
     "--binarize dynamic applies only to builtin_mnist, mnist, fashion_mnist, not cifar10"),
]


@pytest.mark.parametrize("key, value, message", REFUSED)
def test_each_bad_value_is_refused_with_the_commands_message(key, value, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(**{key: value})
    assert str(err.value) == message
    good = TrainConfig()
    with pytest.raises(ValueError, match=re.escape(message)):
        good.replace(**{key: value})  # a copy is checked again
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig.from_dict({key: value})


@pytest.mark.parametrize("settings, message", REFUSED_TOGETHER)
def test_each_bad_combination_is_refused_with_the_commands_message(settings, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(**settings)
    assert str(err.value) == message


def test_a_preset_that_binarizes_says_so_for_colour_data():
    with pytest.raises(ValueError) as err:
        TrainConfig.from_preset("cpu_tiny", dataset="cifar10")
    assert str(err.value).startswith("--dataset cifar10: the preset cpu_tiny binarizes (binarize='fixed'), which "
                                     "applies only to the 8-bit grey sets builtin_mnist, mnist, fashion_mnist; add "
                                     "--binarize none, or pick a preset made for it (paper_cifar10")


@pytest.mark.parametrize("argv, message", [
    (["--lr-schedule", "step"], "the step schedule needs lr_step_every, an int >= 1 (--lr-step-every), got None"),
    (["--steps", "5", "--warmup-steps", "10"], "--warmup-steps 10 exceeds --steps 5"),
    (["--factor", "2"], "--factor applies only to --model multiscale, not 'pixelcnn'"),
])
def test_the_command_and_fit_print_the_configs_message(argv, message, capsys, tmp_path):
    line = one_line_error(train_cli.main, [*argv, "--run-dir", str(tmp_path / "r")], capsys, "fastpixel-train")
    assert line == f"fastpixel-train: error: {message}"


def test_fit_is_checked_by_the_same_table():
    model = fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=0)
    images = torch.zeros(4, 1, 3, 3, dtype=torch.long)
    for kwargs, message in [(dict(steps=0), "steps must be an int >= 1, got 0"),
                            (dict(steps=2, ema=True), "ema must be a finite number, got True"),
                            (dict(steps=2, tensorboard="no"), "tensorboard must be a bool (True or False), got 'no'"),
                            (dict(steps=2, warmup_steps=5), "--warmup-steps 5 exceeds --steps 2")]:
        with pytest.raises(ValueError) as err:
            fastpixel.fit(model, images, batch_size=1, **kwargs)
        assert str(err.value) == message


def test_one_rule_per_field_and_the_presets_defaults():
    assert set(RULES) == set(FIELDS)
    assert set(FIELDS) == set(presets.DEFAULTS) | {"preset"} | set(INVOCATION)
    config = TrainConfig()
    assert all(getattr(config, k) == v for k, v in presets.DEFAULTS.items())


def test_frozen_and_built_from_every_door(tmp_path):
    config = TrainConfig.from_preset("cpu_tiny", steps=50, run_dir=tmp_path, hidden=None)
    assert (config.steps, config.hidden, config.preset, config.run_dir) == (50, 8, "cpu_tiny", str(tmp_path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 3
    assert config.replace(steps=7).steps == 7 and config.steps == 50
    args = train_cli.build_parser().parse_args(["--steps", "50", "--run-dir", str(tmp_path)])
    assert train_cli.config_from_args(args) == config.replace(backend="auto", progress=True)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig.from_saved(config.settings()) == config.replace(run_dir=None)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['hiden'\]"):
        TrainConfig.from_dict({"hiden": 3})
    with pytest.raises(ValueError, match="unknown preset 'paper_svhn'"):
        TrainConfig.from_preset("paper_svhn")
    assert TrainConfig(model="multiscale").kind == "diagonal_bilstm"  # the command's default, for every door


def test_a_saved_run_gives_back_its_config(tmp_path):
    """A run directory of fastpixel 0.1.0 (the fixture) and one written now give back their settings."""
    old = TrainConfig.from_run(FIXTURE_RUN)
    assert (old.preset, old.steps, old.hidden, old.ema, old.run_dir) == ("cpu_tiny", 2, 2, 0.5, str(FIXTURE_RUN))
    assert not old.resume and old.backend is None  # the invocation is not taken from the run
    checkpoint = torch.load(FIXTURE_RUN / "checkpoint.pt", weights_only=True)
    assert TrainConfig.from_saved(checkpoint["train_config"]) == old.replace(run_dir=None)
    config = TrainConfig.from_preset("cpu_tiny", hidden=2, layers=0, output_hidden=4, batch_size=4, train_limit=8,
                                     test_limit=4, steps=1, eval_every=0, sample_grid=0, run_dir=tmp_path,
                                     backend="reference", quiet=True)
    train(config)
    assert TrainConfig.from_run(tmp_path) == config.replace(backend=None, quiet=False)
    written = json.loads((tmp_path / "config.json").read_text())
    assert {k: written[k] for k in FIELDS} == config.to_dict()
    with pytest.raises(FileNotFoundError, match="config.json"):
        TrainConfig.from_run(tmp_path / "nothing")
