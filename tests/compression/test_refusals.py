"""A stream never decodes into a wrong image: another model, one changed weight, another dtype, a
flipped byte anywhere, a truncation anywhere, a newer format version, another machine's facts, and
arithmetic that differs despite equal facts are each a clear error."""

from __future__ import annotations

import copy
import io
import json
import struct

import pytest
import torch

from fastpixel.compression import (
    CompressedDataError, CorruptDataError, FormatError, MachineMismatchError, ModelMismatchError, compress, decompress,
)
from fastpixel.compression.api import decode_chunk, make_header
from fastpixel.compression.container import MAGIC, Reader, Writer
from tests.compression.helpers import sample_images, tiny_model

pytest.importorskip("constriction")


@pytest.fixture(scope="module")
def coded():
    model = tiny_model("row_lstm", channels=3, levels=4)
    images = sample_images(model, 5, 3, 3)
    return model, images, compress(model, images, chunk_size=2)


def rewrite(data: bytes, edit) -> bytes:
    """The same chunks under a header changed by ``edit(header)`` (digests recomputed: a valid file)."""
    reader = Reader(io.BytesIO(data))
    header = copy.deepcopy(reader.header)
    edit(header)
    out = io.BytesIO()
    writer = Writer(out, header)
    for chunk in reader.chunks():
        writer.chunk(chunk)
    writer.end()
    return out.getvalue()


def test_another_model_is_refused(coded):
    model, _, data = coded
    other = tiny_model("row_lstm", channels=3, levels=4, seed=1)
    with pytest.raises(ModelMismatchError, match="different weights"):
        decompress(other, data)
    with pytest.raises(ModelMismatchError, match="another model"):
        decompress(tiny_model("pixelcnn", channels=3, levels=4), data)
    with pytest.raises(ModelMismatchError, match="4 levels"):
        decompress(tiny_model("row_lstm", channels=3, levels=8), data)


def test_one_changed_weight_is_refused(coded):
    model, _, data = coded
    changed = copy.deepcopy(model)
    with torch.no_grad():
        weight = changed.output_conv2.weight
        weight.view(-1)[7] = torch.nextafter(weight.view(-1)[7], torch.tensor(float("inf")))  # one ulp, one weight
    with pytest.raises(ModelMismatchError, match="one changed weight"):
        decompress(changed, data)


def test_another_dtype_is_refused(coded):
    model, _, data = coded
    with pytest.raises(ModelMismatchError, match="float32"):
        decompress(copy.deepcopy(model).double(), data)


def test_every_flipped_byte_is_an_error(coded):
    """Flip one bit in every byte of the stream in turn: each is refused (the checksums), none decodes."""
    model, images, data = coded
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x10
        with pytest.raises(CompressedDataError):
            decompress(model, bytes(bad))


def test_every_truncation_is_an_error(coded):
    model, _, data = coded
    for length in range(len(data)):
        with pytest.raises(CompressedDataError, match="truncated|magic"):
            decompress(model, data[:length])
    with pytest.raises(CorruptDataError, match="after the end record"):
        decompress(model, data + b"\0")


def test_a_newer_format_version_is_refused(coded):
    model, _, data = coded
    newer = data[:8] + struct.pack("<H", 2) + data[10:]
    with pytest.raises(FormatError, match="newer than this fastpixel reads"):
        decompress(model, newer)
    with pytest.raises(FormatError, match="not a fastpixel"):
        decompress(model, b"PK\x03\x04" + data[4:])
    assert data.startswith(MAGIC)


def test_conditioning_is_reserved_for_a_later_version(coded):
    model, _, data = coded

    def labelled(header):
        header["conditioning"] = {"labels": 10}

    with pytest.raises(FormatError, match="conditional"):
        decompress(model, rewrite(data, labelled))


def test_another_machine_is_refused_unless_allowed(coded):
    model, images, data = coded

    def elsewhere(header):
        header["machine"]["cpu_capability"] = "NEON"
        header["machine"]["torch"] = "9.9.9"

    moved = rewrite(data, elsewhere)
    with pytest.raises(MachineMismatchError, match="cpu_capability: 'NEON' there") as info:
        decompress(model, moved)
    assert "allow_other_machine" in str(info.value)
    # The override decodes, and still checks every chunk's pixels (here the arithmetic is the same).
    assert torch.equal(decompress(model, moved, allow_other_machine=True).long(), images)


def test_arithmetic_that_differs_is_caught_by_the_pixel_digest(coded):
    """Equal facts but different logits (here: a perturbed model past the header check) cannot
    return an image: the chunk's pixel digest differs, or the coded data cannot be decoded."""
    model, _, data = coded
    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        for p in perturbed.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    header = Reader(io.BytesIO(data)).header
    for chunk in Reader(io.BytesIO(data)).chunks():
        with pytest.raises(CorruptDataError, match=f"chunk {chunk.index}"):
            decode_chunk(perturbed, chunk, channels=3, header=header)


def test_the_header_records_what_the_issue_asks():
    model = tiny_model("diagonal_bilstm", channels=1, levels=2, dtype=torch.float64)
    header = make_header(model, "digits")
    assert header["model"]["name"] == "digits" and len(header["model"]["sha256"]) == 64
    assert header["compute"]["dtype"] == "float64" and header["compute"]["backend"] == model.backend
    assert {"torch", "cpu_capability", "gpu", "cpu_arch"} <= set(header["machine"])
    assert header["coder"]["precision_bits"] == 24 and header["conditioning"] is None
    json.dumps(header)  # plain JSON
