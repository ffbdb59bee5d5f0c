"""bench/gpu_check.sh works on a machine it has never seen: its preflight names what is missing in
one line, it runs with nothing on PATH but the tools it declares, and its dry run
(``GPU_CHECK_DRY_RUN=1``: no CUDA) goes through every step and leaves the raw results archived.

The dry run takes about two minutes on the 2-core CI machine (each step starts Python and imports
torch; the triton steps run under the interpreter; bench.static compiles the tiny preset for sm_90).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def _declared_tools(dry: bool) -> list[str]:
    text = SCRIPT.read_text()
    tools = re.search(r'^TOOLS="\$PY ([^"]+)"', text, re.M).group(1).split()
    if not dry:
        tools += re.search(r'TOOLS="\$TOOLS ([^"]+)"', text).group(1).split()
    return tools


def _path_with_only(tmp_path: Path, tools: list[str]) -> str:
    """A PATH holding links to ``tools`` (those that exist on this machine) and nothing else."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def _env(path: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "PYTHONPATH")}
    env.update({"PATH": path, "GPU_CHECK_PYTHON": sys.executable, **extra})
    return env


def test_every_declared_tool_exists_here_or_is_reported_missing(tmp_path):
    """With everything declared on PATH the preflight passes its command checks; with git, head and
    nvidia-smi taken away, and a Python without site-packages, the one line names each of them."""
    tools = _declared_tools(dry=False)
    assert {"git", "timeout", "nvidia-smi"} <= set(tools)
    present = [t for t in tools if shutil.which(t)]
    assert set(tools) - set(present) <= {"nvidia-smi"}, "the CI machine lacks a tool gpu_check.sh declares"

    gone = {"git", "head", "nvidia-smi"}
    path = _path_with_only(tmp_path, [t for t in tools if t not in gone] + ["python3"])
    bare_python = tmp_path / "bare_python"
    bare_python.write_text(f'#!{shutil.which("bash")}\nexec {sys.executable} -S "$@"\n')
    bare_python.chmod(0o755)
    proc = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=_env(path, GPU_CHECK_PREFLIGHT_ONLY="1", GPU_CHECK_PYTHON=str(bare_python)))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("preflight:")]
    assert len(lines) == 1, proc.stdout
    line = lines[0]
    for name in ("command:git", "command:head", "command:nvidia-smi", "python:torch", "python:pytest",
                 "python:hypothesis", "python:einops", "cuda-device"):
        assert name in line, (name, line)
    assert "command:timeout" not in line and "command:bash" not in line


@pytest.mark.slow
def test_dry_run_goes_through_every_step_with_only_the_declared_tools(tmp_path):
    path = _path_with_only(tmp_path, _declared_tools(dry=True) + ["python3"])
    out = tmp_path / "check"
    proc = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=_env(path, GPU_CHECK_DRY_RUN="1"))
    log = (out / "gpu_check.log").read_text()
    summary = (out / "summary.md").read_text()
    assert "command not found" not in log, [x for x in log.splitlines() if "command not found" in x]
    assert proc.returncode == 0, summary + log[-3000:]
    assert "preflight: ok" in summary
    steps = ["env", "warm-up compile", "tests group barrier", "tests diagonal_bilstm", "tests row_lstm",
             "tests others", "compare diagonal_bilstm", "compare row_lstm", "compare pixelcnn", "roofline plot",
             "static", "dmol"]
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| ([^|]+?) \| (\S+) \|", summary, re.M)}
    for step in steps:
        assert rows.get(step) == "0", (step, rows)
    # what comes back from a device run: at most 8 files, the raw results in one archive
    files = sorted(p.name for p in out.iterdir())
    assert files == ["gpu_check.log", "results.tar.gz", "summary.md"], files
    with tarfile.open(out / "results.tar.gz") as tar:
        names = {Path(n).name for n in tar.getnames()}
    for name in ("env.txt", "nvidia_smi.txt", "warmup.json", "pytest_group_sync.xml", "pytest_diagonal_bilstm.xml",
                 "pytest_row_lstm.xml", "pytest_others.xml", "compare_diagonal_bilstm.json",
                 "roofline_diagonal_bilstm.png", "static_tiny.json"):
        assert name in names, (name, names)


def test_a_step_past_the_deadline_is_skipped_and_fails_the_run(tmp_path):
    """The one deadline covers every step: with 22 s for the whole run (15 of them kept for the archive), the preflight and the env
    step run, the rest are recorded as skipped, the archive is still written, and the exit is 1."""
    out = tmp_path / "check"
    proc = subprocess.run(["bash", str(SCRIPT), str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=_env(os.environ["PATH"], GPU_CHECK_DRY_RUN="1", GPU_CHECK_SECONDS="22"))
    summary = (out / "summary.md").read_text()
    assert proc.returncode == 1, summary
    assert "| static | skipped |" in summary, summary
    assert (out / "results.tar.gz").exists()
