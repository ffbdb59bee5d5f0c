"""save_pretrained / from_pretrained (saved models and training checkpoints): exact round trips, no pickle,
clear errors."""

from __future__ import annotations

import json
import struct
import sys

import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import fastpixel
from fastpixel.checkpoint import FORMAT as CHECKPOINT_FORMAT
from fastpixel.checkpoint import CheckpointError
from fastpixel.checkpoint import save_checkpoint
from fastpixel.models import MODELS, OPTIONS
from fastpixel.persistence import (
    CONFIG_NAME,
    FORMAT_VERSION,
    WEIGHTS_NAME,
    PretrainedFormatError,
    pretrained_names,
    read_pretrained_config,
)

NAMES = sorted(MODELS)


def build(name, seed=0, **kwargs):
    torch.manual_seed(seed)
    options = dict(channels=3, levels=4, hidden=3, layers=2) | kwargs
    return fastpixel.create_model(name, **options)


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype, key
        assert torch.equal(sa[key], sb[key]), key  # bitwise, not approximately


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_is_bitwise_exact_for_every_model(name, tmp_path):
    model = build(name, **{k: v for k, v in dict(skip=True, output_hidden=5).items() if k in OPTIONS[name]})
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]  # no temp files left
    loaded = fastpixel.from_pretrained(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.config == model.config
    assert not loaded.training
    assert_same_weights(model, loaded)
    x = torch.randint(0, 4, (2, 3, 5, 6))
    assert torch.equal(loaded(x), model.eval()(x))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtype_is_kept(dtype, tmp_path):
    model = build("diagonal_bilstm").to(dtype)
    fastpixel.save_pretrained(model, tmp_path)
    loaded = fastpixel.from_pretrained(str(tmp_path))
    assert loaded.input_conv.weight.dtype == dtype
    assert_same_weights(model, loaded)


def test_multiscale_options_round_trip(tmp_path):
    model = build("multiscale", kind="row_lstm", factor=3, small_hidden=2, small_layers=1, condition_features=5)
    assert model.config["name"] == "multiscale"
    model.save_pretrained(tmp_path)
    loaded = fastpixel.from_pretrained(tmp_path)
    assert isinstance(loaded, fastpixel.MultiScalePixelRNN)
    assert (loaded.kind, loaded.factor, loaded.small.hidden) == ("row_lstm", 3, 2)
    assert_same_weights(model, loaded)


def test_files_are_json_and_safetensors_not_pickle(tmp_path):
    build("pixelcnn").save_pretrained(tmp_path, info={"dataset": "builtin_mnist", "height": 28, "width": 28})
    document = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert document["format"] == "fastpixel-pretrained" and document["format_version"] == FORMAT_VERSION
    assert document["fastpixel_version"] == fastpixel.__version__
    assert document["model"]["name"] == "pixelcnn" and document["info"]["height"] == 28
    raw = (tmp_path / WEIGHTS_NAME).read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])  # safetensors: u64 header length, JSON header, raw bytes
    header = json.loads(raw[8:8 + header_len])
    assert "input_conv.weight" in header and header["input_conv.weight"]["dtype"] == "F32"
    assert b"\x80\x02" not in raw[:2] and not raw.startswith(b"PK")  # neither a pickle nor a torch zip


def test_info_is_kept_and_exposed(tmp_path):
    info = {"dataset": "png", "height": 8, "width": 12, "note": "x"}
    build("pixelcnn").save_pretrained(tmp_path / "a", info=info)
    loaded = fastpixel.from_pretrained(tmp_path / "a")
    assert loaded.pretrained_info == info
    loaded.save_pretrained(tmp_path / "b")  # re-saving a loaded model keeps its info
    assert read_pretrained_config(tmp_path / "b")["info"] == info


def test_device_and_backend(tmp_path):
    build("row_lstm").save_pretrained(tmp_path)
    loaded = fastpixel.from_pretrained(tmp_path, device="cpu", backend="reference")
    assert loaded.backend == "reference" and loaded.input_conv.weight.device.type == "cpu"


def test_overwrite_replaces_the_weights(tmp_path):
    """Issue 18: replacing a saved model needs overwrite=True (it used to happen silently)."""
    first = build("pixelcnn", seed=0)
    first.save_pretrained(tmp_path)
    second = build("pixelcnn", seed=1)
    with pytest.raises(FileExistsError, match="already holds a saved model.*overwrite=True"):
        second.save_pretrained(tmp_path)
    assert_same_weights(first, fastpixel.from_pretrained(tmp_path))
    second.save_pretrained(tmp_path, overwrite=True)
    assert_same_weights(second, fastpixel.from_pretrained(tmp_path))


# -- refusals --------------------------------------------------------------------------------------
def test_non_finite_weights_are_refused(tmp_path):
    model = build("pixelcnn")
    with torch.no_grad():
        model.output_conv2.bias[0] = float("nan")
    with pytest.raises(ValueError, match="output_conv2.bias.*NaN"):
        model.save_pretrained(tmp_path / "m")
    assert not (tmp_path / "m" / WEIGHTS_NAME).exists()


