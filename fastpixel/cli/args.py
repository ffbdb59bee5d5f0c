"""What every command shares: argument types with bounds, the device check, one-line errors.

Errors: argparse's own and those :func:`run_command` catches print ONE line,
``<prog>: error: <message>``, and exit with status 2 (a user mistake, or something this machine
cannot do: a full disk, a missing GPU or package, a corrupt file) or 1 (a run that failed, e.g.
diverged). Set ``FASTPIXEL_TRACEBACK=1`` to see the traceback instead. Every command has ``--version``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

import torch

from fastpixel._version import __version__
from fastpixel.atomic import NO_SPACE, DiskFullError
from fastpixel.backend import BackendUnavailableError
from fastpixel.checkpoint import CheckpointError
from fastpixel.data.errors import DataFileError
from fastpixel.devices import resolve_device  # noqa: F401  (the commands' --device)
from fastpixel.sampling.cached import NoCachedSamplerError
from fastpixel.training.errors import DivergedError, RunDirError, TrainingInterrupted

#: Largest side, in pixels, of a PNG the commands write (about 400 MB of RGB at the limit).
MAX_PNG_SIDE = 12_000


class CommandError(Exception):
    """A user mistake found after parsing (the message says what was wrong and what to do)."""


class Parser(argparse.ArgumentParser):
    """argparse, with errors on one line and no usage block, and ``--version``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action="version", version=f"%(prog)s (fastpixel) {__version__}")

    def error(self, message: str):  # noqa: D102  (argparse's API)
        self.exit(2, f"{self.prog}: error: {message}\n")


def from_rule(name: str) -> Callable[[str], Any]:
    """The argparse type of the option ``name``: its text parsed as its row of the rules table
    (``fastpixel.training.rules``) says (an int, a finite number), then checked against that row."""
    from fastpixel.training.rules import INT, NUMBER, check_field, rule_for

    rule = rule_for(name)

    def parse(text: str) -> Any:
        if rule.kind == INT:
            try:
                value = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        elif rule.kind == NUMBER:
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        else:
            value = text
        try:
            check_field(name, value, rule)
        except ValueError as err:
            # on the command line "None" is leaving the flag out, not a value to name
            raise argparse.ArgumentTypeError(str(err).replace(f"{name} must", "must", 1).replace(" or None,", ",")) \
                from None
        return value

    parse.__name__ = {INT: "int", NUMBER: "float"}.get(rule.kind, "str")
    return parse


#: Exceptions that mean the user asked for something that cannot be done here (exit 2): a mistake,
#: a missing or corrupt file, a device or backend this machine lacks, a missing package, a full disk.
USER_ERRORS = (CommandError, RunDirError, DataFileError, CheckpointError, FileNotFoundError, FileExistsError,
               PermissionError, IsADirectoryError, NotADirectoryError, ValueError, BackendUnavailableError,
               ImportError, MemoryError, torch.OutOfMemoryError, NoCachedSamplerError)


def one_line(err: BaseException) -> str:
    """``err``'s message on one line (a full disk and other OS errors: what failed, on which path)."""
    if isinstance(err, DiskFullError):
        return err.strerror
    if isinstance(err, OSError) and err.errno in NO_SPACE:
        return f"no space left on device writing {err.filename or 'a file'}; free some space, or write elsewhere"
    if isinstance(err, OSError) and err.strerror and err.filename and str(err).startswith("["):
        return f"{err.filename}: {err.strerror}"
    if isinstance(err, torch.OutOfMemoryError):
        return f"out of memory: {str(err).splitlines()[0]} (lower the batch size or the image size)"
    lines = str(err).strip().splitlines()
    return " ".join(line.strip() for line in lines) or type(err).__name__


def run_command(prog: str, body: Callable[[], Any]) -> Any:
    """Run ``body()``; turn a user mistake into one line on stderr and ``SystemExit(2)``.

    DivergedError -> exit 1; TrainingInterrupted -> exit 128 + signal (what a shell reports);
    KeyboardInterrupt -> exit 130. FASTPIXEL_TRACEBACK=1 re-raises everything unchanged.
    """
    if os.environ.get("FASTPIXEL_TRACEBACK"):
        return body()
    try:
        return body()
    except TrainingInterrupted as err:
        print(f"{prog}: {err}", file=sys.stderr)
        raise SystemExit(128 + err.signum) from None
    except DivergedError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except (*USER_ERRORS, OSError) as err:
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
