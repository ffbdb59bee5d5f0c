"""Compress images losslessly with a fastpixel model: ``fastpixel-compress --pretrained digits IN -o OUT.fpx``.

IN: a PNG file or folder of PNGs, a ``.npy`` / ``.npz`` array, or a data set split such as
``builtin_mnist:test`` (binarized the way the model records; see fastpixel.cli.image_files). The model:
``--pretrained NAME`` (a shipped name, a save_pretrained folder, hf://owner/repo) or ``--model PATH``
(a save_pretrained folder or a checkpoint.pt). The stream is decoded again and compared before it is
kept (``--no-verify`` skips that); nothing is written on failure, nothing replaced without
``--overwrite``. Prints one summary line: images, bytes, bits/dim achieved, the model's NLL in
bits/dim for the same images, the overhead, images/s. Runs on the CPU unless ``--device`` says
otherwise (a stream decodes only where the arithmetic is the same: docs/compression.md).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fastpixel.atomic import write_bytes_atomically
from fastpixel.cli.args import CommandError, Parser, from_rule, resolve_device, run_command
from fastpixel.cli.image_files import add_shared_arguments, check_output, load_model, read_images
from fastpixel.compression import CHUNK_SIZE, CompressedWriter, MissingCoderError, decompress

PROG = "fastpixel-compress"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN", help="PNG file or folder, .npy/.npz, or DATASET:SPLIT (builtin_mnist:test)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.fpx", help="the compressed file to write")
    add_shared_arguments(p, model_required=True,
                         pretrained_help="a shipped model ('digits'), a save_pretrained folder, or hf://owner/repo")
    p.add_argument("--chunk-size", type=from_rule("chunk_size"), default=CHUNK_SIZE,
                   help=f"images coded together, and decodable alone (default {CHUNK_SIZE})")
    p.add_argument("--limit", type=from_rule("limit"), default=None, help="compress only the first N images")
    p.add_argument("--data-dir", default=None, help="the folder of a DATASET:SPLIT that needs one")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip decoding the stream again before keeping it")
    return p


def run(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, compress, verify, write; print and return the summary."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)  # the command owns its process; the API never does this
    out = Path(args.output)
    check_output(out, args.overwrite, folder=False)
    device = resolve_device(args.device)
    model, name = load_model(args.pretrained, args.model, device)
    images = read_images(args.input, model, data_dir=args.data_dir, limit=args.limit)
    progress = not args.quiet and sys.stderr.isatty()
    buffer = io.BytesIO()
    try:
        writer = CompressedWriter(buffer, model, chunk_size=args.chunk_size, model_name=name, progress=progress)
        writer.write(images)
        writer.close()
        data = buffer.getvalue()
        decode_seconds = None
        if args.verify:
            start = time.perf_counter()
            back = decompress(model, data, progress=progress)
            decode_seconds = time.perf_counter() - start
            if not np.array_equal(back.numpy(), images):
                raise CommandError("verification failed: the stream does not decode to the input images "
                                   "(nothing written)")
    except MissingCoderError as err:
        raise CommandError(str(err)) from None
    write_bytes_atomically(out, data, overwrite=args.overwrite)
    stats = writer.stats
    n, c, h, w = images.shape
    summary = dict(images=n, bytes=len(data), bits_per_dim=stats.bits_per_dim, nll_bits_per_dim=stats.nll_bits_per_dim,
                   overhead=stats.overhead, coding_overhead=8 * stats.payload_bytes / stats.ideal_bits - 1
                   if stats.ideal_bits > 0 else float("inf"), encode_images_per_s=n / stats.seconds,
                   decode_images_per_s=None if decode_seconds is None else n / decode_seconds, output=str(out))
    verified = (f"verified: decoded at {summary['decode_images_per_s']:.1f} images/s" if args.verify
                else "not verified")
    print(f"{n} images ({c}x{h}x{w}, {model.levels} levels) -> {len(data):,} bytes: {stats.bits_per_dim:.4f} bits/dim; "
          f"model NLL {stats.nll_bits_per_dim:.4f} bits/dim; overhead {100 * stats.overhead:.2f}% "
          f"(coding {100 * summary['coding_overhead']:.2f}%, header and chunk records "
          f"{len(data) - stats.payload_bytes:,} bytes); {summary['encode_images_per_s']:.1f} images/s; {verified}; "
          f"wrote {out}")
    return summary


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``fastpixel-compress``): exit 0 on success, one-line errors (exit 2) otherwise."""
    run_command(PROG, lambda: run(argv))


if __name__ == "__main__":
    main()
