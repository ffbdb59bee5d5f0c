"""Any folder of PNG images -> one uint8 array, decoded with Pillow; nothing is changed silently.

What a file holds is taken from its own header (IHDR: bit depth and colour type; tRNS), not from
what Pillow would convert it to:

* grey (colour type 0) and RGB / palette (2, 3) images of 1-8 bits per sample are read as they are
  (a 1-, 2- or 4-bit grey value v of d bits becomes its 8-bit equivalent v * 255 / (2^d - 1));
* 16-bit grey is read exactly when it is 8-bit data stored in 16 bits (every value a multiple of
  257); otherwise it holds more than 256 levels, which fastpixel's models (at most 256 levels per
  sub-pixel) cannot represent: refused, or with ``convert=True`` quantized to 8 bits,
  round(v * 255 / 65535);
* 16-bit colour or grey-with-alpha is refused: Pillow decodes it to 8 bits inexactly;
* an alpha channel (colour types 4, 6, or a tRNS transparency entry) is accepted when every pixel
  is fully opaque (it carries nothing); otherwise refused, or dropped with ``convert=True``;
* a grey file read as RGB, or an RGB file read as grey (``channels``), and a folder that mixes
  grey and colour files are refused, or converted with ``convert=True`` (grey -> RGB repeats the
  value; RGB -> grey is Pillow's ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from fastpixel.data.errors import DataFileError

SOURCE = "your own PNG files (all the same size; grey or RGB, 8 bits per channel)"
SIGNATURE = b"\x89PNG\r\n\x1a\n"
GREY_TYPES = (0, 4)  # grey, grey + alpha; 2 RGB, 3 palette, 6 RGBA
COLOUR_TYPES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}
CONVERT_HINT = "pass convert=True (--png-convert) to convert it explicitly"


def png_header(path: str | os.PathLike, *, source: str = SOURCE) -> tuple[int, int]:
    """(bit depth, colour type) from the IHDR chunk at the start of a PNG file."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, "file not found", "a readable PNG image", source)
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != SIGNATURE or head[12:16] != b"IHDR":
        raise DataFileError(path, "cannot decode (no PNG signature and IHDR header)", "a readable PNG image", source)
    depth, colour = struct.unpack(">BB", head[24:26])
    if colour not in COLOUR_TYPES or depth not in (1, 2, 4, 8, 16):
        raise DataFileError(path, f"cannot decode (IHDR bit depth {depth}, colour type {colour})",
                            "a readable PNG image", source)
    return depth, colour


def png_channels(path: str | os.PathLike, *, source: str = SOURCE) -> int:
    """1 for a grey PNG (with or without alpha), 3 for RGB, RGBA or palette, from its header."""
    return 1 if png_header(path, source=source)[1] in GREY_TYPES else 3


