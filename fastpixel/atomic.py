"""Atomic file writes: a reader, or a crash, sees the old file or the new one, never half of one.

A full disk (``ENOSPC``, or a quota: ``EDQUOT``) while writing becomes one :class:`DiskFullError`
naming the file and saying that the previous file, if there was one, is kept as it was.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Callable

#: errno values that mean "the file system has no room for this write".
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """No space left while writing ``filename``; nothing under its final name changed."""

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def disk_full(err: OSError, path: Path, kept: str | None = None) -> DiskFullError:
    """The DiskFullError for ``err`` (an ENOSPC / EDQUOT while writing ``path``)."""
    previous = "the previous file is kept as it was" if path.exists() else "nothing was written there"
    what = "no space left on device" if err.errno == errno.ENOSPC else "disk quota exceeded"
    message = f"{what} writing {path}; {kept or previous}; free some space, or write elsewhere"
    full = DiskFullError(err.errno, message)
    full.filename = str(path)
    return full


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Write a file atomically: ``write(tmp)`` fills a temporary file in the same folder
    (``.<name>.tmp-<pid>``, which run directories clean up after a killed writer), it is fsynced and
    renamed over ``path``, and the rename is made durable. A reader (or a crash) sees either the old
    file or the new one, never half of one; the temporary file never outlives a failed write.
    ENOSPC / EDQUOT raise :class:`DiskFullError` (the old file is kept).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if err.errno in NO_SPACE and not isinstance(err, DiskFullError):
            raise disk_full(err, path) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def write_bytes_atomically(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """``write_atomically`` of a finished buffer (serialise in memory first, so a writer such as
    torch.save or PIL never sees the disk fill mid-way and garbles the error)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return write_atomically(path, write)
