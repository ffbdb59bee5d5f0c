#!/usr/bin/env bash
# One-shot GPU check for a lent H100/H200 (torch 2.11 + triton 3.6 + python3 3.12 there; nothing of
# ours installed, no network). From the repository root of a clean clone:
#
#   bash bench/gpu_check.sh OUTDIR                       # on the GPU machine
#   GPU_CHECK_DRY_RUN=1 bash bench/gpu_check.sh OUTDIR   # anywhere without CUDA: every step, cheaply
#
# One deadline covers everything (GPU_CHECK_SECONDS, default 480: 8 of a session's 15 device
# minutes, leaving room for the machine's start and a short rerun; the archive is made inside it).
# Each step runs under `timeout -s INT` (pytest then still writes its junit file) for its own limit
# or what is left before the deadline, whichever is less. Steps, in the
# order docs/benchmarks.md ("The first GPU run") gives, each with its expectation written there:
#   0. preflight: one line naming whatever is missing (commands, Python modules, CUDA, triton's
#      sm_90 toolchain); Python modules missing here are installed from a carried wheelhouse
#      (.whl/, built by bench/gpu_wheelhouse.sh) into /tmp/site when there is one
#   1. env: versions, device, commit; nvidia-smi                         -> env.txt, nvidia_smi.txt
#   2. compile warm-up (bench.gpu_warmup): every kernel once, so that
#      later limits time runs, not compiles                               -> warmup.json
#   3. correctness, the group barrier first (bounded wait, trap), then
#      the scans, then every other op (pytest -m gpu, junit per step)     -> pytest_<step>.xml
#      A scan step that times out (124) is taken for a hung group
#      barrier: the steps after it run with FASTPIXEL_SCAN_GROUPS=0.
#   4. bench.compare at the CIFAR preset, eager / compile / triton timed  -> compare_<model>.json
#   5. the roofline plot of those runs                                    -> roofline_<model>.png
#   6. bench.static under this triton (compile report, sm_90)             -> static_cifar.json
#   7. bench.dmol: the DMoL likelihood per backend, if time is left        -> dmol.json
# OUTDIR then holds at most 8 files (what the device tool brings back): summary.md, gpu_check.log,
# and results.tar.gz with every raw file above (raw/ stays instead if the archive fails).
# Exit status 0 when every step passed, else 1. The device tool: run it with timeout_s about 540,
# carrying .whl only where the preflight would miss modules (docs/benchmarks.md, "GPU check").
set -u -o pipefail

OUT=${1:?usage: bash bench/gpu_check.sh OUTDIR}
mkdir -p "$OUT"
RAW="$OUT/raw"
mkdir -p "$RAW"
OUT=$(cd "$OUT" && pwd -P)
RAW="$OUT/raw"
DRY=${GPU_CHECK_DRY_RUN:-0}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export TRITON_DEFAULT_FP_FUSION=1
PY=${GPU_CHECK_PYTHON:-python3}
LOG="$OUT/gpu_check.log"
SUMMARY="$OUT/summary.md"
START=$(date +%s)
DEADLINE=$((START + ${GPU_CHECK_SECONDS:-480}))
RESERVE=15  # seconds kept back at the end for the summary and the archive
FAILED=0

if [ "$DRY" = 1 ]; then
  export TRITON_INTERPRET=1 CUDA_VISIBLE_DEVICES=""
fi

: > "$LOG"
{
  echo "# fastpixel GPU check$([ "$DRY" = 1 ] && echo ' (DRY RUN: no CUDA, nothing timed on a GPU)')"
  echo
  echo "started $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo
  echo "| step | exit | seconds | note |"
  echo "|---|---|---|---|"
} > "$SUMMARY"

# step NAME LIMIT_S CMD...: run CMD (output to the log) for at most LIMIT_S seconds, or what is left
# before the deadline (less the reserve); record its exit status (124: timed out) and duration.
LAST_RC=0
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((DEADLINE - RESERVE - $(date +%s)))
  if ((left < 5)); then
    echo "| $name | skipped | 0 | no time left before the deadline |" >> "$SUMMARY"
    LAST_RC=124
    FAILED=1
    return 0
  fi
  ((limit > left)) && limit=$left
  echo "=== $name (limit ${limit}s) $(date -u +%H:%M:%S) ===" >> "$LOG"
  local t0 rc=0 note=""
  t0=$(date +%s)
  timeout -s INT -k 10 "$limit" "$@" >> "$LOG" 2>&1 || rc=$?
  case $rc in
    0) ;;
    5) note="nothing collected"; rc=0 ;;
    124|137) note="timed out after ${limit}s" ;;
    2) note="interrupted or a collection error (see the log)" ;;
    *) note="failed" ;;
  esac
  ((rc != 0)) && FAILED=1
  echo "| $name | $rc | $(($(date +%s) - t0)) | $note |" >> "$SUMMARY"
  LAST_RC=$rc
  return 0
}

