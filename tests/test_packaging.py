"""Packaging: `kernels/` installs as `fastpixel.kernels`, never as a top-level `kernels` (nor `bench`).

Checked for a wheel and for an editable install, each imported from the repository root and from
another directory, in fresh virtual environments that see this environment's torch but not its own
fastpixel install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = (
    "import os, sys, importlib.util, fastpixel, fastpixel.kernels, fastpixel.kernels.masked_conv;"
    "print('KERNELS', os.path.realpath(fastpixel.kernels.__file__));"
    "print('HOOKS', sum(type(f).__module__.startswith('fastpixel') for f in sys.meta_path));"
    "print('TOPLEVEL', importlib.util.find_spec('kernels'), importlib.util.find_spec('bench'))"
)

pytestmark = pytest.mark.slow


def copy_source(dst: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", ".venv*", "__pycache__", "runs", ".pytest_cache")
    shutil.copytree(REPO, dst, ignore=ignore, symlinks=True)  # keep fastpixel/kernels a link
    return dst


def make_venv(path: Path) -> Path:
    """A bare venv that also sees this interpreter's site-packages (torch, pip, setuptools) through a
    .pth file. A .pth *path* entry does not run that folder's own .pth hooks, so the outer
    environment's editable fastpixel finder stays out; pip run in the venv installs into the venv.
    """
    venv.EnvBuilder(with_pip=False).create(path)
    python = path / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (Path(site) / "outer_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def probe(python: Path, cwd: Path) -> dict[str, str]:
    out = subprocess.run([python, "-c", PROBE], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return copy_source(tmp_path_factory.mktemp("src") / "fastpixel-src")


def test_wheel_maps_kernels_under_fastpixel(source, tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, source],
        check=True, capture_output=True,
    )
    (wheel,) = dist.glob("fastpixel-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert "fastpixel/kernels/__init__.py" in names
    assert "fastpixel/kernels/masked_conv.py" in names
    assert "fastpixel/data/builtin_mnist.npz" in names
    assert not tops & {"kernels", "bench", "tests"}, tops

    python = make_venv(tmp_path / "venv")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], check=True, capture_output=True)
    elsewhere = probe(python, tmp_path)
    assert "site-packages/fastpixel/kernels/__init__.py" in elsewhere["KERNELS"]
    assert elsewhere["TOPLEVEL"] == "None None"
    at_root = probe(python, source)  # the source tree shadows the wheel here; kernels still resolve
    assert at_root["KERNELS"] == str(source / "kernels" / "__init__.py")
    assert elsewhere["HOOKS"] == at_root["HOOKS"] == "0"  # no import hook of fastpixel's own


def test_editable_install_maps_kernels_under_fastpixel(source, tmp_path):
    python = make_venv(tmp_path / "venv")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", source],
        check=True, capture_output=True, env={**os.environ, "PIP_NO_INDEX": "1"},
    )
    for cwd in (tmp_path, source):
        found = probe(python, cwd)
        assert found["KERNELS"] == str(source / "kernels" / "__init__.py")
        assert found["HOOKS"] == "0"
    assert probe(python, tmp_path)["TOPLEVEL"] == "None None"