def read_png(
    path: str | os.PathLike, *, channels: int | None = None, convert: bool = False, source: str = SOURCE
) -> np.ndarray:
    """One PNG file -> uint8 (channels, H, W) holding exactly the file's values (see the module doc).

    channels: 1 or 3; None: the file's own (1 for grey, 3 for colour).
    convert: allow the lossy or mode-changing conversions (16-bit grey to 8 bits, dropping a
      non-opaque alpha channel, grey <-> RGB); without it they raise DataFileError saying why.
    """
    from PIL import Image, UnidentifiedImageError

    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None (the file's own), got {channels!r}")
    path = Path(path)
    depth, colour = png_header(path, source=source)
    native = 1 if colour in GREY_TYPES else 3
    target = native if channels is None else channels
    expected = "an 8-bit grey or RGB PNG" if not convert else "a readable PNG image"

    def refuse(problem: str) -> DataFileError:
        return DataFileError(path, problem, expected, source)

    if depth == 16 and colour != 0:
        raise refuse(f"16-bit {COLOUR_TYPES[colour]} PNG: Pillow cannot decode 16-bit colour or alpha exactly; "
                     "save it with 8 bits per channel")
    if target != native and not convert:
        raise refuse(f"a {'grey' if native == 1 else 'colour'} image where {target} channel(s) were asked "
                     f"(a folder mixing grey and colour images?); {CONVERT_HINT}")
    try:
        with Image.open(path) as image:
            image.load()
            alpha = _alpha(image, colour)
            if depth == 16:
                pixels = _grey16(np.asarray(image), convert, refuse)
            else:
                pixels = np.asarray(image.convert("L" if native == 1 else "RGB"), dtype=np.uint8)
    except DataFileError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataFileError(path, f"cannot decode ({type(err).__name__}: {err})", "a readable PNG image", source) from None
    if alpha is not None and alpha.min() < 255 and not convert:
        transparent = int((alpha < 255).sum())
        raise refuse(f"alpha channel with {transparent} of {alpha.size} pixels not fully opaque; fastpixel models "
                     f"have no alpha channel and dropping it changes the image; {CONVERT_HINT} (drops the alpha)")
    if target != native:
        mode = "L" if target == 1 else "RGB"
        pixels = np.asarray(Image.fromarray(pixels, "L" if native == 1 else "RGB").convert(mode), dtype=np.uint8)
    return pixels[None] if target == 1 else np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _alpha(image, colour: int) -> np.ndarray | None:
    """The alpha values (H, W) uint8 of an image with an alpha channel or tRNS transparency, else None."""
    if colour in (4, 6):
        return np.asarray(image.getchannel("A"), dtype=np.uint8)
    if "transparency" in image.info:
        return np.asarray(image.convert("RGBA").getchannel("A"), dtype=np.uint8)
    return None


def _grey16(values: np.ndarray, convert: bool, refuse) -> np.ndarray:
    """16-bit grey (H, W) -> uint8: exact when every value is a multiple of 257, else quantized or refused."""
    values = values.astype(np.int64)
    if not (values % 257).any():
        return (values // 257).astype(np.uint8)
    if not convert:
        levels = len(np.unique(values))
        raise refuse(f"16-bit grey PNG with {levels} distinct values, not all of them 8-bit values stored in "
                     "16 bits; fastpixel models take at most 256 levels per sub-pixel; "
                     f"{CONVERT_HINT} (rounds to 8 bits)")
    return ((values * 255 + 32767) // 65535).astype(np.uint8)


def png_folder_labels(folder: str | os.PathLike, *, limit: int | None = None) -> np.ndarray | None:
    """Class ids of the files :func:`read_png_folder` reads (same sorted order), from a folder per
    class: ``folder/<id>/*.png`` with ``<id>`` a non-negative integer, the class id itself (never
    a position in a sorted list, so ids stay the same whatever other classes a folder holds).
    None when the files do not all sit in integer-named class folders -> int64 (N,)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".png")[:limit]
    labels = []
    for p in files:
        parts = p.relative_to(folder).parts
        if len(parts) < 2 or not parts[0].isdigit():
            return None
        labels.append(int(parts[0]))
    return np.asarray(labels, dtype=np.int64) if labels else None


def read_png_folder(
    folder: str | os.PathLike,
    *,
    channels: int | None = None,
    limit: int | None = None,
    convert: bool = False,
    source: str = SOURCE,
) -> np.ndarray:
    """Every ``*.png`` under ``folder`` (recursively, sorted by path) -> uint8 (N, C, H, W).

    channels: 1 or 3; None: the files' own, which must then all be grey or all colour (a folder
      that mixes them is refused unless ``convert=True``, which converts to the first file's).
    limit: read only the first ``limit`` files (in sorted order); an int >= 1, or None for all.
    convert: allow the conversions :func:`read_png` refuses by default.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be an int >= 1 (or None: every file), got {limit!r}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None (the files' own), got {channels!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFileError(folder, "folder not found", "a folder of .png files", source)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".png")[:limit]
    if not files:
        raise DataFileError(folder, "no .png files in the folder", "a folder of .png files", source)
    if channels is None:
        kinds = {p: png_channels(p, source=source) for p in files}
        grey = [p for p, c in kinds.items() if c == 1]
        if grey and len(grey) < len(files) and not convert:
            colour = next(p for p, c in kinds.items() if c == 3)
            raise DataFileError(
                folder, f"mixes grey and colour PNGs ({len(grey)} grey, e.g. {grey[0].name}; "
                f"{len(files) - len(grey)} colour, e.g. {colour.name})",
                f"images all grey or all colour; pass channels=1 or 3 with convert=True to convert", source,
            )
        channels = kinds[files[0]]
    images = [read_png(p, channels=channels, convert=convert, source=source) for p in files]
    for p, image in zip(files, images):
        if image.shape != images[0].shape:
            raise DataFileError(
                p, f"size {image.shape[1:]} differs from {files[0].name}'s {images[0].shape[1:]}",
                "images all of one size", source,
            )
    return np.stack(images)
