"""Nothing silent (issue 18, items 2, 4, 5): a table of mistakes per command and for the API.

Each row is (arguments -> exit status and the fragments of the ONE line ``fastpixel-X: error: ...``);
rows run in-process through ``main(argv)`` (fast), and a handful run through the installed console
scripts. Every row was a silent wrong result, a traceback or an unclear line before issue 18.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import fastpixel
from fastpixel.checkpoint import read_checkpoint, save_checkpoint
from fastpixel.cli import demo as demo_cli
from fastpixel.cli import evaluate as evaluate_cli
from fastpixel.cli import sample as sample_cli
from fastpixel.cli import train as train_cli
from fastpixel.training import TrainConfig, train
from tests.cli_helpers import ROOT, TINY_FLAGS, one_line_error, tiny_config

CPU_ONLY = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A good checkpoint, one with NaN weights, a truncated one, a saved model with NaN weights, odd files."""
    root = tmp_path_factory.mktemp("hostile")
    train(tiny_config(root / "run", steps=1, eval_every=0, ema=0.0))
    good = root / "run" / "checkpoint.pt"
    state = read_checkpoint(good)
    state["model"] = {k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in state["model"].items()}
    save_checkpoint(root / "nan.pt", state)
    (root / "truncated.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    model = fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1)
    model.save_pretrained(root / "nan_model", info={"dataset": "builtin_mnist", "binarize": "fixed"})
    save_file({k: torch.full_like(v, float("nan")) for k, v in model.state_dict().items()},
              str(root / "nan_model" / "model.safetensors"))
    (root / "text.npz").write_text("just some text, not numpy\n")
    np.save(root / "floats.npy", np.full((2, 1, 4, 4), 0.5, dtype=np.float32))
    np.save(root / "good.npy", np.zeros((2, 1, 28, 28), dtype=np.uint8))
    (root / "a_file").write_text("x")
    return root


def no_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


# -- fastpixel-train ---------------------------------------------------------------------------------------
TRAIN = ["--hidden", "4", "--layers", "1", "--output-hidden", "8", "--batch-size", "8", "--train-limit", "32",
         "--test-limit", "16", "--quiet", "--sample-grid", "0"]
TRAIN_ROWS = [
    (["--data-dir", "somewhere"], ["--data-dir", "built into fastpixel"]),
    (["--steps", "0"], ["--steps", "must be an int >= 1, got 0"]),
    (["--steps", "2.5"], ["--steps", "expected an integer"]),
    (["--lr", "nan"], ["--lr", "finite"]),
    (["--ema", "1"], ["--ema", "[0, 1)"]),
    (["--resume", "--overwrite"], ["contradict each other"]),
    (["--resume"], ["--resume: no checkpoint"]),
]
#: Mistakes only where there is no GPU (a CUDA machine runs them).
TRAIN_CPU_ROWS = [
    (["--bf16", "--device", "cpu"], ["--bf16", "needs a CUDA device"]),
    (["--backend", "triton", "--device", "cpu"], ["--backend triton cannot run on cpu", "TRITON_INTERPRET=1"]),
    (["--device", "cuda"], ["--device cuda", "no CUDA device"]),
]


@pytest.mark.parametrize("extra, fragments", TRAIN_ROWS + (TRAIN_CPU_ROWS if CPU_ONLY else []))
def test_train_mistakes(tmp_path, capsys, monkeypatch, extra, fragments):
    no_interpreter(monkeypatch)
    one_line_error(train_cli.main, ["--run-dir", str(tmp_path / "r"), *TRAIN, *extra], capsys,
                   "fastpixel-train", *fragments)
    assert not (tmp_path / "r").exists()


def test_train_truncated_checkpoint_and_run_dir_file(files, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(files / "run", run)
    shutil.copyfile(files / "truncated.pt", run / "checkpoint.pt")
    one_line_error(train_cli.main, ["--run-dir", str(run), "--resume", "--quiet"], capsys, "fastpixel-train",
                   "truncated or corrupt")
    one_line_error(train_cli.main, ["--run-dir", str(files / "a_file"), *TINY_FLAGS], capsys, "fastpixel-train",
                   "is a file, not a directory")


# -- fastpixel-evaluate -------------------------------------------------------------------------------------
EVALUATE_ROWS = [
    ("nan.pt", [], ["refusing to evaluate", "NaN or inf"]),
    ("truncated.pt", [], ["truncated or corrupt"]),
    ("good", ["--backend", "triton"], ["--backend triton cannot run on cpu"]),
    ("good", ["--data-dir", "x"], ["--data-dir x", "built into fastpixel"]),
    ("good", ["--images", "text.npz"], ["text.npz", "not an npz archive"]),
    ("good", ["--images", "floats.npy"], ["floats.npy", "float32", "quantise"]),
    ("good", ["--images", "good.npy", "--dataset", "mnist"], ["--dataset select a data set", "--images"]),
    ("good", ["--images", "missing.npz"], ["missing.npz", "no such file"]),
    ("good", ["--limit", "0"], ["--limit", "must be an int >= 1"]),
    ("good", ["--limit", "5000"], ["limit 5000 exceeds the 1000 images", "builtin_mnist 'test'"]),
    ("good", ["--images", "good.npy", "--limit", "3"], ["--limit 3", "holds 2 images"]),
]


@pytest.mark.parametrize("source, extra, fragments", EVALUATE_ROWS)
def test_evaluate_mistakes(files, capsys, monkeypatch, source, extra, fragments):
    no_interpreter(monkeypatch)
    checkpoint = files / "run" / "checkpoint.pt" if source == "good" else files / source
    extra = [str(files / a) if a.endswith((".npz", ".npy")) else a for a in extra]
    one_line_error(evaluate_cli.main, ["--checkpoint", str(checkpoint), "--device", "cpu", *extra], capsys,
                   "fastpixel-evaluate", *fragments)


def test_evaluate_own_images(files, capsys):
    """`fastpixel-evaluate --images FILE` scores the file with the same checks as training data."""
    result = evaluate_cli.run(["--checkpoint", str(files / "run" / "checkpoint.pt"), "--images",
                               str(files / "good.npy"), "--backend", "reference", "--device", "cpu"])
    model = fastpixel.from_pretrained(files / "run" / "checkpoint.pt")
    expected = model.nll(torch.zeros(2, 1, 28, 28, dtype=torch.long)).double().mean().item()
    assert result["images"] == 2 and abs(result["nats_per_image"] - expected) < 1e-4
    from PIL import Image

    Image.fromarray(np.full((28, 28), 255, np.uint8), mode="L").save(files / "white.png")
    one_line_error(evaluate_cli.main, ["--checkpoint", str(files / "run" / "checkpoint.pt"), "--images",
                                       str(files / "white.png")], capsys, "fastpixel-evaluate", "values in [255, 255]",
                   "2 levels")


# -- fastpixel-sample ---------------------------------------------------------------------------------------
SAMPLE_ROWS = [
    (["--checkpoint", "nan.pt"], ["refusing to sample", "NaN or inf"]),
    (["--pretrained", "nan_model"], ["refusing to sample", "NaN or inf"]),
    (["--checkpoint", "truncated.pt"], ["truncated or corrupt"]),
    (["--checkpoint", "good", "--backend", "triton", "--method", "naive"], ["--backend triton cannot run on cpu"]),
    (["--checkpoint", "good", "--backend", "triton"], ["cannot run on cpu"]),
    (["--checkpoint", "good", "--complete", "--images", "text.npz"], ["not an npz archive"]),
    (["--checkpoint", "good", "--num", "0"], ["--num", "must be an int in [1, 100000], got 0"]),
    (["--checkpoint", "good", "--temperature", "inf"], ["--temperature", "finite"]),
    (["--checkpoint", "good", "--complete", "--images", "good.npy", "--num", "3"], ["--num 3", "holds 2 images"]),
]


@pytest.mark.parametrize("extra, fragments", SAMPLE_ROWS)
def test_sample_mistakes(files, tmp_path, capsys, monkeypatch, extra, fragments):
    no_interpreter(monkeypatch)
    resolve = {"good": files / "run" / "checkpoint.pt"}
    extra = [str(resolve.get(a) or (files / a if (files / a).exists() else a)) for a in extra]
    one_line_error(sample_cli.main, [*extra, "--height", "2", "--width", "2", "--num", "1", "--out",
                                     str(tmp_path / "s.png")] if "--num" not in extra else
                   [*extra, "--out", str(tmp_path / "s.png")], capsys, "fastpixel-sample", *fragments)
    assert not list(tmp_path.iterdir())


def test_sample_triton_is_refused_for_the_cached_sampler(files, tmp_path, capsys):
    """With triton usable (here: the interpreter) the cached sampler used to ignore --backend triton."""
    one_line_error(sample_cli.main, ["--checkpoint", str(files / "run" / "checkpoint.pt"), "--backend", "triton",
                                     "--out", str(tmp_path / "s.png")], capsys, "fastpixel-sample",
                   "--backend triton applies to --method naive")


# -- fastpixel-demo -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, fragments", [
    (["--batch", "0"], ["--batch", "must be an int >= 1"]),
    (["--backend", "triton"], ["--backend triton cannot run on cpu"]),
    (["--plot", "/proc/no/such/nll.png"], ["--plot", "cannot write in"]),
    (["--threads", "0"], ["--threads"]),
])
def test_demo_mistakes(capsys, monkeypatch, extra, fragments):
    no_interpreter(monkeypatch)
    one_line_error(demo_cli.main, ["--steps", "1", *extra], capsys, "fastpixel-demo", *fragments)


