"""Packaging metadata: declared dependencies, the licence file, one version, the shipped model in the wheel."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.test_packaging import copy_source

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def source_version() -> str:
    tree = ast.parse((REPO / "fastpixel" / "_version.py").read_text())
    (value,) = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "__version__" for t in node.targets)]
    return value


def test_pyproject_declares_what_fastpixel_imports():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {dep.split(">")[0].split("<")[0].split("=")[0].split(";")[0].strip().lower() for dep in project["dependencies"]}
    assert {"torch", "numpy", "pillow", "safetensors"} <= names
    assert "version" not in project and project["dynamic"] == ["version"]  # one source: fastpixel/_version.py
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert project["optional-dependencies"]["hub"][0].startswith("huggingface_hub")
    assert "Apache License" in (REPO / "LICENSE").read_text()[:200]


def test_wheel_metadata(tmp_path):
    source = copy_source(tmp_path / "src")
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, source],
                   check=True, capture_output=True)
    (wheel,) = dist.glob("fastpixel-*.whl")
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    metadata = archive.read(metadata_name).decode()
    assert f"Version: {source_version()}\n" in metadata
    assert "License-Expression: Apache-2.0" in metadata
    for requirement in ("pillow>=9.1", "safetensors>=0.4"):
        assert f"Requires-Dist: {requirement}" in metadata
    assert "Provides-Extra: hub" in metadata
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "fastpixel/persistence.py" in names
    shipped = REPO / "fastpixel" / "pretrained"
    for name in sorted(p.name for p in shipped.iterdir() if p.is_dir()) if shipped.is_dir() else []:
        assert f"fastpixel/pretrained/{name}/config.json" in names
        assert f"fastpixel/pretrained/{name}/model.safetensors" in names


def test_every_fastpixel_package_is_listed_for_installation():
    """pyproject lists packages explicitly (kernels/ is mapped in): a new subpackage must be listed,
    or installs lack it (fastpixel.fast was once missing from wheels while the source tree worked)."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    root = REPO / "fastpixel"
    found = {
        ".".join(("fastpixel", *init.parent.relative_to(root).parts)).rstrip(".")
        for init in root.rglob("__init__.py")
        if "kernels" not in init.relative_to(root).parts  # the symlink to ../kernels, listed as fastpixel.kernels
    }
    assert found <= listed, sorted(found - listed)
    assert "fastpixel.kernels" in listed
