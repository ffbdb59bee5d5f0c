"""The one error every reader raises for a missing, truncated or malformed file."""

from __future__ import annotations

import os


class DataFileError(RuntimeError):
    """A data file is missing or is not what its reader expects.

    The message names the file, what was wrong, what was expected, and where to get it.
    """

    def __init__(self, path: str | os.PathLike, problem: str, expected: str, source: str) -> None:
        self.path, self.problem, self.expected, self.source = os.fspath(path), problem, expected, source
        super().__init__(f"{self.path}: {problem}; expected {expected}. Get it from: {source}")
