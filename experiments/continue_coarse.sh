#!/usr/bin/env bash
# Issue 37, "is it worth it?": the refiner's CPU minutes spent on the coarse model instead. The
# shipped weights (run.init=pretrained) train on for EPOCHS epochs of stage 2's scans (the shipped
# identities, scanner effects, synthetic skulls and predict-like crops: configs/shipped-crops.yaml,
# lr 5e-4 cosine to 1e-5); 7 epochs = 2,660 steps of 4 scans of 1,024 points, against the
# refiner's 2,762 steps of 8 crops of 512 points (the same architecture, the same points a step:
# the same CPU minutes, 73 on the day it was trained). Then predict's
# path on the seed-777 sets, as experiments/refine_eval.py measured the refiner (same scans, same
# poses: the seed draws them). Resumes after an interruption (run it again). Run in the .venv.
# It ran when the package held stage 3 (its result is stage 4; run again from stage 4 with
# run.seed=2029 it made stage 5, which the package holds now): to repeat it, give the start,
# e.g. INIT=runs/shipped-stage3/best.pt (make pretrained's). PROCESSES=2: one process per core
# with half the batch each (torchrun; the same steps, docs/training.md), 1.1x faster on 2 cores (stage 6).
set -euo pipefail
RUN=${RUN:-runs/continued}
EPOCHS=${EPOCHS:-7}
OUT=${OUT:-experiments/results/refiner}
PROCESSES=${PROCESSES:-1}
BATCH=4  # configs/shipped-crops.yaml's, split across the processes
train=(se3unet train)
[ "$PROCESSES" -gt 1 ] && train=(torchrun --nproc_per_node "$PROCESSES" -m se3unet.cli train)
SCANS="--source mixed --region head --subjects 400 --expressions 2 --samples 16000 --points 1024 --val 0.05
    --test 0 --seed 2025 --noise 0.3 --holes 1 --fov 0.7 --view 0.3 --density 0.3 --cache-dir cache/shipped"
# shellcheck disable=SC2086
cache=$(se3unet prepare $SCANS --surround 0.5 --face-crop 120 --face-crop-share 0.5 --quiet |
    python3 -c 'import json, sys; print(json.loads(sys.stdin.read().splitlines()[-1])["cache"])')
"${train[@]}" --config configs/shipped-crops.yaml --resume --set data.cache="$cache" run.output="$RUN" \
    run.init="${INIT:-pretrained}" optim.epochs="$EPOCHS" run.seed=2028 run.time_limit=10800 \
    optim.batch_size=$((BATCH / PROCESSES)) "$@"
for effects in "" "--effects"; do
    python experiments/refine_eval.py --checkpoint "$RUN/best.pt" --seed 777 --identities 8 --samplings 32 \
        $effects --output "$OUT/continued-777${effects:+-effects}.json"
done
