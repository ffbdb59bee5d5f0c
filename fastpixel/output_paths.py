"""Where a command or an API call will write, checked before the work starts.

Every writer of fastpixel calls :func:`check_output_file` (one file) or :func:`check_output_dir` (a
directory it fills) first, so a read-only, missing or mistyped output path is one line at once, not
a traceback after the whole run. The rules:

* an output never replaces a file this call did not create unless asked (``overwrite=True`` /
  ``--overwrite``): :class:`OutputExistsError`;
* an output is never one of the call's own inputs, overwrite or not;
* the folder it lands in must exist or be creatable, and be writable (probed with a real file, so a
  read-only mount, a missing permission or a file in the way are all found).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable


class OutputExistsError(FileExistsError):
    """An output path holds a file the call did not create, and overwriting was not asked for."""


class OutputIsInputError(ValueError):
    """An output path is one of the call's own inputs."""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_folder(folder: str | os.PathLike, label: str) -> Path:
    """The folder ``folder`` exists or can be created, and a file can be written in it; else one line.

    Nothing is created: the nearest existing ancestor is probed with a temporary file (removed at once).
    """
    folder = Path(folder)
    ancestor = nearest_existing(folder)
    if not ancestor.is_dir():
        raise NotADirectoryError(f"{label}: {ancestor} is a file, so {folder} cannot be created")
    try:
        fd, probe = tempfile.mkstemp(prefix=".fastpixel-probe-", dir=ancestor)
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise PermissionError(f"{label}: cannot write in {ancestor} ({why}); choose a writable path") from None
    os.close(fd)
    os.unlink(probe)
    return folder


def check_output_file(path: str | os.PathLike, *, overwrite: bool, label: str,
                      inputs: Iterable[tuple[str, str | os.PathLike | None]] = ()) -> Path:
    """Check that ``path`` may be written by this call; return it as a Path.

    label: how the path is named in messages (``--out samples.png``, ``save_image_grid``).
    inputs: (label, path) of the call's inputs; an output equal to one of them is refused always.
    """
    path = Path(path)
    for input_label, source in inputs:
        if source is not None and (_same_file(path, Path(source))
                                   or os.path.abspath(path) == os.path.abspath(source)):
            raise OutputIsInputError(f"{label}: {path} is also the input {input_label}; refusing to write over "
                                     f"it (choose another output name)")
    if path.is_dir():
        raise IsADirectoryError(f"{label}: {path} is a directory; expected a file name")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{label}: {path} already exists and was not written by this call; pass "
                                f"--overwrite (overwrite=True) to replace it, or choose another name")
    check_writable_folder(path.parent if str(path.parent) else ".", label)
    return path


def check_output_dir(path: str | os.PathLike, label: str) -> Path:
    """A directory this call fills: not a file, and writable (or creatable in a writable folder)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{label}: {path} is a file, not a directory; choose a directory path")
    check_writable_folder(path, label)
    return path
