#!/usr/bin/env bash
# What more optimizer steps of the shipped recipe give (docs/model-card.md, "closing the rest"):
# configs/shipped.yaml on its own training cache, alone on one GPU for at most $LIMIT seconds of
# an 8-epoch schedule (3040 steps), then evaluated on the model card's unseen Surrey and ICT faces
# (seed 777) in random poses. Needs cache/shipped/ and cache/evaluation/ (experiments/
# train_pretrained.sh and experiments/evaluate_pretrained.sh prepare them) and python3 with a
# CUDA torch, e3nn, scipy, yaml, tqdm, matplotlib. Results go to $OUT (default gpu-longer/).
set -u
OUT=${OUT:-gpu-longer}
LIMIT=${LIMIT:-270}
mkdir -p "$OUT"
source benchmarks/gpu_env.sh
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/log.txt"
start=$(date +%s)
python3 -m se3unet.cli train --config configs/shipped.yaml --quiet --set data.cache="$(ls -d cache/shipped/mixed-*)" \
    run.output=/tmp/longer run.device=cuda optim.epochs=8 run.time_limit=$LIMIT > /tmp/longer.log 2>&1
echo "trained after $(( $(date +%s) - start )) s" | tee -a "$OUT/log.txt"
tail -2 /tmp/longer.log >> "$OUT/log.txt"
cp /tmp/longer/{epochs.csv,summary.json} "$OUT/"
for cache in cache/evaluation/sfm-5f33b359b7a4 cache/evaluation/ict-902c86e10c48; do
    python3 -m se3unet.cli evaluate --checkpoint /tmp/longer/best.pt --cache $cache --quiet --output /tmp/eval \
        --preprocessing raw --perturbations both --baseline --device cuda 2>&1 | tail -1 | tee -a "$OUT/log.txt"
done
