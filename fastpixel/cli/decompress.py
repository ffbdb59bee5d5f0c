"""Decompress a stream written by fastpixel-compress: ``fastpixel-decompress IN.fpx -o DIR|FILE.npz``.

The model: ``--pretrained NAME`` / ``--model PATH``, or, when neither is given, the shipped model the
stream names. Every chunk is checked against its pixel checksum before anything is written; a wrong
model, changed weights, a corrupted or truncated file, a newer format or other arithmetic end with a
one-line error (exit 2) and no output. DIR: one PNG per image (``000000.png``, 1-bit for 2 levels,
else 8-bit values round(k * 255 / (levels - 1))); FILE.npz: ``images`` uint8 (N, C, H, W) and
``levels``; FILE.npy: the array.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import torch

from fastpixel.cli.args import CommandError, Parser, resolve_device, run_command
from fastpixel.cli.image_files import ARRAY_SUFFIXES, add_shared_arguments, check_output, load_model, write_images
from fastpixel.compression import MissingCoderError, iter_decompress, read_header
from fastpixel.compression.container import Reader

PROG = "fastpixel-decompress"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", metavar="IN.fpx", help="a file written by fastpixel-compress")
    p.add_argument("-o", "--output", metavar="DIR|FILE.npz", help="a folder of PNGs, or .npz / .npy")
    p.add_argument("--info", action="store_true",
                   help="print what the stream says about itself (header, chunks) and check its structure; no model")
    add_shared_arguments(p, model_required=False,
                         pretrained_help="the model that encoded (default: the shipped model the stream names)")
    p.add_argument("--allow-other-machine", action="store_true",
                   help="decode although torch / CPU / GPU / coder differ from the encoder's (each chunk's pixel "
                        "checksum is still verified)")
    return p


def run(argv: list[str] | None = None) -> dict:
    """Parse ``argv``, decode every chunk (checked), write the images; print and return a summary."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    source = Path(args.input)
    if not source.is_file():
        raise CommandError(f"{source}: no such file")
    if args.info:
        return _info(source)
    if args.output is None:
        raise CommandError("-o/--output is required (a folder of PNGs, or FILE.npz / FILE.npy), unless --info")
    out = Path(args.output)
    check_output(out, args.overwrite, folder=out.suffix.lower() not in ARRAY_SUFFIXES)
    data = source.read_bytes()
    header = read_header(data)
    pretrained = args.pretrained
    if pretrained is None and args.model is None:
        pretrained = (header.get("model") or {}).get("name")
        if not pretrained:
            raise CommandError(f"{source}: the stream names no shipped model; pass --pretrained or --model with the "
                               "model that encoded it")
    model, _ = load_model(pretrained, args.model, resolve_device(args.device))
    list(Reader(io.BytesIO(data)).chunks())  # the whole structure is checked before any decoding
    start = time.perf_counter()
    try:
        chunks = [c.numpy() for c in iter_decompress(model, data, allow_other_machine=args.allow_other_machine,
                                                     progress=not args.quiet and sys.stderr.isatty())]
    except MissingCoderError as err:
        raise CommandError(str(err)) from None
    seconds = time.perf_counter() - start
    count = write_images(out, chunks, header["images"]["levels"], overwrite=args.overwrite)
    print(f"{count} images decoded from {source} ({len(data):,} bytes) at {count / seconds:.1f} images/s, every "
          f"chunk's checksum verified; wrote {out}")
    return dict(images=count, bytes=len(data), images_per_s=count / seconds, output=str(out))


def _info(source: Path) -> dict:
    """Print the header as JSON and one line per chunk; the structure (checksums, end record) is checked."""
    data = source.read_bytes()
    reader = Reader(io.BytesIO(data))
    chunks = [(c.images, c.height, c.width, len(c.payload)) for c in reader.chunks()]
    print(json.dumps(reader.header, indent=2, sort_keys=True))
    for i, (n, h, w, size) in enumerate(chunks):
        print(f"chunk {i}: {n} images of {h}x{w}, {size:,} bytes coded")
    print(f"{sum(c[0] for c in chunks)} images in {len(chunks)} chunk(s), {len(data):,} bytes; structure checked "
          "(the pixels are checked when decoding)")
    return dict(header=reader.header, chunks=chunks, bytes=len(data))


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``fastpixel-decompress``): exit 0 on success, one-line errors (exit 2) otherwise."""
    run_command(PROG, lambda: run(argv))


if __name__ == "__main__":
    main()