def test_not_a_model_is_refused(tmp_path):
    with pytest.raises(TypeError, match="expected a fastpixel model"):
        fastpixel.save_pretrained(torch.nn.Linear(2, 2), tmp_path)
    with pytest.raises(TypeError, match="JSON"):
        build("pixelcnn").save_pretrained(tmp_path, info={"x": object()})


def test_missing_directory_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        fastpixel.from_pretrained(tmp_path / "nothing")
    build("pixelcnn").save_pretrained(tmp_path / "m")
    (tmp_path / "m" / WEIGHTS_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=f"{WEIGHTS_NAME}: missing"):
        fastpixel.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / CONFIG_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=f"{CONFIG_NAME}: missing"):
        fastpixel.from_pretrained(tmp_path / "m")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        fastpixel.from_pretrained(tmp_path / "file")
    (tmp_path / "checkpoint.pt").write_text("x")  # a .pt path is read as a training checkpoint
    with pytest.raises(CheckpointError, match="checkpoint.pt: cannot read the checkpoint"):
        fastpixel.from_pretrained(tmp_path / "checkpoint.pt")


def test_unknown_pretrained_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown pretrained model 'no_such_model'") as err:
        fastpixel.from_pretrained("no_such_model")
    assert str(pretrained_names()) in str(err.value)


@pytest.mark.parametrize("cut", [4, 100, -10])
def test_torn_weights(cut, tmp_path):
    build("pixelcnn").save_pretrained(tmp_path)
    file = tmp_path / WEIGHTS_NAME
    raw = file.read_bytes()
    file.write_bytes(raw[:cut])
    with pytest.raises(PretrainedFormatError, match="torn or not safetensors"):
        fastpixel.from_pretrained(tmp_path)


def test_corrupt_or_foreign_config(tmp_path):
    build("pixelcnn").save_pretrained(tmp_path)
    file = tmp_path / CONFIG_NAME
    good = json.loads(file.read_text())
    file.write_text('{"format": "fastpixel-pre')
    with pytest.raises(PretrainedFormatError, match="not valid JSON"):
        fastpixel.from_pretrained(tmp_path)
    file.write_text(json.dumps({"architectures": ["GPT2"]}))
    with pytest.raises(PretrainedFormatError, match="not a fastpixel model config"):
        fastpixel.from_pretrained(tmp_path)
    file.write_text(json.dumps(good | {"model": good["model"] | {"name": "pixelsnail"}}))
    with pytest.raises(PretrainedFormatError, match=r"unknown model 'pixelsnail'.*pixelcnn"):
        fastpixel.from_pretrained(tmp_path)
    file.write_text(json.dumps(good | {"format_version": FORMAT_VERSION + 1}))
    with pytest.raises(PretrainedFormatError, match="upgrade fastpixel"):
        fastpixel.from_pretrained(tmp_path)
    file.write_text(json.dumps(good | {"model": good["model"] | {"levels": 1}}))
    with pytest.raises(PretrainedFormatError, match="does not build a model"):
        fastpixel.from_pretrained(tmp_path)


def test_shape_and_key_mismatch(tmp_path):
    build("pixelcnn", hidden=3).save_pretrained(tmp_path)
    file = tmp_path / CONFIG_NAME
    good = json.loads(file.read_text())
    file.write_text(json.dumps(good | {"model": good["model"] | {"hidden": 4}}))
    with pytest.raises(PretrainedFormatError, match=r"shapes do not match.*saved \(6, 3, 7, 7\), model \(8, 3, 7, 7\)"):
        fastpixel.from_pretrained(tmp_path)
    file.write_text(json.dumps(good | {"model": good["model"] | {"layers": 3}}))
    with pytest.raises(PretrainedFormatError, match=r"missing \['blocks.2"):
        fastpixel.from_pretrained(tmp_path)


# -- training checkpoints ---------------------------------------------------------------------------
def write_checkpoint(path, model, ema, **extra):
    state = {"format": CHECKPOINT_FORMAT, "step": 7, "model_config": model.config,
             "train_config": {"dataset": "builtin_mnist", "binarize": "fixed", "binarize_seed": 0, "data_dir": None},
             "model": model.state_dict(), "optimizer": {}, "ema": ema.state_dict() if ema is not None else None,
             **extra}
    save_checkpoint(path, state)


