"""The shipped digits model on the 1,000 built-in binarized test digits: the stream is within 1% of
the model's NLL in bits plus the fixed header and per-chunk records, and decodes exactly."""

from __future__ import annotations

import io
import math

import pytest
import torch

import fastpixel
from fastpixel.compression import CompressedWriter, decompress
from fastpixel.compression.container import CHUNK_OVERHEAD, Reader
from fastpixel.data import load_dataset

pytest.importorskip("constriction")
pytestmark = pytest.mark.slow

END_RECORD = 4 + 4 + 8 + 16 + 4


def test_digits_within_one_percent_of_the_nll():
    model = fastpixel.from_pretrained("digits")
    images = load_dataset("builtin_mnist", "test", binarize="fixed").images
    out = io.BytesIO()
    writer = CompressedWriter(out, model, model_name="digits")
    writer.write(images)
    writer.close()
    data, stats = out.getvalue(), writer.stats
    # The ideal bits are the model's NLL: the figure recorded when the model was trained (same images).
    assert stats.nll_bits_per_dim == pytest.approx(model.pretrained_info["test_bits_per_dim"], rel=1e-5)
    with torch.no_grad():
        some = -model.log_prob(images[:50].long()).double() / math.log(2)
    assert stats.images == 1000 and stats.subpixels == 1000 * 784
    chunks = len(list(Reader(io.BytesIO(data)).chunks()))
    header = len(data) - stats.payload_bytes - chunks * CHUNK_OVERHEAD - END_RECORD
    assert 0 < header < 1500
    assert 8 * stats.payload_bytes <= 1.01 * stats.ideal_bits  # coding overhead < 1% (measured ~0.12%)
    assert 8 * len(data) <= 1.01 * stats.ideal_bits + 8 * (header + chunks * CHUNK_OVERHEAD + END_RECORD)
    assert torch.equal(decompress(model, data), images)
    # and the first 50 images alone code to their log_prob (another chunking: other bytes, same bits)
    part = CompressedWriter(io.BytesIO(), model)
    part.write(images[:50])
    assert part.stats.ideal_bits == pytest.approx(float(some.sum()), rel=1e-5)