# -- 0. preflight --------------------------------------------------------------------------------
# Python modules the steps import; a wheelhouse carried in .whl/ fills the gaps (bench/gpu_wheelhouse.sh)
MODULES="torch triton numpy pytest hypothesis einops tqdm PIL safetensors matplotlib"
# every command this script runs (tests/test_bench_gpu_check.py runs the dry run with only these on
# PATH, so a command used here but missing from the list fails that test)
TOOLS="$PY bash git timeout date mkdir rm ls tee cat head"
[ "$DRY" = 1 ] || TOOLS="$TOOLS nvidia-smi"
missing_modules() {
  "$PY" - "$MODULES" <<'PYEOF' 2>/dev/null || echo "$MODULES"
import importlib.util, sys
print(" ".join(m for m in sys.argv[1].split() if importlib.util.find_spec(m) is None))
PYEOF
}
preflight() {
  local missing=() tool
  for tool in $TOOLS; do
    command -v "$tool" > /dev/null 2>&1 || missing+=("command:$tool")
  done
  if command -v "$PY" > /dev/null 2>&1; then
    local mods
    mods=$(missing_modules)
    if [ -n "$mods" ] && [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then
      "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >> "$LOG" 2>&1 \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
      mods=$(missing_modules)
    fi
    for tool in $mods; do missing+=("python:$tool"); done
    if [ "$DRY" != 1 ]; then
      "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' > /dev/null 2>&1 || missing+=("cuda-device")
    fi
    "$PY" -c 'import os, sys; from triton import knobs; sys.exit(0 if os.path.exists(knobs.nvidia.ptxas.path) and os.path.exists(knobs.nvidia.cuobjdump.path) else 1)' \
      > /dev/null 2>&1 || missing+=("triton-sm90-toolchain")
  fi
  if ((${#missing[@]})); then
    echo "preflight: MISSING ${missing[*]}"
  else
    echo "preflight: ok"
  fi
}
PREFLIGHT=$(preflight)
echo "$PREFLIGHT" | tee -a "$LOG"
echo "| preflight | - | 0 | $PREFLIGHT |" >> "$SUMMARY"
if [ "${GPU_CHECK_PREFLIGHT_ONLY:-0}" = 1 ]; then
  [[ $PREFLIGHT == *MISSING* ]] && exit 1
  exit 0
fi
case $PREFLIGHT in *MISSING*python:pytest*|*MISSING*command:$PY*) FATAL=1 ;; *) FATAL=0 ;; esac
case $PREFLIGHT in *cuda-device*) FATAL=1 ;; esac
[[ $PREFLIGHT == *MISSING* ]] && FAILED=1

# -- 1. env --------------------------------------------------------------------------------------
step "env" 30 bash -c "
  { date -u +%Y-%m-%dT%H:%M:%SZ; git rev-parse HEAD 2>/dev/null; git status --short 2>/dev/null | head -20;
    echo '$PREFLIGHT'; echo 'dry run: $DRY';
    $PY -c 'import sys, torch, triton, numpy; print(\"python\", sys.version.split()[0]); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda); print(\"triton\", triton.__version__, \"numpy\", numpy.__version__); print(\"device\", torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"none\")';
  } > '$RAW/env.txt' 2>&1
  if command -v nvidia-smi > /dev/null; then nvidia-smi > '$RAW/nvidia_smi.txt' 2>&1;
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,mig.mode.current --format=csv >> '$RAW/nvidia_smi.txt' 2>&1;
  else echo 'nvidia-smi: not found' > '$RAW/nvidia_smi.txt'; fi
  cat '$RAW/env.txt' '$RAW/nvidia_smi.txt'; test -s '$RAW/env.txt'"

if ((FATAL)); then
  echo "| (preflight: cannot run the remaining steps) | - | - | - |" >> "$SUMMARY"
else
  # -- 2. compile warm-up ------------------------------------------------------------------------
  if [ "$DRY" = 1 ]; then
    step "warm-up compile" 120 "$PY" -m bench.gpu_warmup --dry-run --json "$RAW/warmup.json"
  else
    step "warm-up compile" 180 "$PY" -m bench.gpu_warmup --seconds 150 --json "$RAW/warmup.json"
  fi

  # -- 3. correctness: the group barrier first, then the scans, then the rest ----------------------
  # pin_autotune: every autotuned kernel runs its first config only in tests. Dry run: the GPU tier
  # is collected (it skips itself without CUDA), so each step runs its real command cheaply.
  PYTEST=("$PY" -m pytest -q -p no:cacheprovider -p bench.pin_autotune -m gpu)
  [ "$DRY" = 1 ] && PYTEST+=(--collect-only)
  HUNG=0
  step "tests group barrier" 60 "${PYTEST[@]}" tests/kernels/test_group_sync.py --junitxml="$RAW/pytest_group_sync.xml"
  ((LAST_RC == 124 || LAST_RC == 137)) && HUNG=1
  for scan in diagonal_bilstm row_lstm; do
    step "tests $scan" 75 "${PYTEST[@]}" "tests/kernels/test_$scan.py" --junitxml="$RAW/pytest_$scan.xml"
    ((LAST_RC == 124 || LAST_RC == 137)) && HUNG=1
  done
  if ((HUNG)); then
    # a barrier step timed out although the wait traps after 2 s: run what follows without groups
    export FASTPIXEL_SCAN_GROUPS=0
    echo "| (a scan step timed out: FASTPIXEL_SCAN_GROUPS=0 for the steps below) | - | - | - |" >> "$SUMMARY"
  fi
  step "tests others" 90 "${PYTEST[@]}" tests --junitxml="$RAW/pytest_others.xml" \
    --deselect tests/kernels/test_group_sync.py --deselect tests/kernels/test_diagonal_bilstm.py \
    --deselect tests/kernels/test_row_lstm.py

  # -- 4. bench.compare at the CIFAR preset: eager, compile, triton ------------------------------
  for model in diagonal_bilstm row_lstm pixelcnn; do
    if [ "$DRY" = 1 ]; then
      step "compare $model" 60 "$PY" -m bench.compare --model "$model" --preset tiny --backends eager,triton \
        --json "$RAW/compare_$model.json"
    else
      step "compare $model" 70 "$PY" -m bench.compare --model "$model" --preset cifar --backends eager,compile,triton \
        --json "$RAW/compare_$model.json"
    fi
  done

  # -- 5. the roofline plot ------------------------------------------------------------------------
  step "roofline plot" 30 "$PY" -c "
import glob, json, os, sys
from bench.plot import roofline_png
files = sorted(glob.glob(os.path.join(sys.argv[1], 'compare_*.json')))
for f in files:
    n = roofline_png(json.load(open(f)), f.replace('compare_', 'roofline_').replace('.json', '.png'))
    print(f, n, 'points')
sys.exit(0 if files else 1)" "$RAW"

  # -- 6. the compile report under this triton -----------------------------------------------------
  if [ "$DRY" = 1 ]; then
    step "static" 120 "$PY" -m bench.static --preset tiny --others --json "$RAW/static_tiny.json"
  else
    step "static" 90 "$PY" -m bench.static --preset cifar --others --json "$RAW/static_cifar.json"
  fi

  # -- 7. the DMoL likelihood alone: reference, torch, triton (if time is left) ---------------------
  if [ "$DRY" = 1 ]; then
    step "dmol" 60 "$PY" -m bench.dmol --batch 2 --size 4 --reps 2 --warmup 1 --no-memory --json "$RAW/dmol.json"
  else
    step "dmol" 45 "$PY" -m bench.dmol --reps 20 --no-memory --json "$RAW/dmol.json"
  fi
fi

# -- summary and archive (inside the deadline: RESERVE seconds were kept for it) ---------------------
{
  echo
  echo "finished after $(($(date +%s) - START)) s (deadline ${GPU_CHECK_SECONDS:-480} s); failed steps: $FAILED"
  echo
  echo "## results"
  echo
  for f in "$RAW"/compare_*.json; do
    [ -e "$f" ] && timeout -s INT 5 "$PY" -m bench.summarize "$f"
  done
} >> "$SUMMARY" 2>> "$LOG"
rm -f "$RAW"/*.tmp  # a JSON cut mid-write (bench.compare writes atomically via .tmp)
ls -la "$RAW" >> "$LOG"
# Python's tarfile rather than tar -z: one tool fewer on a bare machine (tar would need gzip too)
timeout -s INT 10 "$PY" -c "import sys, tarfile; t = tarfile.open(sys.argv[1], 'w:gz'); t.add(sys.argv[2], 'raw'); t.close()" \
  "$OUT/results.tar.gz" "$RAW" >> "$LOG" 2>&1 && rm -rf "$RAW"
exit "$FAILED"
