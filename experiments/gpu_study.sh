#!/usr/bin/env bash
# Issue 10's longest ablation-budget rows in one GPU session of about 10 minutes, where the
# 2-core CPU needs more than 2 hours to train each and half an hour to evaluate it, side by side:
#
#   LIMIT=540 bash experiments/gpu_study.sh sfm:original ict:original-v2     # SOURCE:MODEL rows (these by default)
#
# BUDGET=main runs and packs the main budget's rows instead (a row whose state a CPU session
# committed in its resume/ folder continues from it there). Same script, settings, steps x batch
# and seeds as on the CPU (experiments/study_ict.sh), with model.recompute=false (speed only). The protocol caches are prepared there from copies of the
# face models in .gpu-data/shared/{sfm,ict} (the device tool carries no ../shared); their
# checksums go to $OUT so they can be compared with the CPU's caches. Needs python3 with a CUDA
# torch, e3nn, scipy, yaml, tqdm, matplotlib; trimesh and plotly as wheels in .whl/.
# Results: $OUT/study.tar.gz (both rows' result folders and runs), logs and checksums beside it.
# Measured (experiments/results/h100-2026-11-27): prepare 3 min, then an epoch of each row in
# about 4.3 min side by side; both rows with their evaluations need about 13 minutes, more than
# one 10-minute command. original-v2 alone on an H200 (experiments/results/h200-2026-11-27):
# prepare, then its 892 steps in 337 s; its evaluation was cut off at 555 s. What the limit cuts
# off resumes on the CPU (study_ict.sh, train --resume from the packed last.pt), on a cache that
# matches the one trained on (Surrey: byte-identical); a finished row's exported best.pt is
# evaluated on the CPU's cache (study_ict.sh evaluates committed weights).
set -u
OUT=${OUT:-gpu-study}
LIMIT=${LIMIT:-540}  # seconds: what has finished by then is packed and comes back
mkdir -p "$OUT"
source benchmarks/gpu_env.sh
ROWS=("$@")
[ $# -gt 0 ] || ROWS=(sfm:original ict:original-v2)
# 16 cores shared by the rows: prepare's worker processes, then each training's threads.
export SE3UNET_SFM_DIR=$PWD/.gpu-data/shared/sfm SE3UNET_ICT_DIR=$PWD/.gpu-data/shared/ict OMP_NUM_THREADS=$(( 12 / ${#ROWS[@]} ))
export WORKERS=$(( 14 / ${#ROWS[@]} )) EXTRA_SETTINGS="model.recompute=false"
se3unet() { python3 -m se3unet.cli "$@"; }
export -f se3unet
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/log.txt"
start=$(date +%s)
stamp() { echo "$1 after $(( $(date +%s) - start )) s" | tee -a "$OUT/log.txt"; }
packed=()
for row in "${ROWS[@]}"; do
    source_=${row%%:*} model=${row#*:} suffix=""
    [ "$source_" = sfm ] && suffix=-sfm
    # OUT emptied: the rows write to the study's own folders, whatever this script's $OUT is.
    (OUT="" SOURCE=$source_ bash experiments/study_ict.sh "$model" > "$OUT/$source_-$model.log" 2>&1; stamp "$row: exit $?") &
    packed+=("experiments/results/study-${BUDGET:-ablation}$suffix/$model" "runs/study-${BUDGET:-ablation}$suffix/$model")
done
while [ -n "$(jobs -rp)" ] && [ $(( $(date +%s) - start )) -lt "$LIMIT" ]; do sleep 5; done
stamp "packing"
(cd cache && md5sum *-protocol/*/*.npz | awk '{n=split($2,a,"/"); print $1, a[1]"/"a[n]}') > "$OUT/md5.txt"
tar czf "$OUT/study.tar.gz" --exclude=tensorboard --ignore-failed-read "${packed[@]}"
stamp "packed"
