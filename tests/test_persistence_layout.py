"""Persistence in three pieces (issue 17, item 5): the saved-model format imports no model, the Hub has
its own module, one name reads a training checkpoint (read_checkpoint) and one loads a model
(from_pretrained); the old names still work for a release, with a DeprecationWarning."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest
import torch

import fastpixel
from fastpixel.checkpoint import read_checkpoint
from fastpixel.training import train
from tests.cli_helpers import tiny_config

PACKAGE = Path(fastpixel.__file__).resolve().parent


def fastpixel_imports(module: str) -> set[str]:
    """Every fastpixel module ``fastpixel/<module>.py`` imports, anywhere in the file ("fastpixel" itself
    only for ``import fastpixel``)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:  # "from fastpixel import hub": fastpixel.hub
            found |= {f"{node.module}.{a.name}" for a in node.names} | ({node.module} - {"fastpixel"})
    return {name for name in found if name.startswith("fastpixel")}


@pytest.mark.parametrize("module", ["saved_model", "hub", "checkpoint", "atomic", "_version"])
def test_the_file_formats_import_no_model(module):
    imported = fastpixel_imports(module)
    assert not any(name.startswith(("fastpixel.models", "fastpixel.layers", "fastpixel.training")) for name in imported)
    assert "fastpixel" not in imported  # nothing imports the package itself (for the version or anything)


def test_the_version_has_one_source():
    from fastpixel._version import __version__

    assert fastpixel.__version__ == __version__
    assert not any(name == "fastpixel" for module in ("saved_model", "models/build", "persistence")
                   for name in fastpixel_imports(module))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    train(tiny_config(run, steps=2, eval_every=0, checkpoint_every=2, ema=0.5))
    return run


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_one_name_loads_a_model_from_every_source(run_dir, tmp_path):
    path = run_dir / "checkpoint.pt"
    ema = fastpixel.from_pretrained(path, weights="ema")
    assert ema.pretrained_info["weights"] == "ema" and ema.pretrained_info["step"] == 2 and not ema.training
    ema.save_pretrained(tmp_path / "saved")
    assert same_weights(ema, fastpixel.from_pretrained(tmp_path / "saved"))
    assert same_weights(ema, fastpixel.from_pretrained(str(tmp_path / "saved")))
    with pytest.raises(ValueError, match="weights='ema' applies to a training checkpoint"):
        fastpixel.from_pretrained(tmp_path / "saved", weights="ema")
    with pytest.raises(ValueError, match="weights must be 'model' or 'ema'"):
        fastpixel.from_pretrained(path, weights="best")


def test_read_checkpoint_is_the_dict(run_dir):
    state = fastpixel.read_checkpoint(run_dir / "checkpoint.pt")
    assert state["step"] == 2 and state["train_config"]["ema"] == 0.5 and "optimizer" in state


def test_deprecated_load_checkpoint_names_warn_and_still_work(run_dir):
    path = run_dir / "checkpoint.pt"
    with pytest.warns(DeprecationWarning, match="fastpixel.from_pretrained"):
        model = fastpixel.load_checkpoint(path, weights="ema")
    assert same_weights(model, fastpixel.from_pretrained(path, weights="ema"))
    assert model.pretrained_info == fastpixel.from_pretrained(path, weights="ema").pretrained_info
    from fastpixel.persistence import load_checkpoint as persistence_load_checkpoint

    with pytest.warns(DeprecationWarning):
        assert same_weights(persistence_load_checkpoint(path), fastpixel.from_pretrained(path))
    from fastpixel.checkpoint import load_checkpoint as checkpoint_load_checkpoint

    with pytest.warns(DeprecationWarning, match="fastpixel.read_checkpoint"):
        state = checkpoint_load_checkpoint(path)
    assert state["step"] == read_checkpoint(path)["step"] == 2
    assert all(torch.equal(state["model"][k], read_checkpoint(path)["model"][k]) for k in state["model"])


def test_the_new_names_do_not_warn(run_dir, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        fastpixel.read_checkpoint(run_dir / "checkpoint.pt")
        model = fastpixel.from_pretrained(run_dir / "checkpoint.pt")
        fastpixel.save_pretrained(model, tmp_path / "m")
        fastpixel.from_pretrained(tmp_path / "m")


def test_old_import_paths_still_work():
    from fastpixel import load_checkpoint, push_to_hub, save_pretrained  # noqa: F401
    from fastpixel.persistence import (CONFIG_NAME, FORMAT_VERSION, PRETRAINED_DIR, WEIGHTS_NAME,  # noqa: F401
                                       PretrainedFormatError, SavePretrainedMixin, from_pretrained, pretrained_names,
                                       read_pretrained_config)

    assert from_pretrained is fastpixel.from_pretrained and save_pretrained is fastpixel.save_pretrained
    assert {"load_checkpoint", "read_checkpoint", "from_pretrained", "save_pretrained", "push_to_hub",
            "TrainConfig"} <= set(fastpixel.__all__)
