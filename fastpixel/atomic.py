"""Atomic file (and folder) writes: a reader, or a crash, sees the old file or the new one, never half of one.

A full disk (``ENOSPC``, or a quota: ``EDQUOT``) while writing becomes one :class:`DiskFullError`
naming the file and saying that the previous file, if there was one, is kept as it was.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Callable

from fastpixel.output_paths import OutputExistsError

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


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object], *, overwrite: bool = True) -> Path:
    """Write a file, or a folder, atomically: ``write(tmp)`` fills a temporary file, or creates and
    fills a temporary folder, in the same folder (``.<name>.tmp-<pid>``, which run directories clean
    up after a killed writer); it is fsynced (a folder: every file in it, then the folder) and renamed
    over ``path``, and the rename is made durable. A reader (or a crash) sees either the old file or
    the new one, never half of one; the temporary file never outlives a failed write.

    A new folder replaces an existing one by moving it aside (``.<name>.old-<pid>``) for the rename
    and deleting it after (it is put back if the rename fails). ``overwrite=False``: an existing
    ``path`` (one this call did not create) is never replaced: :class:`OutputExistsError`, nothing
    changed. ENOSPC / EDQUOT raise :class:`DiskFullError` (the old file is kept).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    try:
        write(tmp)
        _fsync_tree(tmp)
        if not overwrite and os.path.lexists(path):
            raise OutputExistsError(f"{path} already exists and was not written by this call; pass --overwrite "
                                    f"(overwrite=True) to replace it, or choose another name")
        if tmp.is_dir() and path.is_dir():  # os.replace does not replace a folder that holds files
            path.rename(old)
            try:
                os.replace(tmp, path)
            except BaseException:
                old.rename(path)
                raise
        else:
            os.replace(tmp, path)
    except OSError as err:
        if err.errno in NO_SPACE and not isinstance(err, DiskFullError):
            raise disk_full(err, path) from None
        raise
    finally:
        for leftover in (tmp, old):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            elif os.path.lexists(leftover):
                leftover.unlink()
    _fsync_folder(path.parent)  # make the rename itself durable
    return path


def _fsync_tree(path: Path) -> None:
    """fsync the file ``path``, or every file under the folder ``path`` and the folders themselves."""
    if not path.is_dir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        return
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_folder(Path(root))


def _fsync_folder(folder: Path) -> None:
    """fsync a folder's entries where the platform allows it (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def write_bytes_atomically(path: str | os.PathLike, data: bytes | memoryview, *, overwrite: bool = True) -> Path:
    """``write_atomically`` of a finished buffer (serialise in memory first, so a writer such as
    torch.save or PIL never sees the disk fill mid-way and garbles the error)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return write_atomically(path, write, overwrite=overwrite)
