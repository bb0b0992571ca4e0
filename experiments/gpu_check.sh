#!/usr/bin/env bash
# The prepared accelerator run (about 7 minutes on one H100 / H200): train-step throughput, MFU
# and peak memory of the paper bMNIST and CelebA 64 networks in float32 and bfloat16, 1,000-step
# sampling of 64 images with the sampler's per-step cost, and the input-pipeline benchmark.
#
#   bash experiments/gpu_check.sh [OUT_DIR]        # default experiments/results/gpu_check
#   GPU_CHECK_DRY=1 bash experiments/gpu_check.sh  # the same steps on CPU with :smoke configs
#
# PYTHON (default .venv/bin/python) must have a CUDA-enabled jax of the locked version; without a
# GPU the script stops, unless GPU_CHECK_DRY=1. Each step has its own time limit (STEP_LIMIT_S,
# default 150 s), and a step that fails or runs out is reported and skipped, so one bad step does
# not cost the others. The JSON of every step and summary.md land in OUT_DIR.
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${1:-experiments/results/gpu_check}
LIMIT=${STEP_LIMIT_S:-150}
DRY=${GPU_CHECK_DRY:-0}
mkdir -p "$OUT"

platform=$("$PYTHON" -c "import jax; print(jax.devices()[0].platform)") || exit 1
if [[ "$platform" != "gpu" && "$DRY" != "1" ]]; then
  echo "error: jax sees no GPU (platform '$platform'); install jax with CUDA support, or set" \
    "GPU_CHECK_DRY=1 for a dry run on this machine." >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" \
  2>/dev/null || echo "no nvidia-smi" > "$OUT/gpu.txt"

if [[ "$DRY" == "1" ]]; then
  suffix=":smoke"; steps=(--repeats=1 --warmup=1 --steps_per_repeat=1 --check_steps=1)
  sample=(--sample_steps=10 --sample_batch=8); workers=(0 1); batches=3
else
  suffix=""; steps=(--repeats=5 --warmup=5 --steps_per_repeat=20 --check_steps=1)
  sample=(--sample_steps=1000 --sample_repeats=1 --sample_batch=64); workers=(0 1 2 4 8 15)
  batches=50
fi

failed=0
run() {  # run NAME COMMAND...: one step under the time limit; a failure is reported, not fatal
  local name=$1; shift
  local start=$SECONDS
  if timeout "$LIMIT" "$@" > "$OUT/$name.log" 2>&1; then
    echo "ok      $name ($((SECONDS - start)) s)"
  else
    echo "FAILED  $name (exit $?, $((SECONDS - start)) s; see $OUT/$name.log)"; failed=1
  fi
}

for config in bmnist celeba; do
  for dtype in float32 bfloat16; do
    extra=(--sample_steps=)  # sampling once per network, in bfloat16
    if [[ "$dtype" == "bfloat16" ]]; then extra=("${sample[@]}" --sampler_cost); fi
    run "${config}_${dtype}" "$PYTHON" -m experiments.benchmark \
      "--config=configs/${config}.py${suffix}" "--config.model.dtype=$dtype" "${steps[@]}" \
      "${extra[@]}" "--out=$OUT/${config}_${dtype}.json"
  done
done
run pipeline "$PYTHON" -m experiments.pipeline_benchmark --workers "${workers[@]}" \
  --num_batches "$batches" --out "$OUT/pipeline.json" \
  --cases "bmnist (TFDS mock)" "celeba (TFDS mock)" "cifar10 (TFDS mock)"

"$PYTHON" - "$OUT" > "$OUT/summary.md" <<'EOF'
import glob, json, os, sys
from experiments import pipeline_benchmark
from paramrel_jax.perf import benchmark
out = sys.argv[1]
print("# gpu_check:", open(os.path.join(out, "gpu.txt")).read().strip())
for path in sorted(glob.glob(os.path.join(out, "*_*.json"))):
  print(f"\n## {os.path.basename(path)}\n```\n{benchmark.format_table(json.load(open(path)))}\n```")
pipeline = os.path.join(out, "pipeline.json")
if os.path.exists(pipeline):
  print("\n## input pipeline (images/s, time to the first batch)\n")
  print(pipeline_benchmark.table(json.load(open(pipeline))))
EOF
cat "$OUT/summary.md"
exit $failed
