"""Compression with the shipped digits model vs general-purpose codecs: ``python -m bench.compression``.

On the 1,000 built-in binarized test digits (``builtin_mnist:test``, fixed binarization, seed 0: the
images the model's recorded NLL is measured on), prints

* fastpixel: bytes, bits/dim, the model's NLL in bits/dim for the same images, the overhead (all of
  it, and the coder's alone: payload vs NLL), images/s encoding and decoding (one batch per chunk,
  ``--chunk-size``), and checks the round trip;
* PNG (1-bit, ``optimize=True``) and WebP lossless (``lossless=True, quality=100, method=6``) of each
  image as its own file and of one grid image of all of them (25 x 40 digits), when Pillow has WebP;
* gzip / bz2 / lzma at their strongest settings on the packed bits of all images together
  (``np.packbits`` of the (1000, 784) array, 98,000 bytes).

bits/dim = 8 * bytes / (1000 * 784). ``--json PATH`` writes the numbers with the machine beside them.
Threads default to 1 (the issue's "one core").
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import lzma
import time

import numpy as np
import torch

import fastpixel
from bench.sampling import machine
from fastpixel.compression import CompressedWriter, decompress
from fastpixel.data import load_dataset


def fastpixel_figures(images: torch.Tensor, chunk_size: int) -> dict:
    model = fastpixel.from_pretrained("digits")
    fastpixel.compress(model, images[:2])  # warm-up
    out = io.BytesIO()
    writer = CompressedWriter(out, model, chunk_size=chunk_size, model_name="digits")
    start = time.perf_counter()
    writer.write(images)
    writer.close()
    encode_s = time.perf_counter() - start
    data = out.getvalue()
    start = time.perf_counter()
    back = decompress(model, data)
    decode_s = time.perf_counter() - start
    if not torch.equal(back, images):
        raise SystemExit("round trip failed: decoded images differ")
    s = writer.stats
    return dict(bytes=len(data), payload_bytes=s.payload_bytes, bits_per_dim=s.bits_per_dim,
                nll_bits_per_dim=s.nll_bits_per_dim, overhead=s.overhead,
                coding_overhead=8 * s.payload_bytes / s.ideal_bits - 1,
                encode_images_per_s=len(images) / encode_s, decode_images_per_s=len(images) / decode_s,
                encode_s=encode_s, decode_s=decode_s, chunk_size=chunk_size)


def pillow_size(image: np.ndarray, fmt: str) -> int:
    """Bytes of one binary image (H, W) of 0/1 saved losslessly as ``fmt`` ("png" 1-bit, "webp")."""
    from PIL import Image

    picture = Image.fromarray((image * 255).astype(np.uint8), "L")
    buffer = io.BytesIO()
    if fmt == "png":
        picture.convert("1").save(buffer, "PNG", optimize=True)
    else:
        picture.save(buffer, "WEBP", lossless=True, quality=100, method=6)
    return len(buffer.getvalue())


def baseline_figures(images: np.ndarray) -> dict:
    """uint8 (N, 1, H, W) of 0/1 -> bytes of every general-purpose codec."""
    from PIL import features

    n, _, h, w = images.shape
    flat = images[:, 0]
    grid = flat.reshape(25, 40, h, w).transpose(0, 2, 1, 3).reshape(25 * h, 40 * w)
    packed = np.packbits(flat.reshape(-1)).tobytes()
    sizes = {
        "png_1bit_per_image": sum(pillow_size(image, "png") for image in flat),
        "png_1bit_grid": pillow_size(grid, "png"),
        "gzip_packed_bits": len(gzip.compress(packed, compresslevel=9, mtime=0)),
        "bz2_packed_bits": len(bz2.compress(packed, compresslevel=9)),
        "lzma_packed_bits": len(lzma.compress(packed, preset=9 | lzma.PRESET_EXTREME)),
        "raw_packed_bits": len(packed),
    }
    if features.check("webp"):
        sizes["webp_lossless_per_image"] = sum(pillow_size(image, "webp") for image in flat)
        sizes["webp_lossless_grid"] = pillow_size(grid, "webp")
    return sizes


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chunk-size", type=int, default=fastpixel.compression.CHUNK_SIZE)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    images = load_dataset("builtin_mnist", "test", binarize="fixed").images
    dims = images.numel()
    ours = fastpixel_figures(images, args.chunk_size)
    sizes = baseline_figures(images.numpy())
    print(f"1,000 built-in binarized test digits ({dims:,} sub-pixels); torch threads {torch.get_num_threads()}")
    print(f"fastpixel (digits): {ours['bytes']:,} bytes = {ours['bits_per_dim']:.4f} bits/dim; model NLL "
          f"{ours['nll_bits_per_dim']:.4f} bits/dim; overhead {100 * ours['overhead']:.2f}% "
          f"(coder {100 * ours['coding_overhead']:.3f}%, header + records {ours['bytes'] - ours['payload_bytes']:,} "
          f"bytes); encode {ours['encode_images_per_s']:.1f} images/s ({ours['encode_s']:.1f} s), decode "
          f"{ours['decode_images_per_s']:.1f} images/s ({ours['decode_s']:.1f} s), round trip exact")
    for name, size in sizes.items():
        print(f"{name:26s} {size:8,d} bytes = {8 * size / dims:.4f} bits/dim")
    result = dict(fastpixel=ours, baselines={k: dict(bytes=v, bits_per_dim=8 * v / dims) for k, v in sizes.items()},
                  machine=machine(torch.device("cpu")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
