#!/usr/bin/env bash
# Build the wheelhouse bench/gpu_check.sh installs from on a bare GPU machine (no network there):
# the small test and bench dependencies, for the GPU machine's Python (3.12, x86-64 Linux), into the
# git-ignored folder .whl/ (about 2 MB). The device machine's image already holds every one of them
# (/work/.library/device/KINDS.md); the wheelhouse is for a machine that does not, and gpu_check
# installs from it only the modules its preflight finds missing. Carry it with the run:
#
#   bash bench/gpu_wheelhouse.sh            # here, where pip can reach an index
#   (device run, carry [".whl"])  bash bench/gpu_check.sh $OUT/check
#
# torch, triton and numpy are not in it: the GPU machine's own builds are the ones under test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION=${GPU_PYTHON_VERSION:-3.12}
DEST=.whl
mkdir -p "$DEST"
# pytest and its needs, hypothesis and its needs, the package's small runtime needs
PACKAGES=(pytest pluggy iniconfig packaging hypothesis sortedcontainers attrs einops tqdm)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$DEST" "${PACKAGES[@]}"
du -sh "$DEST"
ls "$DEST"
