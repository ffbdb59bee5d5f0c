"""fastpixel.atomic.write_atomically: files and folders, the old one kept on failure, overwrite=False."""

from __future__ import annotations

import os

import pytest

from fastpixel import atomic
from fastpixel.atomic import write_atomically, write_bytes_atomically
from fastpixel.output_paths import OutputExistsError


def fill_folder(names):
    def write(tmp):
        tmp.mkdir()
        for name in names:
            (tmp / name).write_text(name)

    return write


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_folder_replaces_a_folder(tmp_path):
    out = tmp_path / "out"
    write_atomically(out, fill_folder(["a", "b"]))
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]
    write_atomically(out, fill_folder(["c"]))
    assert [p.name for p in out.iterdir()] == ["c"]
    assert leftovers(tmp_path) == []


def test_a_failed_folder_write_keeps_the_old_folder_and_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    write_atomically(out, fill_folder(["a"]))

    def broken(tmp):
        fill_folder(["b"])(tmp)
        raise RuntimeError("half-way")

    with pytest.raises(RuntimeError):
        write_atomically(out, broken)
    assert [p.name for p in out.iterdir()] == ["a"]
    assert leftovers(tmp_path) == []


def test_a_failed_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_atomically(out, fill_folder(["a"]))

    def no_replace(src, dst):
        raise OSError("rename refused")

    monkeypatch.setattr(atomic.os, "replace", no_replace)
    with pytest.raises(OSError, match="rename refused"):
        write_atomically(out, fill_folder(["b"]))
    monkeypatch.undo()
    assert [p.name for p in out.iterdir()] == ["a"]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_overwrite_false_never_replaces_what_is_there(tmp_path, kind):
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("keep")
    else:
        out.mkdir()
        (out / "mine.txt").write_text("keep")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_bytes_atomically(out, b"new", overwrite=False)
    with pytest.raises(OutputExistsError):
        write_atomically(out, fill_folder(["a"]), overwrite=False)
    assert (out.read_text() if kind == "file" else (out / "mine.txt").read_text()) == "keep"
    assert leftovers(tmp_path) == []
    write_bytes_atomically(tmp_path / "new", b"new", overwrite=False)  # a path that is not there is written
    assert (tmp_path / "new").read_bytes() == b"new"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc/self/fd")
def test_every_file_of_a_folder_is_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd))
    write_atomically(tmp_path / "out", fill_folder(["a", "b"]))
    names = [os.path.basename(p) for p in synced]
    assert "a" in names and "b" in names
