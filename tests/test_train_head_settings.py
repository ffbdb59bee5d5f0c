"""``head``, ``nr_logistic_mix`` and ``dropout`` are training settings (issue 21): flags of fastpixel-train,
TrainConfig fields and preset keys, checked by the rules table (fastpixel.training.model_settings), recorded in
the run so resume, fastpixel-sample and fastpixel-evaluate rebuild the same model; left out, nothing changes."""

from __future__ import annotations

import json
import re

import pytest
import torch

import fastpixel
from fastpixel import presets
from fastpixel.cli import evaluate as evaluate_cli
from fastpixel.cli import sample as sample_cli
from fastpixel.cli import train as train_cli
from fastpixel.training import TrainConfig
from fastpixel.training.model_settings import HEAD_SETTINGS, MODEL_DEFAULTS
from tests.cli_helpers import TINY_FLAGS, one_line_error

#: flags of a run of a few steps on 16 built-in digits (seconds on one core)
FEW = ["--steps", "2", "--eval-every", "0", "--checkpoint-every", "2", "--log-every", "1", "--test-limit", "8"]
#: fastpixel-train's flags for a tiny PixelCNN++ (TINY_FLAGS less --output-hidden, which it refuses)
PP_FLAGS = ["--preset", "cpu_digits256_pp", "--hidden", "2", "--layers", "1", "--batch-size", "4", "--train-limit",
            "8", "--backend", "reference", "--device", "cpu", "--quiet", "--sample-grid", "0"]


pytestmark = pytest.mark.usefixtures("one_thread")


def config_of(argv: list[str], tmp_path) -> TrainConfig:
    return train_cli.config_from_args(train_cli.build_parser().parse_args([*argv, "--run-dir", str(tmp_path / "r")]))


def build(config: TrainConfig, levels: int = 256):
    return fastpixel.create_model(config.model, channels=1, levels=levels, **config.model_options())


def head_of(model) -> tuple:
    return model.head_kind, model.nr_logistic_mix, getattr(model, "dropout", None)


# -- flags -> TrainConfig -> the model ------------------------------------------------------------------
@pytest.mark.parametrize("argv, expected", [
    (["--model", "row_lstm", "--head", "dmol", "--nr-logistic-mix", "3"], ("dmol", 3, None)),
    (["--model", "gated_pixelcnn", "--head", "dmol"], ("dmol", 10, None)),
    (["--model", "pixelcnn", "--head", "softmax"], ("softmax", None, None)),
    (["--preset", "cpu_digits256_pp", "--nr-logistic-mix", "5", "--dropout", "0.3"], ("dmol", 5, 0.3)),
    (["--preset", "cpu_digits256_pp", "--head", "dmol", "--dropout", "0"], ("dmol", 10, 0.0)),
    (["--preset", "cpu_digits256_pp"], ("dmol", 10, 0.5)),
    (["--preset", "cpu_tiny"], ("softmax", None, None)),
])
def test_the_flags_build_the_model_they_ask_for(argv, expected, tmp_path):
    config = config_of(argv, tmp_path)
    assert head_of(build(config)) == expected


def test_left_out_they_change_no_preset_and_no_model():
    """Every preset builds the model (and records the model config) it built before these settings existed."""
    assert all(presets.DEFAULTS[k] is None for k in HEAD_SETTINGS)
    for name in presets.PRESETS:
        config = TrainConfig.from_preset(name)
        assert not set(HEAD_SETTINGS) & set(config.model_options()), name
    model = build(TrainConfig(model="pixelcnn"))
    assert "head" not in model.config and "nr_logistic_mix" not in model.config


def test_what_none_means_is_what_the_models_default_to():
    pp = fastpixel.create_model("pixelcnn_pp", channels=1, levels=4, hidden=2, layers=1)
    dmol = fastpixel.create_model("pixelcnn", channels=1, levels=4, hidden=2, layers=1, head="dmol")
    assert (pp.nr_logistic_mix, pp.dropout) == (MODEL_DEFAULTS["nr_logistic_mix"], MODEL_DEFAULTS["dropout"])
    assert dmol.nr_logistic_mix == MODEL_DEFAULTS["nr_logistic_mix"]


def test_presets_and_the_api_take_them():
    config = TrainConfig.from_preset("cpu_digits256_pp", nr_logistic_mix=4, dropout=0.25)
    assert config.model_options() == dict(hidden=5, layers=1, nr_logistic_mix=4, dropout=0.25)
    config = TrainConfig(model="diagonal_bilstm", head="dmol", nr_logistic_mix=2)
    assert head_of(build(config))[:2] == ("dmol", 2)
    assert TrainConfig.from_dict(config.to_dict()) == config


