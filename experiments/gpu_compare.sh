#!/usr/bin/env bash
# The head x norm comparison past the plateau (docs/training-recipe.md), one GPU session of
# about 8 minutes: four runs of configs/compare-heads.yaml side by side on one GPU, each with up
# to 12 epochs (1260 optimizer steps of batch 4) and the same 400-second limit, then each
# evaluated on the cache's test scans in canonical and random poses. Needs the prepared cache
# under .gpu-data/compare/ (command in configs/compare-heads.yaml) and python3 with a CUDA torch,
# e3nn, scipy, yaml, tqdm, matplotlib. Results go to $OUT (default gpu-compare/).
set -u
OUT=${OUT:-gpu-compare}
mkdir -p "$OUT"
source benchmarks/gpu_env.sh
export OMP_NUM_THREADS=4  # four processes share the CPU cores that build hierarchies
COMPARE=$(ls -d .gpu-data/compare/mixed-*)
VARIANTS="invariant-bias invariant-rms offset-bias offset-rms"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/log.txt"
start=$(date +%s)
for variant in $VARIANTS; do
    python3 -m se3unet.cli train --config configs/compare-heads.yaml --quiet \
        --set data.cache="$COMPARE" run.output=/tmp/compare-$variant run.device=cuda \
        model.head=${variant%-*} model.norm=${variant#*-} model.recompute=false optim.epochs=12 \
        run.time_limit=400 > /tmp/compare-$variant.log 2>&1 &
done
wait
echo "trained after $(( $(date +%s) - start )) s" | tee -a "$OUT/log.txt"
for variant in $VARIANTS; do
    python3 -m se3unet.cli evaluate --checkpoint /tmp/compare-$variant/best.pt --cache "$COMPARE" --quiet \
        --output /tmp/eval-$variant --preprocessing none raw --perturbations both --baseline --device cuda \
        > /tmp/eval-$variant.log 2>&1 &
done
wait
echo "evaluated after $(( $(date +%s) - start )) s" | tee -a "$OUT/log.txt"
for variant in $VARIANTS; do
    tail -3 /tmp/compare-$variant.log /tmp/eval-$variant.log >> "$OUT/log.txt"
    mkdir -p "$OUT/$variant"
    cp /tmp/compare-$variant/{epochs.csv,steps.csv,summary.json} "$OUT/$variant/" 2>/dev/null
    cp /tmp/eval-$variant/metrics.json "$OUT/$variant/" 2>/dev/null
done
