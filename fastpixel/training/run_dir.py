"""The files of a run directory: metrics lines, kept checkpoints, stale temporary files.

    config.json          every setting, the model config, the data protocol lines
    metrics.jsonl        one JSON object per line (train and test records)
    checkpoint.pt        the latest checkpoint (``--keep N > 1``: also checkpoint-<step>.pt, the last N)
    loss.png             train and test bits/dim against steps, redrawn as the run goes
    samples/             a PNG grid of samples at every evaluation, per weights ("model", "ema")
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from fastpixel.checkpoint import FILENAME, save_checkpoint
from fastpixel.directory_kind import FOREIGN, RUN, refuse_other_kind
from fastpixel.output_paths import check_output_dir
from fastpixel.training.errors import RunDirError, RunDirExistsError

METRICS = "metrics.jsonl"
CONFIG = "config.json"
LOSS_PLOT = "loss.png"
SAMPLES = "samples"
TENSORBOARD = "tensorboard"
_NUMBERED = re.compile(r"^checkpoint-(\d+)\.pt$")
_TEMPORARY = re.compile(r"^\..+\.tmp-(\d+)$")  # save_checkpoint's ".<name>.tmp-<pid>"


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of a ``metrics.jsonl``. A torn last line (a run killed mid-write) is dropped with
    a warning; a malformed line anywhere else raises ValueError naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text()
    lines = text.splitlines()
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ValueError("not an object with an integer 'step'")
        except ValueError as err:
            if number == len(lines):
                print(f"fastpixel: {path}: dropping a torn last line ({line[:60]!r}...)", file=sys.stderr)
                continue
            raise ValueError(f"{path}, line {number}: not a metrics record ({err}): {line[:80]!r}") from None
        out.append(record)
    return out


def truncate_metrics(path: str | os.PathLike, step: int) -> list[dict[str, Any]]:
    """Keep the records up to ``step`` (those a killed run wrote after its checkpoint are redone)."""
    path = Path(path)
    records = read_metrics(path)
    keep = [r for r in records if r["step"] <= step]
    if path.is_file() and (len(keep) != len(records) or not path.read_text().endswith("\n")):
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # replaced atomically: a kill keeps the old file
        tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
        os.replace(tmp, path)
    return keep


def append_metrics(path: str | os.PathLike, record: dict[str, Any]) -> str:
    line = json.dumps(record)
    with open(path, "a") as f:
        f.write(line + "\n")
    return line


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # ours, from an earlier call in this process that was cut short
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporary_files(run_dir: str | os.PathLike) -> list[Path]:
    """Delete the ``.<name>.tmp-<pid>`` files of writers that are no longer running and half-written
    ``*.png.tmp`` files; return them."""
    run_dir = Path(run_dir)
    removed = []
    if not run_dir.is_dir():
        return removed
    for path in run_dir.iterdir():
        match = _TEMPORARY.match(path.name)
        if match and path.is_file() and not _pid_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    # half-written plots and grids (*.png.tmp) of a run killed while drawing: only the run writes them
    for path in [*run_dir.glob("*.png.tmp"), *(run_dir / SAMPLES).glob("*.png.tmp")]:
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def numbered_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """[(step, path)] of the kept ``checkpoint-<step>.pt`` files, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := _NUMBERED.match(p.name))]
    return sorted(found)


def save_kept_checkpoint(run_dir: str | os.PathLike, state: dict[str, Any], step: int, keep: int) -> Path:
    """Write ``state`` as the latest ``checkpoint.pt`` (atomically) and keep the last ``keep`` ones.

    keep == 1: only checkpoint.pt. keep > 1: checkpoint-<step>.pt for the last ``keep`` saves, and
    checkpoint.pt the same file as the newest (a hard link where the file system allows, else a copy).
    """
    run_dir = Path(run_dir)
    latest = run_dir / FILENAME
    if keep <= 1:
        save_checkpoint(latest, state)
        for _, path in numbered_checkpoints(run_dir):
            path.unlink(missing_ok=True)
        return latest
    numbered = save_checkpoint(run_dir / f"checkpoint-{step:08d}.pt", state)
    tmp = run_dir / f".{FILENAME}.tmp-{os.getpid()}"
    try:
        try:
            os.link(numbered, tmp)
        except OSError:
            shutil.copyfile(numbered, tmp)
        os.replace(tmp, latest)
    finally:
        tmp.unlink(missing_ok=True)
    kept = numbered_checkpoints(run_dir)
    for _, path in kept[: max(0, len(kept) - keep)]:
        path.unlink(missing_ok=True)
    return latest


def holds_a_run(run_dir: str | os.PathLike) -> list[str]:
    """Names of the files that show ``run_dir`` already holds a run (empty: a fresh directory)."""
    run_dir = Path(run_dir)
    names = [FILENAME, METRICS]
    found = [n for n in names if (run_dir / n).exists()]
    found += [p.name for _, p in numbered_checkpoints(run_dir)]
    return found


def clear_run(run_dir: str | os.PathLike) -> None:
    """Remove what a run wrote (``--overwrite``): checkpoints, metrics, config, plots, samples, logs."""
    run_dir = Path(run_dir)
    for name in (FILENAME, METRICS, CONFIG, LOSS_PLOT):
        (run_dir / name).unlink(missing_ok=True)
    for _, path in numbered_checkpoints(run_dir):
        path.unlink(missing_ok=True)
    for name in (SAMPLES, TENSORBOARD):
        if (run_dir / name).is_dir():
            shutil.rmtree(run_dir / name)


def check_run_dir(run_dir: str | os.PathLike, *, resume: bool, overwrite: bool) -> list[str]:
    """Refuse a request that would lose or misread a run; return the run files already there.

    resume and overwrite together, resume without a checkpoint -> RunDirError; a file, or a folder
    that cannot be written -> NotADirectoryError / PermissionError; a saved model's directory ->
    DirectoryKindError (always); a new run where one exists, or over a config.json fastpixel did not
    write, without overwrite -> RunDirExistsError.
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise RunDirError(f"--resume and --overwrite contradict each other: --resume continues the run in {run_dir}, "
                          f"--overwrite deletes it and starts again; pass one of them")
    check_output_dir(run_dir, "--run-dir")
    contents = refuse_other_kind(run_dir, RUN, label="--run-dir")
    if contents.kind == FOREIGN and not overwrite:
        raise RunDirExistsError(f"{run_dir} holds a {CONFIG} that fastpixel did not write; pass --overwrite to "
                                f"replace it, or choose another --run-dir")
    existing = holds_a_run(run_dir)
    if resume and not (run_dir / FILENAME).is_file():
        raise RunDirError(f"--resume: no checkpoint at {run_dir / FILENAME} (nothing to continue; check "
                          f"--run-dir, or leave out --resume to start a new run)")
    if not resume and existing and not overwrite:
        raise RunDirExistsError(f"{run_dir} already holds a run ({', '.join(existing)}): pass --resume to "
                                f"continue it, --overwrite to start again there, or choose another --run-dir")
    return existing


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool, writes: bool,
                    say: Callable[[str], None]) -> None:
    """Check the request (:func:`check_run_dir`); where this process ``writes`` (the main one), remove
    stale temporary files, clear the old run for a fresh start (``overwrite``), create the directory."""
    existing = check_run_dir(run_dir, resume=resume, overwrite=overwrite)
    if not writes:
        return
    for path in remove_stale_temporary_files(run_dir):
        say(f"removed {path.name}, a temporary file left by a writer that was killed")
    if not resume and existing:
        clear_run(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