# -- each bad value: one message, the same from every door -------------------------------------------------
REFUSED = [
    (dict(dropout=1.5), "dropout must be a probability in [0, 1) or None, got 1.5"),
    (dict(dropout=-0.1), "dropout must be a probability in [0, 1) or None, got -0.1"),
    (dict(dropout=True), "dropout must be a finite number, got True"),
    (dict(nr_logistic_mix=0), "nr_logistic_mix must be an int >= 1 or None, got 0"),
    (dict(nr_logistic_mix=2.0), "nr_logistic_mix must be an int >= 1 or None, got 2.0"),
    (dict(head="gaussian"), "head must be one of ('softmax', 'dmol') or None, got 'gaussian'"),
    (dict(model="pixelcnn_pp", head="softmax"),
     "--head softmax: --model pixelcnn_pp has only the dmol head (discretized mixture of logistics); leave --head out"),
    (dict(model="multiscale", head="dmol"),
     "--head dmol: --model multiscale has only the softmax head; leave --head out (the dmol head is on --model "
     "pixelcnn, row_lstm, diagonal_bilstm, gated_pixelcnn, pixelcnn_pp)"),
    (dict(dropout=0.2), "--dropout 0.2 applies only to --model pixelcnn_pp, not 'pixelcnn' (it has no dropout)"),
    (dict(model="gated_pixelcnn", head="dmol", dropout=0.2),
     "--dropout 0.2 applies only to --model pixelcnn_pp, not 'gated_pixelcnn' (it has no dropout)"),
    (dict(nr_logistic_mix=5),
     "--nr-logistic-mix 5 applies only to the dmol head; --model pixelcnn has the softmax head unless given "
     "--head dmol"),
    (dict(head="softmax", nr_logistic_mix=5),
     "--nr-logistic-mix 5 applies only to the dmol head; give --head dmol, or leave --nr-logistic-mix out"),
    (dict(model="multiscale", nr_logistic_mix=5),
     "--nr-logistic-mix 5 applies only to the dmol head; --model multiscale has only the softmax head"),
]


