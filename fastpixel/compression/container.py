"""The ``.fpx`` container: a header, chunks that each decode alone, and an end record. Little-endian.

    file   := MAGIC (8) | version u16 | header_len u32 | header (UTF-8 JSON) | header_digest (16)
              | chunk* | end
    chunk  := b"FPXC" | images u32 | height u32 | width u32 | side_len u32 | payload_len u32
              | pixel_digest (16) | payload_crc u32 | record_crc u32 | side (side_len) | payload (payload_len)
    end    := b"FPXE" | chunks u32 | images u64 | chain_digest (16) | end_crc u32

* MAGIC is PNG-style (``\\x89FPX\\r\\n\\x1a\\n``): a non-ASCII first byte and a CR LF / Ctrl-Z / LF
  tail catch transfers that mangle binary files.
* header_digest: BLAKE2b-128 of the version and the header bytes. The header (JSON) says which model,
  dtype, machine and coder encoded, and what the images are (channels, levels; fastpixel.compression.api).
* A chunk is one batch of ``images`` images of one size (H, W), coded together (they must be decoded
  together: fastpixel.compression.driver). pixel_digest: BLAKE2b-128 of the decoded pixels
  (:func:`pixel_digest`), checked after decoding; payload_crc: CRC-32 of the payload, checked before
  (a flipped byte is found without running the model); record_crc: CRC-32 of the record before it.
* side: reserved for per-image side information (class labels of a conditional model); format
  version 1 writes none (side_len 0) and refuses a chunk that has some.
* end: the number of chunks and images, and chain_digest, BLAKE2b-128 over the header digest and every
  chunk record in order: a missing, repeated or reordered chunk, or a file cut at a chunk boundary,
  is found. A file without its end record is truncated.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np

from fastpixel.compression.errors import CorruptDataError, FormatError

MAGIC = b"\x89FPX\r\n\x1a\n"
VERSION = 1
CHUNK_TAG = b"FPXC"
END_TAG = b"FPXE"
DIGEST_SIZE = 16
_PREAMBLE = struct.Struct("<8sHI")
_CHUNK = struct.Struct("<4sIIIII16sI")  # tag, images, height, width, side_len, payload_len, pixel digest, payload crc
_CRC = struct.Struct("<I")
_END = struct.Struct("<4sIQ16s")
#: Bytes a chunk adds besides its payload.
CHUNK_OVERHEAD = _CHUNK.size + _CRC.size
#: Largest header accepted (a corrupted length must not make the reader allocate gigabytes).
MAX_HEADER = 1 << 20
MAX_PAYLOAD = (1 << 32) - 1


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).digest()


def pixel_digest(pixels: np.ndarray) -> bytes:
    """BLAKE2b-128 of uint8 pixels (N, C, H, W), their shape included."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    return digest(struct.pack("<4I", *pixels.shape) + pixels.tobytes())


@dataclass(frozen=True)
class Chunk:
    """One chunk as stored: ``images`` images of ``height`` x ``width``, their coded payload and digest."""

    index: int
    images: int
    height: int
    width: int
    payload: bytes
    pixel_digest: bytes
    side: bytes = b""

    def record(self) -> bytes:
        """The chunk's record (the bytes before side and payload), its CRC included."""
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"a chunk's coded data is limited to 4 GiB, got {len(self.payload)} bytes: "
                             "use smaller chunks")
        head = _CHUNK.pack(CHUNK_TAG, self.images, self.height, self.width, len(self.side), len(self.payload),
                           self.pixel_digest, zlib.crc32(self.payload))
        return head + _CRC.pack(zlib.crc32(head))


class Writer:
    """Writes a stream to a binary file object: the header at once, then chunks, then :meth:`end`."""

    def __init__(self, stream: BinaryIO, header: dict) -> None:
        text = json.dumps(header, sort_keys=True, allow_nan=False).encode()
        version = struct.pack("<H", VERSION)
        self._stream = stream
        self._header_digest = digest(version + text)
        self._chain = hashlib.blake2b(self._header_digest, digest_size=DIGEST_SIZE)
        self.chunks = self.images = 0
        self.bytes_written = self._write(_PREAMBLE.pack(MAGIC, VERSION, len(text)) + text + self._header_digest)

    def _write(self, data: bytes) -> int:
        self._stream.write(data)
        return len(data)

    def chunk(self, chunk: Chunk) -> int:
        """Append ``chunk``; returns the bytes written."""
        record = chunk.record()
        self._chain.update(record)
        self.chunks += 1
        self.images += chunk.images
        written = self._write(record + chunk.side + chunk.payload)
        self.bytes_written += written
        return written

    def end(self) -> int:
        """Write the end record (the stream is complete after it); returns the bytes written."""
        body = _END.pack(END_TAG, self.chunks, self.images, self._chain.digest())
        written = self._write(body + _CRC.pack(zlib.crc32(body)))
        self.bytes_written += written
        return written