# -- every command: --version, FASTPIXEL_TRACEBACK ------------------------------------------------------------
@pytest.mark.parametrize("main", [train_cli.main, evaluate_cli.main, sample_cli.main, demo_cli.main])
def test_version_on_every_command(main, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and fastpixel.__version__ in capsys.readouterr().out


def test_traceback_on_request(files, monkeypatch):
    monkeypatch.setenv("FASTPIXEL_TRACEBACK", "1")
    with pytest.raises(ValueError, match="NaN or inf"):
        sample_cli.main(["--checkpoint", str(files / "nan.pt"), "--num", "1", "--height", "2", "--width", "2"])


# -- the API --------------------------------------------------------------------------------------------------
def small():
    return fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=2, layers=1)


def nan_model():
    model = small()
    with torch.no_grad():
        model.output_conv2.bias.fill_(float("nan"))
    return model


API_ROWS = [
    (lambda: fastpixel.sample(nan_model(), 1, height=2, width=2), ValueError, "refusing to sample"),
    (lambda: fastpixel.complete(nan_model(), torch.zeros(1, 1, 2, 2, dtype=torch.long),
                                torch.ones(1, 1, 2, 2, dtype=torch.bool)), ValueError, "refusing to complete"),
    (lambda: fastpixel.sample(small(), True, height=2, width=2), ValueError, "num must be an int in"),
    (lambda: fastpixel.sample(small(), 1, height=0, width=2), ValueError, "height must be an int in"),
    (lambda: fastpixel.sample(small(), 1, height=2, width=2, generator=0), ValueError,
     "generator must be a torch.Generator or None"),
    (lambda: fastpixel.save_pretrained(nan_model(), "/nonexistent-dir/m"), ValueError, "refusing to save"),
    (lambda: fastpixel.from_pretrained("digits", device="cuda"), ValueError, "no CUDA device"),
    (lambda: fastpixel.from_pretrained("digits", device="tpu"), ValueError, "expected cpu, cuda or cuda:N"),
    (lambda: small().log_prob(torch.zeros(1, 1, 1, 1, dtype=torch.uint8).expand(1, 1, 60000, 60000)), MemoryError,
     "would need about"),
    (lambda: fastpixel.sample(small(), 100_000, height=4096, width=4096), MemoryError, "draw fewer images"),
    (lambda: fastpixel.fit(small(), torch.zeros(4, 1, 2, 2, dtype=torch.long), steps="3"), ValueError,
     "steps must be an int >= 1, got '3'"),
    (lambda: fastpixel.fit(small(), torch.zeros(4, 1, 2, 2, dtype=torch.long), steps=1, batch_size=2, bf16=True),
     ValueError, "needs a CUDA device"),
    (lambda: TrainConfig(dataset="builtin_mnist", data_dir="data"), ValueError, "built into fastpixel"),
    (lambda: TrainConfig(skip="no"), ValueError, "skip must be a bool"),
    (lambda: fastpixel.save_image_grid(torch.zeros(1, 1, 2, 2, dtype=torch.long), "/tmp/x.png", overwrite="yes"),
     ValueError, "overwrite must be a bool"),
    (lambda: fastpixel.save_image_grid(torch.zeros(1, 1, 2, 2, dtype=torch.long), "/tmp/x.png", scale=0),
     ValueError, "scale must be an int in [1, 64]"),
]


