#!/usr/bin/env bash
# The prepared accelerator run of issue 29 (about 8 minutes on one H100 / H200), two parts at once:
#  1. latent-study rows on scenes3d 32x32, 16 bins, seed 0, STEPS steps (default 6,000, six times
#     the CPU budget), scored by the standard DCI protocol: the default, the flattened encoder
#     head, cross-attention with the flattened head, beta-VAE and beta-TCVAE;
#  2. item 6: the flattened head on scenes3d 64x64 with 256 bins for as many steps as fit in
#     CURVE_S seconds, quick DCI every 1,000 steps (experiments/disentangle_curve.py).
#
#   bash experiments/gpu_disentangle.sh [OUT_DIR]     # default experiments/results/gpu_disentangle
#   GPU_DRY=1 bash experiments/gpu_disentangle.sh     # the same steps on CPU, a few steps each
#
# PYTHON (default .venv/bin/python) must import the package; the results of both parts are
# packed into OUT_DIR/results.tar.gz (study JSON/markdown, the curve, every log).
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${1:-experiments/results/gpu_disentangle}
STEPS=${STEPS:-6000}
ROW_S=${ROW_S:-420}
CURVE_S=${CURVE_S:-400}
ROWS=${ROWS:-"paramrel pool_flatten xattn_flatten beta_vae beta_tcvae"}
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
work=$(mktemp -d)
mkdir -p "$OUT" "$work/res" "$work/logs"

study=(--datasets scenes3d --seeds 0 --dci_protocol standard --dci_jobs 6 --curve_every 1000)
curve=(--row pool_flatten --image_size 64 --num_bins 256 --steps 200000 --every 1000)
if [[ "${GPU_DRY:-0}" == "1" ]]; then
  STEPS=20; study=(--datasets scenes3d --seeds 0 --dci_jobs 2 --curve_every 10)
  curve=(--row pool_flatten --image_size 32 --num_bins 16 --steps 30 --every 10
         --num_examples 200)
fi

"$PYTHON" -c "import jax; print('jax', jax.__version__, jax.devices())" || exit 1
"$PYTHON" -c "import experiments.latent_study, experiments.disentangle_curve" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
  > "$work/logs/gpu.txt" 2>&1

start=$SECONDS
for row in $ROWS; do
  timeout "$ROW_S" "$PYTHON" -m experiments.latent_study "${study[@]}" --rows "$row" \
    --steps "$STEPS" --workdir "$work/runs" --out "$work/res/$row" > "$work/logs/$row.log" 2>&1 &
done
timeout "$CURVE_S" "$PYTHON" -m experiments.disentangle_curve "${curve[@]}" --dci_jobs 4 \
  --workdir "$work/curve" > "$work/logs/curve.log" 2>&1 &
wait
echo "all parts ended after $((SECONDS - start)) s"
"$PYTHON" -m experiments.disentangle_curve --workdir "$work/curve" --report \
  --out "$work/res/curve" >> "$work/logs/curve.log" 2>&1
cp "$work/curve/metrics.jsonl" "$work/res/curve/" 2>/dev/null
for row in $ROWS; do
  echo "== $row"; grep -h "scenes3d $row seed" "$work/logs/$row.log" || tail -3 "$work/logs/$row.log"
done
cat "$work/res/curve/disentangle_curve.md" 2>/dev/null
tar czf "$OUT/results.tar.gz" -C "$work" res logs
