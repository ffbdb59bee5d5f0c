"""Make ``fastpixel.kernels`` importable when fastpixel runs from a source checkout.

An installed fastpixel (wheel or editable) has ``fastpixel.kernels`` mapped by setuptools. Python
prefers the current directory, though: run from the repository root, ``import fastpixel`` finds
``./fastpixel``, which has no ``kernels`` inside -- the kernels sit beside it in ``./kernels``. This
finder maps exactly ``fastpixel.kernels`` (and its submodules) to that folder, and nothing else;
it is installed only when ``fastpixel/`` has no ``kernels`` of its own.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

PACKAGE = "fastpixel.kernels"


class _KernelsFinder(importlib.abc.MetaPathFinder):
    def __init__(self, folder: str) -> None:
        self.folder = folder

    def find_spec(self, fullname, path=None, target=None):
        if fullname != PACKAGE:
            return None  # submodules are found through the package's __path__ = [folder]
        init = os.path.join(self.folder, "__init__.py")
        return importlib.util.spec_from_file_location(PACKAGE, init, submodule_search_locations=[self.folder])


def install(package_dir: str) -> None:
    """Map ``fastpixel.kernels`` to ``<package_dir>/../kernels`` when that is where it lives."""
    if os.path.isdir(os.path.join(package_dir, "kernels")):
        return
    folder = os.path.join(os.path.dirname(package_dir), "kernels")
    if not os.path.isfile(os.path.join(folder, "__init__.py")):
        return
    if any(isinstance(f, _KernelsFinder) for f in sys.meta_path):
        return
    sys.meta_path.append(_KernelsFinder(folder))
