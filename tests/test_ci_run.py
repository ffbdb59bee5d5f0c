""".ci/run's exit status: either job's failure fails CI, pytest's exit 5 (nothing collected) does not.

The jobs themselves install venvs and run the suites (minutes); here only their status handling is
run, with the script's own ``run_pytest`` and final lines and stand-in venvs whose "python" exits
with a chosen status."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = (ROOT / ".ci" / "run").read_text()


def _ci_status(tmp_path: Path, main: int, triton36: int) -> int:
    function = re.search(r"^run_pytest\(\) \{\n.*?^\}\n", SCRIPT, re.M | re.S).group(0)
    tail = SCRIPT[SCRIPT.index('echo "CI: main exit'):]
    for name, status in (("main", main), ("t36", triton36)):
        bin_dir = tmp_path / name / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "python").write_text(f"#!/usr/bin/env bash\nexit {status}\n")
        (bin_dir / "python").chmod(0o755)
    body = "\n".join([
        "set -euo pipefail", function,
        f"main=0\nrun_pytest {tmp_path / 'main'} -q || main=$?",
        f"triton36=0\nrun_pytest {tmp_path / 't36'} -q tests/kernels || triton36=$?",
        tail,
    ])
    return subprocess.run(["bash", "-c", body], capture_output=True, text=True, timeout=60).returncode


@pytest.mark.parametrize("main,triton36,expected", [
    (0, 0, 0),
    (5, 5, 0),  # nothing collected in either tier: not a failure
    (0, 1, 1),  # the triton 3.6 parity tier failing fails CI
    (1, 0, 1),
    (2, 5, 2),  # a collection error in the main job
    (5, 1, 1),
])
def test_either_job_failing_fails_ci_and_exit_5_does_not(tmp_path, main, triton36, expected):
    assert _ci_status(tmp_path, main, triton36) == expected


def test_the_triton36_job_pins_the_gpu_machines_triton_and_a_numpy_its_interpreter_takes():
    assert '"triton==3.6.0"' in SCRIPT and '"numpy<2.4"' in SCRIPT
    assert "tests/kernels" in SCRIPT
