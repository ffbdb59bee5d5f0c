"""Files written by fastpixel 0.1.0 (tests/fixtures/format_0_1_0, made before issue 17) still work:
a run resumes to the same metrics and weights, its checkpoint evaluates to the same figures and
loads as a model, and its saved model loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import fastpixel
from fastpixel.cli import evaluate as evaluate_cli
from fastpixel.cli import train as train_cli

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "format_0_1_0"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
#: The flags the fixture's run was made with (see its README.md).
FLAGS = ["--preset", "cpu_tiny", "--hidden", "2", "--layers", "1", "--output-hidden", "4", "--batch-size", "4",
         "--train-limit", "8", "--test-limit", "4", "--eval-every", "2", "--checkpoint-every", "2", "--log-every", "1",
         "--ema", "0.5", "--sample-grid", "0", "--backend", "reference", "--device", "cpu", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_an_old_run_resumes_to_the_same_metrics_and_weights(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE / "run", run)
    result = train_cli.run([*FLAGS, "--steps", "4", "--run-dir", str(run), "--resume"])
    assert result["step"] == 4
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in records] == EXPECTED["resumed_metrics"]
    state = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    expected = load_file(str(FIXTURE / "resumed_model.safetensors"))
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in state)


def test_an_old_finished_run_says_so(tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE / "run", run)
    result = train_cli.run([*FLAGS, "--steps", "2", "--run-dir", str(run), "--resume"])
    assert result["step"] == 2 and "already finished at step 2 of 2" in capsys.readouterr().err
    assert result["test"]["nats_per_image"] == EXPECTED["resumed_metrics"][2]["nats_per_image"]


@pytest.mark.parametrize("weights", ["model", "ema"])
def test_an_old_checkpoint_evaluates_to_the_same_figures(weights):
    result = evaluate_cli.run(["--checkpoint", str(FIXTURE / "run" / "checkpoint.pt"), "--weights", weights,
                               "--limit", "4", "--backend", "reference"])
    assert result == EXPECTED["evaluate"][weights]


def test_an_old_checkpoint_loads_as_a_model_and_its_export_matches():
    model = fastpixel.from_pretrained(FIXTURE / "run" / "checkpoint.pt", weights="ema")
    saved = fastpixel.from_pretrained(FIXTURE / "saved_model")
    assert saved.config == model.config and saved.pretrained_info["step"] == 2
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), saved.state_dict().values()))
    x = torch.randint(0, 2, (2, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.log_prob(x), saved.log_prob(x))


def test_a_run_from_before_the_head_settings_resumes_with_the_models_defaults(tmp_path):
    """A PixelCNN++ run written before head / nr_logistic_mix / dropout were settings (none of them in its
    config.json or its checkpoint's train_config) resumes, and its model keeps K = 10 and dropout 0.5."""
    run = tmp_path / "run"
    flags = ["--preset", "cpu_digits256_pp", "--hidden", "2", "--layers", "1", "--batch-size", "4", "--train-limit",
             "8", "--test-limit", "4", "--eval-every", "0", "--sample-grid", "0", "--backend", "reference", "--device",
             "cpu", "--quiet", "--run-dir", str(run)]
    train_cli.run([*flags, "--steps", "2", "--checkpoint-every", "2"])
    old_keys = ("head", "nr_logistic_mix", "dropout")
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k not in old_keys}))
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    checkpoint["train_config"] = {k: v for k, v in checkpoint["train_config"].items() if k not in old_keys}
    torch.save(checkpoint, run / "checkpoint.pt")
    assert train_cli.run(["--run-dir", str(run), "--resume", "--steps", "3", "--quiet"])["step"] == 3
    model = fastpixel.from_pretrained(run / "checkpoint.pt")
    assert (model.nr_logistic_mix, model.dropout) == (10, 0.5)
