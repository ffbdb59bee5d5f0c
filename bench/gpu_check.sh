#!/usr/bin/env bash
# One-shot GPU check for a lent H200 (torch 2.11, triton 3.6 already installed; nothing to install).
#
#   bash bench/gpu_check.sh OUTDIR          # from the repository root
#
# Steps, each under its own timeout, the whole run under ~7.5 minutes:
#   1. machine and versions;  2. the GPU test tier (pytest -m gpu tests);
#   3. per-kernel timing vs eager and torch.compile (bench.compare --op, sweep of sizes; tables
#      into the summary);  4. bench.compare for the three models at the paper's CIFAR-10 size.
# Writes exactly these 8 files to OUTDIR: gpu_check.log, summary.md, {pixelcnn,row_lstm,
# diagonal_bilstm}.json and .png. A step that fails or times out is recorded and the next runs;
# bench.compare saves its JSON after every case, so a timed-out model keeps what it measured.
set -u -o pipefail

OUT=${1:?usage: bash bench/gpu_check.sh OUTDIR}
mkdir -p "$OUT"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-$(command -v python || command -v python3)}
LOG="$OUT/gpu_check.log"
SUMMARY="$OUT/summary.md"
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
START=$(date +%s)
DEADLINE=$((START + 450))   # 7.5 minutes; the budget is 8

: > "$LOG"
{
  echo "# fastpixel GPU check"
  echo
  echo "started $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo
  echo "| step | exit | seconds |"
  echo "|---|---|---|"
} > "$SUMMARY"

# step NAME LIMIT_S CMD...: run CMD with output to the log, at most LIMIT_S seconds (less if the
# overall deadline is nearer), and record its exit status (124: timed out) in the summary.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((DEADLINE - $(date +%s)))
  if ((left < 10)); then
    echo "| $name | skipped (no time left) | 0 |" >> "$SUMMARY"
    return 0
  fi
  ((limit > left)) && limit=$left
  echo "=== $name (limit ${limit}s) $(date -u +%H:%M:%S) ===" >> "$LOG"
  local t0=$(date +%s) rc=0
  timeout -k 10 "$limit" "$@" >> "$LOG" 2>&1 || rc=$?
  echo "| $name | $rc | $(($(date +%s) - t0)) |" >> "$SUMMARY"
  return 0
}

step "machine" 30 bash -c "nvidia-smi; $PY -c 'import torch, triton; print(\"torch\", torch.__version__, \"triton\", triton.__version__, \"cuda\", torch.version.cuda, torch.cuda.get_device_name())'"
step "pytest -m gpu" 120 "$PY" -m pytest -m gpu tests -q -p no:cacheprovider

# Per-kernel timing vs eager and torch.compile, each op in the model it belongs to.
for pair in masked_conv:pixelcnn row_lstm:row_lstm diagonal_bilstm:diagonal_bilstm cross_entropy:pixelcnn; do
  op=${pair%%:*} model=${pair##*:}
  step "op $op" 30 "$PY" -m bench.compare --model "$model" --op "$op" --sizes 16,32 --json "$SCRATCH/op_$op.json"
done

for model in pixelcnn row_lstm diagonal_bilstm; do
  step "model $model" 60 "$PY" -m bench.compare --model "$model" --json "$OUT/$model.json" --plot "$OUT/$model.png"
done

{
  echo
  echo "finished after $(($(date +%s) - START)) s"
  echo
  echo "## per-kernel sweeps"
  echo
  "$PY" -m bench.summarize "$SCRATCH"/op_*.json
  echo "## models (CIFAR-10 size)"
  echo
  "$PY" -m bench.summarize "$OUT"/pixelcnn.json "$OUT"/row_lstm.json "$OUT"/diagonal_bilstm.json
} >> "$SUMMARY" 2>> "$LOG"
rm -f "$OUT"/*.tmp   # a JSON cut mid-write (bench.compare writes atomically via .tmp)
ls -la "$OUT" >> "$LOG"
