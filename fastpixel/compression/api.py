"""``compress`` / ``decompress`` and their streaming forms: lossless coding of images with a fastpixel model.

    data = fastpixel.compress(model, images)            # images: ints (N, C, H, W) in [0, levels)
    back = fastpixel.decompress(model, data)            # uint8 (N, C, H, W), equal to images

    with open("digits.fpx", "wb") as f:                 # a stream of chunks, each decodable alone
        writer = CompressedWriter(f, model)
        for batch in batches: writer.write(batch)
        writer.close()
    with open("digits.fpx", "rb") as f:
        for chunk in iter_decompress(model, f): ...     # uint8 (n, C, H, W) per chunk, as checked

The header (fastpixel.compression.container) records the model (SHA-256 of its config and weights,
its shipped name), the dtype and backend, the machine facts that can change float results, the coder
and what the images are; :func:`check_header` refuses a stream the given model cannot decode exactly.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from fastpixel.compression.coder import SubpixelDecoder, SubpixelEncoder, coder_facts
from fastpixel.compression.container import Chunk, Reader, Writer, pixel_digest
from fastpixel.compression.driver import rows_per_chunk, run_chunk
from fastpixel.compression.errors import CorruptDataError, FormatError, MachineMismatchError, ModelMismatchError
from fastpixel.compression.fingerprint import (
    machine_facts, model_device, model_dtype, model_fingerprint, soft_facts,
)
from fastpixel.validation import check_images

FORMAT = "fastpixel-compressed"
#: Images per chunk by default: chunks this large keep the per-pixel op overhead low (the cached
#: engine's cost barely grows with the batch) and cost 44 bytes each.
CHUNK_SIZE = 256
OVERRIDE = "allow_other_machine=True (--allow-other-machine)"


@dataclass
class CompressionStats:
    """What a writer has coded so far.

    images, subpixels: counts (subpixels = sum of C*H*W). bytes: the stream's size so far (header,
    chunk records and the end record included once written). ideal_bits: -sum log2 p(x) under the
    coding probabilities (the model's NLL in bits for these images). seconds: time spent coding.
    """

    images: int = 0
    subpixels: int = 0
    bytes: int = 0
    ideal_bits: float = 0.0
    seconds: float = 0.0
    payload_bytes: int = 0

    @property
    def bits_per_dim(self) -> float:
        return 8 * self.bytes / max(self.subpixels, 1)

    @property
    def nll_bits_per_dim(self) -> float:
        return self.ideal_bits / max(self.subpixels, 1)

    @property
    def overhead(self) -> float:
        """Relative excess of the stream's size over the model's NLL: bytes*8 / ideal_bits - 1."""
        return 8 * self.bytes / self.ideal_bits - 1 if self.ideal_bits > 0 else float("inf")


def _check_model(model: torch.nn.Module) -> None:
    config = getattr(model, "config", None)
    if not hasattr(model, "levels") or not hasattr(model, "channels") or not isinstance(config, dict):
        raise TypeError(f"model must be a fastpixel model (create_model(...), from_pretrained(...)), "
                        f"got {type(model).__name__}")


def make_header(model: torch.nn.Module, model_name: str | None = None) -> dict:
    """The header of a stream coded by ``model`` on this machine (see the module doc of container)."""
    device = model_device(model)
    return {
        "format": FORMAT,
        "fastpixel_version": _fastpixel_version(),
        "model": {"sha256": model_fingerprint(model), "name": model_name, "config": dict(model.config),
                  "dtype": model_dtype(model)},
        "compute": {"engine": "cached", "backend": getattr(model, "backend", None), "dtype": model_dtype(model),
                    "device": str(device)},
        "machine": machine_facts(device),
        "diagnostics": soft_facts(),
        "coder": coder_facts(),
        "images": {"channels": model.channels, "levels": model.levels, "pixels": "uint8 (N, C, H, W)"},
        # Reserved: a conditional model's per-image labels will travel in each chunk's side data
        # (format version 2); version 1 streams are unconditional.
        "conditioning": None,
    }


def _fastpixel_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fastpixel")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def check_header(model: torch.nn.Module, header: dict, *, allow_other_machine: bool = False) -> None:
    """Raise unless ``model`` on this machine decodes the stream of ``header`` exactly (as far as
    facts can tell; the pixel checksums tell the rest)."""
    _check_model(model)
    if header.get("format") != FORMAT:
        raise FormatError(f"the header does not describe a {FORMAT} stream")
    recorded = header.get("model") or {}
    images = header.get("images") or {}
    if header.get("conditioning") is not None:
        raise FormatError("the stream is conditional (labels), which this fastpixel does not decode")
    kind = (recorded.get("config") or {}).get("name")
    who = f"the shipped model {recorded['name']!r}" if recorded.get("name") else f"a {kind} model"
    if (images.get("channels"), images.get("levels")) != (model.channels, model.levels):
        raise ModelMismatchError(f"the stream holds {images.get('channels')}-channel images of {images.get('levels')} "
                                 f"levels, coded by {who}; this model takes {model.channels} channel(s) and "
                                 f"{model.levels} levels: decode with the model that encoded")
    dtype = model_dtype(model)
    if recorded.get("dtype") != dtype:
        raise ModelMismatchError(f"the stream was coded by {who} in {recorded.get('dtype')}; this model is {dtype}: "
                                 f"convert it (e.g. model.to(torch.{recorded.get('dtype')})) before decoding")
    if recorded.get("sha256") != model_fingerprint(model):
        same = recorded.get("config") == dict(model.config)
        why = ("the same architecture with different weights (one changed weight is enough)" if same
               else f"another model ({dict(model.config)} here, {recorded.get('config')} in the stream)")
        raise ModelMismatchError(f"the stream was coded by {who} (sha256 {str(recorded.get('sha256'))[:12]}...); "
                                 f"this is {why}: decode with the model that encoded")
    if allow_other_machine:
        return
    here = machine_facts(model_device(model))
    there = header.get("machine") or {}
    diff = [f"{k}: {there.get(k)!r} there, {here[k]!r} here" for k in here if there.get(k) != here[k]]
    coder = coder_facts()
    recorded_coder = header.get("coder") or {}
    diff += [f"coder {k}: {recorded_coder.get(k)!r} there, {coder[k]!r} here" for k in coder
             if recorded_coder.get(k) != coder[k]]
    if diff:
        raise MachineMismatchError("the stream was coded where float arithmetic or the coder may differ from here ("
                                   + "; ".join(diff) + f"); pass {OVERRIDE} to try anyway: every chunk's pixel "
                                   "checksum is still verified, so a difference gives an error, never a wrong image")


def _as_images(images: object, model: torch.nn.Module) -> torch.Tensor:
    """Integer (N, C, H, W) tensor or numpy array -> int64 on the model's device, checked."""
    if isinstance(images, np.ndarray):
        if images.dtype.kind not in "iub":
            raise TypeError(f"images must hold integers (N, C, H, W) in [0, levels), got a {images.dtype} array")
        images = torch.from_numpy(np.ascontiguousarray(images).astype(np.int64))
    check_images(images, channels=model.channels, levels=model.levels)
    if images.shape[0] < 1:
        raise ValueError("images must hold at least one image (N >= 1)")
    return images.to(device=model_device(model), dtype=torch.long)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    return images.to("cpu", torch.uint8).numpy()


class CompressedWriter:
    """Writes a compressed stream of images to a binary file object, chunk by chunk.

    model: any fastpixel model (eval mode; its dtype and device are used as they are).
    chunk_size: images per chunk (a chunk is coded, and must be decoded, as one batch).
    model_name: the shipped name of the model ("digits"), recorded for the reader's convenience.
    verify: decode every chunk right after coding it and compare (twice the time).
    progress: a tqdm bar over rows.
    ``write(images)`` may be called many times, with images of any size (one size per call);
    ``close()`` writes the end record (a stream without it reads as truncated). ``stats`` says what
    was written.
    """

    def __init__(self, stream: BinaryIO, model: torch.nn.Module, *, chunk_size: int = CHUNK_SIZE,
                 model_name: str | None = None, verify: bool = False, progress: bool = False) -> None:
        _check_model(model)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        self.model, self.chunk_size, self.verify, self.progress = model, chunk_size, verify, progress
        self.header = make_header(model, model_name)
        self._writer = Writer(stream, self.header)
        self.stats = CompressionStats(bytes=self._writer.bytes_written)
        self.closed = False

    def write(self, images: object) -> None:
        """Code ``images`` (integers (N, C, H, W) in [0, levels)) as ceil(N / chunk_size) chunks."""
        if self.closed:
            raise ValueError("the writer is closed")
        images = _as_images(images, self.model)
        starts = range(0, images.shape[0], self.chunk_size)
        total = len(starts) * rows_per_chunk(self.model, images.shape[2])
        with tqdm(total=total, desc="compressing", unit="row", disable=not self.progress, leave=False) as bar:
            for start in starts:
                self._chunk(images[start:start + self.chunk_size], bar.update)

    def _chunk(self, images: torch.Tensor, on_row: Callable[[], None]) -> None:
        begin = time.perf_counter()
        encoder = SubpixelEncoder()
        run_chunk(self.model, images.clone(), encoder, on_row)
        pixels = _to_uint8(images)
        n, c, h, w = pixels.shape
        chunk = Chunk(self._writer.chunks, n, h, w, encoder.finish(), pixel_digest(pixels))
        if self.verify:
            decoded = decode_chunk(self.model, chunk, channels=c)
            if not np.array_equal(decoded.numpy(), pixels):
                raise CorruptDataError("verification failed: the chunk just coded does not decode to its images")
        self.stats.bytes += self._writer.chunk(chunk)
        self.stats.images += n
        self.stats.subpixels += c * h * w * n
        self.stats.ideal_bits += encoder.ideal_bits
        self.stats.payload_bytes += len(chunk.payload)
        self.stats.seconds += time.perf_counter() - begin

    def close(self) -> None:
        """Write the end record; the stream is complete."""
        if not self.closed:
            self.stats.bytes += self._writer.end()
            self.closed = True


def compress(model: torch.nn.Module, images: object, *, chunk_size: int = CHUNK_SIZE, model_name: str | None = None,
             verify: bool = False, progress: bool = False) -> bytes:
    """Losslessly compress ``images`` (integers (N, C, H, W) in [0, levels), a tensor or numpy array)
    with ``model``; returns the stream's bytes. See :class:`CompressedWriter` for the options.

    The size is the model's NLL in bits plus at most ~0.5% (coder precision, docs/compression.md) plus
    a fixed header (~1 kB) and 44 bytes per chunk.
    """
    out = io.BytesIO()
    writer = CompressedWriter(out, model, chunk_size=chunk_size, model_name=model_name, verify=verify,
                              progress=progress)
    writer.write(images)
    writer.close()
    return out.getvalue()


def decode_chunk(model: torch.nn.Module, chunk: Chunk, *, channels: int,
                 on_row: Callable[[], None] | None = None, header: dict | None = None) -> torch.Tensor:
    """One chunk -> uint8 (n, C, H, W) on the CPU, checked against its pixel digest."""
    images = torch.zeros(chunk.images, channels, chunk.height, chunk.width, dtype=torch.long,
                         device=model_device(model))
    try:
        run_chunk(model, images, SubpixelDecoder(chunk.payload), on_row)
    except CorruptDataError as err:
        raise CorruptDataError(f"chunk {chunk.index}: {err}") from None
    pixels = _to_uint8(images)
    if pixel_digest(pixels) != chunk.pixel_digest:
        raise CorruptDataError(f"chunk {chunk.index} decodes to pixels whose checksum differs from the encoder's: the "
                               "model's arithmetic here differs from the encoder's" + _diagnose(header)
                               + " (no image is returned)")
    return torch.from_numpy(pixels)


def _diagnose(header: dict | None) -> str:
    if not header:
        return ""
    there = header.get("diagnostics") or {}
    here = soft_facts()
    diff = [f"{k} {there.get(k)!r} there, {v!r} here" for k, v in here.items() if there.get(k) != v]
    return f" (also differing: {'; '.join(diff)})" if diff else ""


def _open(source: bytes | bytearray | memoryview | BinaryIO) -> BinaryIO:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    if not hasattr(source, "read"):
        raise TypeError(f"expected the stream's bytes or a binary file object, got {type(source).__name__}")
    return source


def read_header(source: bytes | BinaryIO) -> dict:
    """The header of a stream (checked for magic, version and its checksum), without decoding anything."""
    return Reader(_open(source)).header


def iter_decompress(model: torch.nn.Module, source: bytes | BinaryIO, *, allow_other_machine: bool = False,
                    progress: bool = False) -> Iterator[torch.Tensor]:
    """Decode a stream chunk by chunk: yields uint8 (n, C, H, W) per chunk, each checked against its
    digest before it is yielded; the end record is checked after the last (a truncated stream raises
    CorruptDataError once the chunks it holds are yielded)."""
    reader = Reader(_open(source))
    check_header(model, reader.header, allow_other_machine=allow_other_machine)
    channels = reader.header["images"]["channels"]
    with tqdm(desc="decompressing", unit="row", disable=not progress, leave=False) as bar:
        for chunk in reader.chunks():
            yield decode_chunk(model, chunk, channels=channels, on_row=bar.update, header=reader.header)


def decompress(model: torch.nn.Module, data: bytes | BinaryIO, *, allow_other_machine: bool = False,
               progress: bool = False) -> torch.Tensor:
    """Decode a whole stream: uint8 (N, C, H, W), exactly the images compressed.

    The stream's structure (checksums, end record) is checked in full before any chunk is decoded.
    Raises ModelMismatchError (another model, a changed weight, another dtype), MachineMismatchError
    (arithmetic may differ; see ``allow_other_machine``), CorruptDataError (truncated, a changed
    byte, a pixel checksum that differs), FormatError (not a stream, a newer format version).
    Streams whose chunks differ in image size: use :func:`iter_decompress`.
    """
    reader = Reader(_open(data))
    check_header(model, reader.header, allow_other_machine=allow_other_machine)
    chunks = list(reader.chunks())
    sizes = {(c.height, c.width) for c in chunks}
    if len(sizes) > 1:
        raise ValueError(f"the stream holds images of {len(sizes)} sizes {sorted(sizes)}: decode it chunk by chunk "
                         "with iter_decompress")
    channels = reader.header["images"]["channels"]
    total = len(chunks) * rows_per_chunk(model, chunks[0].height) if chunks else 0
    with tqdm(total=total, desc="decompressing", unit="row", disable=not progress, leave=False) as bar:
        parts = [decode_chunk(model, c, channels=channels, on_row=bar.update, header=reader.header) for c in chunks]
    if not parts:
        return torch.zeros(0, channels, 0, 0, dtype=torch.uint8)
    return torch.cat(parts)