@pytest.mark.parametrize("name", ["diagonal_bilstm", "multiscale"])
def test_load_checkpoint_model_and_ema(name, tmp_path):
    model = build(name, channels=1, levels=2)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.5), use_buffers=True)
    ema.update_parameters(model)  # the first update copies the model
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update_parameters(model)  # the average now differs from the model
    write_checkpoint(tmp_path / "checkpoint.pt", model, ema)
    loaded = fastpixel.from_pretrained(tmp_path / "checkpoint.pt")
    assert_same_weights(model, loaded)
    averaged = fastpixel.from_pretrained(tmp_path / "checkpoint.pt", weights="ema")
    assert_same_weights(ema.module, averaged)
    assert not torch.equal(averaged.input_conv.weight if name != "multiscale" else averaged.large.input_conv.weight,
                           model.input_conv.weight if name != "multiscale" else model.large.input_conv.weight)
    assert loaded.pretrained_info == {"dataset": "builtin_mnist", "binarize": "fixed", "binarize_seed": 0,
                                      "data_dir": None, "height": 28, "width": 28, "step": 7, "weights": "model"}
    loaded.save_pretrained(tmp_path / "exported")  # a checkpoint exports to the pretrained format
    assert_same_weights(model, fastpixel.from_pretrained(tmp_path / "exported"))


def test_load_checkpoint_records_png_sizes_and_refuses_missing_ema(tmp_path):
    model = build("pixelcnn", channels=1, levels=2)
    write_checkpoint(tmp_path / "c.pt", model, None, data={"height": 8, "width": 12})
    info = fastpixel.from_pretrained(tmp_path / "c.pt").pretrained_info
    assert (info["height"], info["width"]) == (8, 12)
    with pytest.raises(ValueError, match="no EMA weights"):
        fastpixel.from_pretrained(tmp_path / "c.pt", weights="ema")
    with pytest.raises(ValueError, match="weights must be 'model' or 'ema'"):
        fastpixel.from_pretrained(tmp_path / "c.pt", weights="best")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        fastpixel.from_pretrained(tmp_path / "missing.pt")


def test_load_checkpoint_shape_mismatch_names_the_file(tmp_path):
    model = build("pixelcnn", channels=1, levels=2)
    state = {"format": CHECKPOINT_FORMAT, "step": 1, "model_config": model.config | {"hidden": 5},
             "model": model.state_dict(), "ema": None}
    save_checkpoint(tmp_path / "c.pt", state)
    with pytest.raises(PretrainedFormatError, match=r"c.pt: weight shapes do not match"):
        fastpixel.from_pretrained(tmp_path / "c.pt")


# -- Hugging Face Hub (mocked: no network) ----------------------------------------------------------
def test_hub_download_uses_snapshot_download(tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    model = build("diagonal_bilstm")
    model.save_pretrained(tmp_path / "snapshot")
    calls = []

    def fake_snapshot_download(*, repo_id, revision=None, allow_patterns=None, **kwargs):
        calls.append((repo_id, revision, sorted(allow_patterns)))
        return str(tmp_path / "snapshot")

    monkeypatch.setattr(hub, "snapshot_download", fake_snapshot_download)
    assert_same_weights(model, fastpixel.from_pretrained("hf://someone/digits"))
    fastpixel.from_pretrained("hf://someone/digits@v1")
    assert calls == [("someone/digits", None, [CONFIG_NAME, WEIGHTS_NAME]),
                     ("someone/digits", "v1", [CONFIG_NAME, WEIGHTS_NAME])]
    with pytest.raises(ValueError, match="hf://owner/repo"):
        fastpixel.from_pretrained("hf://no-owner")


def test_push_to_hub_uploads_the_saved_files(tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    uploaded = {}

    class FakeApi:
        def __init__(self, token=None):
            uploaded["token"] = token

        def create_repo(self, *, repo_id, private, exist_ok):
            uploaded["repo"] = (repo_id, private, exist_ok)

        def upload_folder(self, *, repo_id, folder_path, commit_message):
            from pathlib import Path

            copy = tmp_path / "remote"
            copy.mkdir()
            for f in Path(folder_path).iterdir():
                (copy / f.name).write_bytes(f.read_bytes())
            return "https://example.invalid/commit/1"

    monkeypatch.setattr(hub, "HfApi", FakeApi)
    model = build("pixelcnn")
    url = model.push_to_hub("me/model", token="t", info={"dataset": "builtin_mnist"})
    assert url == "https://example.invalid/commit/1"
    assert uploaded["repo"] == ("me/model", False, True) and uploaded["token"] == "t"
    assert_same_weights(model, fastpixel.from_pretrained(tmp_path / "remote"))
    with pytest.raises(ValueError, match="owner/repo"):
        model.push_to_hub("no-owner")


def test_hub_without_huggingface_hub_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"fastpixel\[hub\]"):
        fastpixel.from_pretrained("hf://someone/digits")
    with pytest.raises(ImportError, match=r"fastpixel\[hub\]"):
        fastpixel.push_to_hub(build("pixelcnn"), "me/model")


def test_create_model_builds_multiscale_by_name_and_from_its_config():
    model = fastpixel.create_model("multiscale", channels=1, levels=2, hidden=4, layers=2, kind="row_lstm", factor=2)
    assert isinstance(model, fastpixel.MultiScalePixelRNN) and model.kind == "row_lstm"
    clone = fastpixel.create_model(**model.config)
    assert clone.config == model.config
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['factor'\] for 'pixelcnn'"):
        fastpixel.create_model("pixelcnn", channels=1, levels=2, hidden=4, layers=1, factor=2)