@pytest.mark.gpu
def test_generator_on_the_wrong_device():
    with pytest.raises(ValueError, match="generator is on cuda"):
        fastpixel.sample(small(), 1, height=2, width=2, generator=torch.Generator(device="cuda"))


@pytest.mark.parametrize("call, error, fragment", API_ROWS)
def test_api_mistakes(call, error, fragment):
    if "cuda" in fragment.lower() and not CPU_ONLY:
        pytest.skip("CUDA is here")
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value), str(info.value)


# -- a handful through the installed console scripts ------------------------------------------------------------
def test_through_the_installed_scripts(files, tmp_path):
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "fastpixel-train").exists():
        pytest.skip("the console scripts are not installed beside this python (pip install -e .)")
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "FASTPIXEL_TRACEBACK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    rows = [
        ("fastpixel-train", ["--version"], 0, fastpixel.__version__),
        ("fastpixel-train", ["--run-dir", str(files / "a_file")], 2, "is a file, not a directory"),
        ("fastpixel-evaluate", ["--checkpoint", str(files / "truncated.pt")], 2, "truncated or corrupt"),
        ("fastpixel-sample", ["--checkpoint", str(files / "nan.pt"), "--out", str(tmp_path / "s.png")], 2,
         "refusing to sample"),
        ("fastpixel-demo", ["--backend", "triton"], 2, "--backend triton cannot run on cpu"),
    ]
    if not CPU_ONLY:
        rows.pop()
    for name, args, code, fragment in rows:
        proc = subprocess.run([bin_dir / name, *args], capture_output=True, text=True, env=env, timeout=120)
        out = (proc.stdout + proc.stderr).strip().splitlines()
        assert proc.returncode == code and len(out) == 1 and fragment in out[0], (name, args, proc.stderr)
        assert code == 0 or out[0].startswith(f"{name}: error: ")
