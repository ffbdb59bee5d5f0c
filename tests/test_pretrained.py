"""The built-in pretrained model: shipped in the package, loads by name, and reproduces its recorded NLL."""

from __future__ import annotations

import math

import pytest
import torch

import fastpixel
from fastpixel.data import load_dataset
from fastpixel.persistence import CONFIG_NAME, PRETRAINED_DIR, WEIGHTS_NAME, pretrained_names, read_pretrained_config


@pytest.fixture(scope="module")
def digits():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield fastpixel.from_pretrained("digits")
    torch.set_num_threads(before)


def test_digits_is_shipped_small_and_describes_its_data(digits):
    assert "digits" in pretrained_names()
    folder = PRETRAINED_DIR / "digits"
    assert (folder / WEIGHTS_NAME).stat().st_size + (folder / CONFIG_NAME).stat().st_size < 4 * 2**20
    assert (digits.channels, digits.levels) == (1, 2)
    info = digits.pretrained_info
    assert (info["dataset"], info["binarize"], info["binarize_seed"]) == ("builtin_mnist", "fixed", 0)
    assert (info["height"], info["width"]) == (28, 28)
    assert info["test_images"] == 1000
    assert info["test_bits_per_dim"] == pytest.approx(info["test_nats_per_image"] / (784 * math.log(2)), rel=1e-12)
    assert not digits.training


def test_digits_reproduces_its_recorded_held_out_nll(digits):
    """The NLL recorded at training time on the first `check_images` test digits, recomputed now."""
    info = digits.pretrained_info
    test = load_dataset("builtin_mnist", "test", binarize="fixed", binarize_seed=0)
    subset = test.images[: info["check_images"]].long()
    with torch.no_grad():
        nats = digits.nll(subset).double().mean().item()
    assert nats == pytest.approx(info["check_nats_per_image"], rel=1e-5)  # float32 network
    # the subset is representative of the full split's figure (recorded over all 1,000 digits)
    assert abs(nats - info["test_nats_per_image"]) < 10


def test_readme_quotes_the_recorded_figure():
    from pathlib import Path

    info = read_pretrained_config("digits")["info"]
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"{info['test_nats_per_image']:.2f} nats/image" in readme
    assert f"{info['test_bits_per_dim']:.4f} bits/dim" in readme


def test_digits_samples_have_the_ink_of_digits(digits):
    """Samples are mostly white with some ink, as the digits are (not blank, not noise)."""
    images = fastpixel.sample(digits, 8, height=28, width=28, generator=torch.Generator().manual_seed(0))
    ink = images.double().mean().item()
    data_ink = load_dataset("builtin_mnist", "test", binarize="fixed").images.double().mean().item()  # about 0.13
    assert 0.5 * data_ink < ink < 2.0 * data_ink


def test_a_bare_shipped_name_means_the_shipped_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").mkdir()  # e.g. a data folder of that name: not what "digits" loads
    assert fastpixel.from_pretrained("digits").config == read_pretrained_config("digits")["model"]
    with pytest.raises(FileNotFoundError, match="config.json: missing"):
        fastpixel.from_pretrained("./digits")


def test_unknown_names_list_digits():
    with pytest.raises(ValueError, match=r"shipped with fastpixel are \['digits', 'digits-conditional'\]"):
        fastpixel.from_pretrained("digit")
