#!/usr/bin/env bash
# Issue 4's GPU benchmark, prepared to run in one go on the GPU machine (../shared/guides/gpu.md):
#   here:  npm ci && npm run build && ../shared/tools/gpu-pack.sh
#   there: source .gpu/setup.sh && bash bench/gpu.sh        (figures under $OUT)
# It makes a synthetic run (16 checkpoints x 1 GiB float32), scores it with sweep-window's
# evaluator (mixture and materialize, on webgpu and cpu), runs the user-facing CLI once with
# --device auto, merges the run, and times one merge chunk's weighted sum in JS and on each EP.
# Every step has a time limit and the most wanted figures come first: a command on the GPU machine
# is killed after 10 minutes, and what is under $OUT by then still comes back.
# AVG_GPU_SMALL=1 shrinks it to seconds, to check the script on a CPU machine (with lavapipe:
# eval "$(bash scripts/setup-lavapipe.sh)" first).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out/gpu}
WORK=${AVG_GPU_WORK:-/tmp/avg-ckpt-gpu}
mkdir -p "$OUT"
if [ -n "${AVG_GPU_SMALL:-}" ]; then
  export AVG_GPU_CKPTS=4 AVG_GPU_WIDTH=256 AVG_GPU_LAYERS=4 AVG_GPU_ROWS=64 AVG_WSUM_ELEMENTS=65536
fi
log="$OUT/gpu.log"
: > "$log"

# step NAME LIMIT_S COMMAND...: runs it, logs its wall time, and goes on when it fails
step() {
  local name=$1 limit=$2 t0=$SECONDS rc
  shift 2
  timeout "$limit" "$@" >> "$log" 2>&1
  rc=$?
  echo "[$name] exit $rc, $((SECONDS - t0)) s" | tee -a "$log" >> "$OUT/steps.txt"
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  echo "cpus $(nproc), node $(node --version), VK_DRIVER_FILES=${VK_DRIVER_FILES:-${VK_ICD_FILENAMES:-unset}}"
} > "$OUT/machine.txt"
: > "$OUT/steps.txt"

rm -rf "$WORK" && mkdir -p "$WORK"
step make-run 240 node bench/gpu-run.js "$WORK"

for cfg in "webgpu mixture" "cpu mixture" "webgpu materialize" "cpu materialize"; do
  set -- $cfg
  # materialize reads all 16 GiB per candidate: three candidates give its per-candidate time
  [ "$2" = materialize ] && n=3 || n=99
  AVG_GPU_CANDIDATES=$n step "sweep $1 $2" 150 node bench/gpu-sweep.js run "$WORK" "$1" "$2" "$OUT/sweep-$1-$2.json"
done
node bench/gpu-sweep.js summary "$OUT" > "$OUT/sweep.md" 2>> "$log"

# what a user sees: which device --device auto took, and why
step cli-auto 120 node bin/avg-ckpt.js sweep-window "$WORK/run" --onnx "$WORK/model.onnx" --data "$WORK" \
  --windows 2,4 --device auto --report "$OUT/cli-report.json"

step merge 120 node bin/avg-ckpt.js merge "$WORK/run" --method uniform -o "$WORK/merged.safetensors" --force --quiet
AVG_WSUM_OUT="$OUT/wsum.json" step wsum 120 node bench/gpu-wsum.js

rm -rf "$WORK"
cat "$OUT/machine.txt" "$OUT/steps.txt" "$OUT/sweep.md" "$OUT/wsum.json"