@pytest.mark.parametrize("settings, message", REFUSED)
def test_each_bad_setting_is_refused_with_one_message(settings, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(**settings)
    assert str(err.value) == message
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig.from_dict(settings)


@pytest.mark.parametrize("argv, fragments", [
    (["--dropout", "1.5"], ["argument --dropout: must be a probability in [0, 1), got 1.5"]),
    (["--dropout", "nan"], ["argument --dropout: must be a finite number, got nan"]),
    (["--nr-logistic-mix", "0"], ["argument --nr-logistic-mix: must be an int >= 1, got 0"]),
    (["--nr-logistic-mix", "2.5"], ["argument --nr-logistic-mix: expected an integer"]),
    (["--head", "gaussian"], ["argument --head: invalid choice: 'gaussian'", "softmax", "dmol"]),
    (["--preset", "cpu_digits256_pp", "--head", "softmax"], ["--head softmax: --model pixelcnn_pp has only the dmol"]),
    (["--model", "pixelcnn_pp", "--head", "softmax"], ["--head softmax: --model pixelcnn_pp has only the dmol"]),
    (["--model", "multiscale", "--head", "dmol"], ["--head dmol: --model multiscale has only the softmax head"]),
    (["--dropout", "0.2"], ["--dropout 0.2 applies only to --model pixelcnn_pp, not 'pixelcnn'"]),
    (["--nr-logistic-mix", "5"], ["--nr-logistic-mix 5 applies only to the dmol head", "--head dmol"]),
    (["--head", "softmax", "--nr-logistic-mix", "5"], ["--nr-logistic-mix 5 applies only to the dmol head"]),
])
def test_each_bad_flag_is_one_line_before_any_work(argv, fragments, capsys, tmp_path):
    one_line_error(train_cli.main, [*argv, "--run-dir", str(tmp_path / "r")], capsys, "fastpixel-train", *fragments)
    assert not (tmp_path / "r").exists()


def test_the_help_says_what_they_are_and_their_defaults():
    text = " ".join(train_cli.build_parser().format_help().split())
    for said in ("--head {softmax,dmol}", "discretized mixture of logistics", "(default softmax)",
                 "pixelcnn_pp has only dmol", "--nr-logistic-mix K", "(default 10)", "--dropout P", "(default 0.5)",
                 "--model pixelcnn_pp only"):
        assert said in text, said


# -- a run records them: resume, sample and evaluate rebuild the same model ----------------------------------
def train_resume_sample(tmp_path, flags: list[str], expected: tuple, method: str) -> None:
    run = tmp_path / "run"
    assert train_cli.run([*flags, *FEW, "--run-dir", str(run)])["step"] == 2
    written = json.loads((run / "config.json").read_text())
    recorded = {k: written[k] for k in HEAD_SETTINGS}
    model = fastpixel.from_pretrained(run / "checkpoint.pt")
    assert head_of(model) == expected
    assert fastpixel.create_model(**written["model_config"]).config == model.config
    # resume: the run's own settings (repeating a flag's value, or the value it stands for, changes nothing)
    repeat = ["--head", expected[0]] + (["--nr-logistic-mix", str(expected[1])] if expected[1] else [])
    result = train_cli.run(["--steps", "3", *repeat, "--run-dir", str(run), "--resume", "--quiet"])
    assert result["step"] == 3
    assert {k: json.loads((run / "config.json").read_text())[k] for k in HEAD_SETTINGS} == recorded
    assert head_of(fastpixel.from_pretrained(run / "checkpoint.pt")) == expected
    drawn = sample_cli.run(["--checkpoint", str(run / "checkpoint.pt"), "--num", "2", "--height", "3", "--width", "2",
                            "--method", method, "--out", str(tmp_path / "s.png")])
    assert tuple(drawn["images"].shape) == (2, 1, 3, 2)
    scored = evaluate_cli.run(["--checkpoint", str(run / "checkpoint.pt"), "--limit", "2", "--backend", "reference"])
    assert scored["nats_per_image"] > 0


def test_a_paper_model_with_the_dmol_head_trains_resumes_and_samples(tmp_path):
    train_resume_sample(tmp_path, ["--model", "pixelcnn", "--head", "dmol", "--nr-logistic-mix", "2", *TINY_FLAGS,
                                   "--train-limit", "16"], ("dmol", 2, None), "cached")


def test_pixelcnn_pp_with_its_own_k_and_dropout_trains_resumes_and_samples(tmp_path):
    train_resume_sample(tmp_path, [*PP_FLAGS, "--nr-logistic-mix", "2", "--dropout", "0.1"], ("dmol", 2, 0.1),
                        "cached")


def test_model_pixelcnn_pp_on_another_models_preset_drops_that_presets_output_layer(tmp_path):
    """`fastpixel-train --model pixelcnn_pp` on the default preset (cpu_tiny: output_hidden 32) trains
    PixelCNN++: the preset's output-layer settings are not the user's; given explicitly they are refused."""
    config = config_of(["--model", "pixelcnn_pp"], tmp_path)
    assert config.model == "pixelcnn_pp" and config.output_hidden is None and not config.skip
    assert config_of(["--preset", "cpu_tiny"], tmp_path).output_hidden == 32  # the preset itself unchanged
    with pytest.raises(train_cli.CommandError, match="--output-hidden and --skip do not apply to --model pixelcnn_pp"):
        config_of(["--model", "pixelcnn_pp", "--output-hidden", "8"], tmp_path)


def test_resuming_with_another_head_setting_is_refused_naming_both(tmp_path, capsys):
    run = tmp_path / "run"
    train_cli.run([*PP_FLAGS, *FEW, "--run-dir", str(run)])  # K and dropout left out: the model's own, 10 and 0.5
    for flag, value, before in (("--nr-logistic-mix", "3", "10"), ("--dropout", "0.2", "0.5")):
        one_line_error(train_cli.main, ["--run-dir", str(run), "--resume", flag, value], capsys, "fastpixel-train",
                       f"{flag} {value}", f"{before} in the run", "leave the flag out")
    assert train_cli.run(["--run-dir", str(run), "--resume", "--steps", "3", "--head", "dmol", "--dropout", "0.5",
                          "--quiet"])["step"] == 3


def test_fit_records_the_models_head(tmp_path):
    model = fastpixel.create_model("pixelcnn", channels=1, levels=4, hidden=2, layers=0, head="dmol", nr_logistic_mix=2)
    images = torch.randint(0, 4, (8, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    fastpixel.fit(model, images, steps=2, batch_size=4, sample_grid=0, run_dir=tmp_path / "fit", backend="reference")
    assert head_of(fastpixel.from_pretrained(tmp_path / "fit" / "checkpoint.pt")) == ("dmol", 2, None)


def test_fit_records_the_models_own_settings_and_resumes_a_run_that_did_not(tmp_path, monkeypatch):
    """fit's config.json says what was trained (model, hidden, layers, head settings of the model it was
    given); a run written by an older fastpixel (the settings' defaults recorded instead) still resumes."""
    from fastpixel.training import fitting

    x = torch.randint(0, 4, (8, 1, 4, 4))
    model = fastpixel.create_model("row_lstm", channels=1, levels=4, hidden=4, layers=1, head="dmol",
                                   nr_logistic_mix=2)
    fastpixel.fit(model, x, steps=1, batch_size=4, run_dir=str(tmp_path / "new"), sample_grid=0)
    written = json.loads((tmp_path / "new" / "config.json").read_text())
    assert (written["model"], written["hidden"], written["layers"], written["head"], written["nr_logistic_mix"]) == (
        "row_lstm", 4, 1, "dmol", 2)
    with monkeypatch.context() as patch:  # what fit recorded before: the settings' defaults
        patch.setattr(fitting, "settings_of_model", lambda model: {})
        fastpixel.fit(model, x, steps=1, batch_size=4, run_dir=str(tmp_path / "old"), sample_grid=0)
    assert json.loads((tmp_path / "old" / "config.json").read_text())["model"] == "pixelcnn"
    assert fastpixel.fit(model, x, steps=2, batch_size=4, run_dir=str(tmp_path / "old"), resume=True,
                         sample_grid=0)["step"] == 2
