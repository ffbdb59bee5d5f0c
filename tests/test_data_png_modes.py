"""PNG folders are never changed silently: bit depths, alpha, colour modes, limits (tiny files per mode)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from fastpixel.data import DataFileError, batch_indices, load_dataset, read_png, read_png_folder, steps_per_epoch
from fastpixel.data.png import png_header

RNG = np.random.default_rng(13)


def write(path, array, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def write_raw_png(path, width, height, depth, colour, rows):
    """A PNG written byte by byte (filter 0 rows): for modes Pillow cannot write (16-bit colour)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    body = zlib.compress(b"".join(b"\x00" + row for row in rows))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_8bit_grey_and_rgb_are_read_exactly(tmp_path):
    grey = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    rgb = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_png(write(tmp_path / "g.png", grey)), grey[None])
    np.testing.assert_array_equal(read_png(write(tmp_path / "c.png", rgb)), rgb.transpose(2, 0, 1))
    assert png_header(tmp_path / "g.png") == (8, 0) and png_header(tmp_path / "c.png") == (8, 2)


def test_low_bit_depths_and_palettes_keep_their_values(tmp_path):
    one_bit = write(tmp_path / "b.png", np.array([[0, 255, 255, 0]], np.uint8).astype(bool))
    assert png_header(one_bit)[0] == 1
    np.testing.assert_array_equal(read_png(one_bit), [[[0, 255, 255, 0]]])
    two_bit = write_raw_png(tmp_path / "2.png", 4, 1, 2, 0, [bytes([0b00011011])])
    np.testing.assert_array_equal(read_png(two_bit), [[[0, 85, 170, 255]]])
    rgb = RNG.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    palette = write(tmp_path / "p.png", rgb).parent / "p.png"
    Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(palette)
    expected = np.asarray(Image.open(palette).convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(read_png(palette), expected)


def test_16bit_grey_holding_8bit_values_is_exact(tmp_path):
    grey = RNG.integers(0, 256, (4, 4), dtype=np.uint16)
    path = write(tmp_path / "g16.png", grey * 257)
    assert png_header(path) == (16, 0)
    np.testing.assert_array_equal(read_png(path), grey[None])


def test_16bit_grey_with_more_levels_is_refused_or_rounded_on_request(tmp_path):
    values = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000  # the image: 63 of 64 pixels > 255
    path = write(tmp_path / "g16.png", values)
    with pytest.raises(DataFileError, match=r"16-bit grey PNG with 64 distinct values.*convert=True"):
        read_png(path)
    with pytest.raises(DataFileError, match="16-bit grey"):
        read_png_folder(tmp_path)
    got = read_png(path, convert=True)
    np.testing.assert_array_equal(got[0], np.round(values / 257.0).astype(np.uint8))
    assert got.max() == 245  # 63000 * 255 / 65535 = 245.1: the full range kept, not clipped to 255


@pytest.mark.parametrize("colour", [2, 6, 4])
def test_16bit_colour_or_alpha_is_refused_even_with_convert(tmp_path, colour):
    samples = {2: 3, 6: 4, 4: 2}[colour]
    row = (np.arange(2 * samples, dtype=">u2") * 3001 + 7).tobytes()
    path = write_raw_png(tmp_path / "c16.png", 2, 1, 16, colour, [row])
    for convert in (False, True):
        with pytest.raises(DataFileError, match="16-bit .* Pillow cannot decode"):
            read_png(path, convert=convert)


@pytest.mark.parametrize("mode,channels", [("RGBA", 3), ("LA", 1)])
def test_alpha_is_refused_unless_opaque_or_asked(tmp_path, mode, channels):
    colour = RNG.integers(0, 256, (4, 5, channels), dtype=np.uint8)
    alpha = np.full((4, 5, 1), 255, np.uint8)
    opaque = tmp_path / "opaque.png"
    Image.fromarray(np.concatenate([colour, alpha], axis=2), mode).save(opaque)
    np.testing.assert_array_equal(read_png(opaque), colour.transpose(2, 0, 1))  # nothing is lost
    alpha[0, 0] = 0
    see_through = tmp_path / "alpha.png"
    Image.fromarray(np.concatenate([colour, alpha], axis=2), mode).save(see_through)
    with pytest.raises(DataFileError, match=r"alpha channel with 1 of 20 pixels not fully opaque.*convert=True"):
        read_png(see_through)
    np.testing.assert_array_equal(read_png(see_through, convert=True), colour.transpose(2, 0, 1))


def test_trns_transparency_counts_as_alpha(tmp_path):
    grey = np.array([[0, 10], [20, 30]], np.uint8)
    path = write(tmp_path / "t.png", grey, transparency=10)
    with pytest.raises(DataFileError, match="alpha channel with 1 of 4"):
        read_png(path)
    np.testing.assert_array_equal(read_png(path, convert=True), grey[None])


def test_mixed_colour_modes_are_refused_unless_asked(tmp_path):
    grey = RNG.integers(0, 256, (4, 4), dtype=np.uint8)
    rgb = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    write(tmp_path / "a.png", rgb)
    write(tmp_path / "b.png", grey)
    with pytest.raises(DataFileError, match=r"mixes grey and colour PNGs \(1 grey, e.g. b.png; 1 colour, e.g. a.png\)"):
        read_png_folder(tmp_path)
    with pytest.raises(DataFileError, match=r"a grey image where 3 channel\(s\) were asked"):
        read_png_folder(tmp_path, channels=3)
    with pytest.raises(DataFileError, match=r"a colour image where 1 channel\(s\) were asked"):
        read_png(tmp_path / "a.png", channels=1)
    both = read_png_folder(tmp_path, convert=True)  # the first file's mode (RGB); grey repeated
    assert both.shape == (2, 3, 4, 4)
    np.testing.assert_array_equal(both[1], np.repeat(grey[None], 3, axis=0))
    np.testing.assert_array_equal(both[0], rgb.transpose(2, 0, 1))
    luma = read_png_folder(tmp_path, channels=1, convert=True)
    np.testing.assert_array_equal(luma[0, 0], np.asarray(Image.fromarray(rgb).convert("L")))


def test_png_dataset_refuses_and_converts_on_request(tmp_path):
    for split in ("train", "test"):
        write(tmp_path / split / "0.png", RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8))
        write(tmp_path / split / "1.png", RNG.integers(0, 256, (4, 4), dtype=np.uint8))
    with pytest.raises(DataFileError, match="mixes grey and colour"):
        load_dataset("png", "train", data_dir=tmp_path)
    data = load_dataset("png", "train", data_dir=tmp_path, png_convert=True)
    assert tuple(data.images.shape) == (2, 3, 4, 4) and "converted on request" in data.protocol
    with pytest.raises(ValueError, match="png_convert applies only"):
        load_dataset("builtin_mnist", "test", png_convert=True)


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
def test_bad_limits_are_refused(tmp_path, limit):
    write(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="limit must be an int >= 1"):
        read_png_folder(tmp_path, limit=limit)
    with pytest.raises(ValueError, match="limit must be an int >= 1"):
        load_dataset("builtin_mnist", "test", limit=limit)


def test_limit_keeps_the_first_images():
    data = load_dataset("builtin_mnist", "test", limit=3)
    assert len(data) == 3 and torch.equal(data.images, load_dataset("builtin_mnist", "test").images[:3])


@pytest.mark.parametrize("kwargs,match", [
    (dict(batch_size=0), "batch_size must be in"), (dict(batch_size=2.0), "batch_size must be in"),
    (dict(batch_size=True), "batch_size must be in"), (dict(step=-1), "step must be an int >= 0"),
    (dict(seed=-3), "seed must be an int >= 0"), (dict(world=0), "world must be an int >= 1"),
    (dict(rank=2, world=2), r"rank must be an int in \[0, 2\)"),
])
def test_bad_batch_arguments_are_refused(kwargs, match):
    args = dict(num_images=10, batch_size=4, seed=0, step=0) | kwargs
    with pytest.raises(ValueError, match=match):
        batch_indices(args.pop("num_images"), args.pop("batch_size"), **args)


def test_steps_per_epoch_refuses_an_empty_set():
    with pytest.raises(ValueError, match="num_images must be an int >= 1"):
        steps_per_epoch(0, 1)
