"""Round trips are bit-exact: every model kind x levels {2, 4, 256} x channels {1, 3} x odd shapes x
batch {1, 5} x float32 / float64, random weights; chunking, streaming, backends, a fresh process."""

from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import fastpixel
from fastpixel.compression import CompressedWriter, compress, decompress, iter_decompress, read_header
from fastpixel.compression.container import CHUNK_OVERHEAD, Reader
from tests.compression.helpers import KINDS, sample_images, tiny_model

pytest.importorskip("constriction")

SHAPES = ((1, 1), (1, 5), (3, 2), (2, 7))
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", (1, 3))
@pytest.mark.parametrize("levels", (2, 4, 256))
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_is_bit_exact(kind, levels, channels, dtype):
    model = tiny_model(kind, channels=channels, levels=levels, dtype=DTYPES[dtype])
    for i, (height, width) in enumerate(SHAPES):
        for batch in (1, 5):
            images = sample_images(model, batch, height, width, seed=i)
            data = compress(model, images)
            back = decompress(model, data)
            assert back.dtype == torch.uint8 and back.shape == images.shape
            assert torch.equal(back.long(), images), (height, width, batch)


@pytest.mark.parametrize("kind", KINDS)
def test_the_code_length_is_the_models_nll(kind):
    """The ideal bits the encoder counts are -log2 p(x) of model.log_prob, and the coded payload is
    within 1% (+ 2 words per chunk) of them."""
    model = tiny_model(kind, channels=3, levels=8, dtype=torch.float64)
    images = sample_images(model, 5, 6, 5)
    out = io.BytesIO()
    writer = CompressedWriter(out, model)
    writer.write(images)
    writer.close()
    with torch.no_grad():
        nll_bits = float(-model.log_prob(images).sum()) / math.log(2)
    assert writer.stats.ideal_bits == pytest.approx(nll_bits, rel=1e-9)
    assert 8 * writer.stats.payload_bytes <= 1.01 * nll_bits + 64
    assert writer.stats.bytes == len(out.getvalue())


def test_chunks_decode_alone_and_in_order():
    model = tiny_model("pixelcnn", channels=1, levels=4)
    images = sample_images(model, 5, 3, 4)
    data = compress(model, images, chunk_size=2)
    parts = list(iter_decompress(model, data))
    assert [len(p) for p in parts] == [2, 2, 1]
    assert torch.equal(torch.cat(parts).long(), images)
    one_chunk = compress(model, images, chunk_size=5)
    assert len(list(iter_decompress(model, one_chunk))) == 1
    assert len(data) > len(one_chunk) + 2 * CHUNK_OVERHEAD - 16  # two more records (payloads differ by words)


def test_a_stream_of_several_sizes():
    model = tiny_model("row_lstm", channels=3, levels=4)
    a, b = sample_images(model, 3, 2, 3, seed=1), sample_images(model, 2, 4, 1, seed=2)
    out = io.BytesIO()
    writer = CompressedWriter(out, model, chunk_size=2)
    writer.write(a)
    writer.write(b.numpy().astype(np.uint8))  # numpy arrays are accepted too
    writer.close()
    parts = list(iter_decompress(model, io.BytesIO(out.getvalue())))
    assert [tuple(p.shape) for p in parts] == [(2, 3, 2, 3), (1, 3, 2, 3), (2, 3, 4, 1)]
    assert torch.equal(torch.cat(parts[:2]).long(), a) and torch.equal(parts[2].long(), b)
    with pytest.raises(ValueError, match="iter_decompress"):
        decompress(model, out.getvalue())
    assert writer.stats.images == 5 and writer.stats.subpixels == 3 * (3 * 6 + 2 * 4)


def test_an_empty_stream_and_its_header():
    model = tiny_model("pixelcnn", channels=3, levels=4)
    out = io.BytesIO()
    CompressedWriter(out, model, model_name="mine").close()
    assert decompress(model, out.getvalue()).shape == (0, 3, 0, 0)
    assert read_header(out.getvalue())["model"]["name"] == "mine"


def test_verify_decodes_what_it_coded():
    model = tiny_model("diagonal_bilstm", channels=1, levels=2)
    images = sample_images(model, 4, 5, 5)
    assert compress(model, images, verify=True) == compress(model, images)


def test_the_backend_does_not_change_the_stream():
    """The cached engine's per-pixel step runs plain torch ops whatever the model's backend: a stream
    coded by a model on the reference backend decodes on the torch backend (and codes identically)."""
    model = tiny_model("diagonal_bilstm", channels=3, levels=16).to_backend("reference")
    images = sample_images(model, 3, 4, 4)
    data = compress(model, images)
    model.to_backend("torch")
    payloads = [[c.payload for c in Reader(io.BytesIO(d)).chunks()] for d in (data, compress(model, images))]
    assert payloads[0] == payloads[1]
    assert torch.equal(decompress(model, data).long(), images)


def test_bad_images_are_refused():
    model = tiny_model("pixelcnn", channels=1, levels=4)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        compress(model, torch.full((1, 1, 2, 2), 4))
    with pytest.raises(ValueError, match="channel"):
        compress(model, torch.zeros(1, 3, 2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        compress(model, torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="at least one image"):
        compress(model, torch.zeros(0, 1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="chunk_size"):
        compress(model, torch.zeros(1, 1, 2, 2, dtype=torch.long), chunk_size=0)


def test_decode_in_a_fresh_process(tmp_path):
    model = tiny_model("row_lstm", channels=3, levels=256, dtype=torch.float64)
    images = sample_images(model, 5, 3, 4)
    model.save_pretrained(tmp_path / "model")
    (tmp_path / "x.fpx").write_bytes(compress(model, images, chunk_size=3))
    np.save(tmp_path / "x.npy", images.numpy())
    code = ("import sys, numpy as np, torch, fastpixel\n"
            "m = fastpixel.from_pretrained(sys.argv[1])\n"
            "y = fastpixel.decompress(m, open(sys.argv[2], 'rb').read())\n"
            "assert np.array_equal(y.numpy(), np.load(sys.argv[3])), 'differs'\n"
            "print('equal', tuple(y.shape))\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model"), str(tmp_path / "x.fpx"),
                           str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "equal (5, 3, 3, 4)" in done.stdout, done.stderr[-2000:]


def test_import_and_errors_without_constriction(monkeypatch):
    """fastpixel imports without constriction; compressing then says how to install it."""
    monkeypatch.setitem(sys.modules, "constriction", None)
    model = tiny_model("pixelcnn")
    with pytest.raises(ImportError, match=r"fastpixel\[compress\]"):
        fastpixel.compress(model, torch.zeros(1, 1, 2, 2, dtype=torch.long))