class Reader:
    """Reads a stream from a binary file object: ``.header`` at once, then :meth:`chunks` in order.

    Every structural check is made while reading (magic, version, checksums, the end record);
    the pixel digests are checked by the decoder, which is the only one that knows the pixels.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        magic, version, length = self._unpack(_PREAMBLE, "the file header")
        if magic != MAGIC:
            raise FormatError("not a fastpixel compressed stream (no fastpixel magic bytes at the start)")
        if version > VERSION:
            raise FormatError(f"format version {version} is newer than this fastpixel reads (version {VERSION}): "
                              "upgrade fastpixel to decode it")
        if version < 1:
            raise FormatError(f"format version {version} does not exist (the file is corrupted)")
        if length > MAX_HEADER:
            raise CorruptDataError(f"header length {length} bytes is implausible: the file is corrupted")
        text = self._read(length, "the header")
        if self._read(DIGEST_SIZE, "the header checksum") != digest(struct.pack("<H", version) + text):
            raise CorruptDataError("the header's checksum does not match: the file is corrupted")
        self._header_digest = digest(struct.pack("<H", version) + text)
        try:
            header = json.loads(text.decode())
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CorruptDataError("the header is not valid JSON although its checksum matches") from None
        if not isinstance(header, dict):
            raise FormatError("the header is not a JSON object")
        self.header = header
        self.version = version

    def _read(self, size: int, what: str) -> bytes:
        data = self._stream.read(size)
        if len(data) != size:
            raise CorruptDataError(f"the file is truncated: it ends inside {what}")
        return data

    def _unpack(self, layout: struct.Struct, what: str) -> tuple:
        return layout.unpack(self._read(layout.size, what))

    def chunks(self) -> Iterator[Chunk]:
        """Yield every chunk (its record and payload checked), then check the end record."""
        chain = hashlib.blake2b(self._header_digest, digest_size=DIGEST_SIZE)
        index = images = 0
        while True:
            tag = self._stream.read(4)
            if len(tag) < 4:
                raise CorruptDataError(f"the file is truncated: it ends after {index} complete chunk(s) "
                                       "without its end record")
            if tag == END_TAG:
                break
            if tag != CHUNK_TAG:
                raise CorruptDataError(f"chunk {index}: no chunk record where one was expected (the file is corrupted)")
            rest = self._read(_CHUNK.size - 4, f"chunk {index}'s record")
            head = tag + rest
            (crc,) = self._unpack(_CRC, f"chunk {index}'s record")
            if zlib.crc32(head) != crc:
                raise CorruptDataError(f"chunk {index}: its record's checksum does not match (the file is corrupted)")
            _, count, height, width, side_len, payload_len, pixels, payload_crc = _CHUNK.unpack(head)
            if side_len:
                raise FormatError(f"chunk {index} carries {side_len} bytes of side information, which format version "
                                  f"{VERSION} does not define (a newer fastpixel wrote it?)")
            if count < 1 or height < 1 or width < 1:
                raise CorruptDataError(f"chunk {index}: {count} images of {height}x{width} (the file is corrupted)")
            payload = self._read(payload_len, f"chunk {index}'s coded data")
            if zlib.crc32(payload) != payload_crc:
                raise CorruptDataError(f"chunk {index}: the coded data's checksum does not match "
                                       "(the file is corrupted)")
            chain.update(head + _CRC.pack(crc))
            images += count
            yield Chunk(index, count, height, width, payload, pixels)
            index += 1
        body = tag + self._read(_END.size - 4, "the end record")
        (crc,) = self._unpack(_CRC, "the end record")
        if zlib.crc32(body) != crc:
            raise CorruptDataError("the end record's checksum does not match (the file is corrupted)")
        _, chunks, total, chained = _END.unpack(body)
        if (chunks, total) != (index, images) or chained != chain.digest():
            raise CorruptDataError(f"the end record lists {chunks} chunk(s) and {total} image(s) but the file holds "
                                   f"{index} and {images}, or they are not the chunks written (missing, repeated or "
                                   "reordered chunks)")
        if self._stream.read(1):
            raise CorruptDataError("unexpected bytes after the end record (the file is corrupted, or two files "
                                   "were joined)")
