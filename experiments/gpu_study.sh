#!/usr/bin/env bash
# Issue 10's two longest ablation-budget rows in one GPU session of about 10 minutes, where the
# 2-core CPU needs more than 2 hours to train each and an hour to evaluate it: the original on
# Surrey faces (the second table) and the original's second setting on ICT faces, side by side.
# Same script, settings, steps x batch and seeds as on the CPU (experiments/study_ict.sh), with
# model.recompute=false (speed only). The protocol caches are prepared there from copies of the
# face models in .gpu-data/shared/{sfm,ict} (the device tool carries no ../shared); their
# checksums go to $OUT so they can be compared with the CPU's caches. Needs python3 with a CUDA
# torch, e3nn, scipy, yaml, tqdm, matplotlib; trimesh and plotly as wheels in .whl/.
# Results: $OUT/study.tar.gz (both rows' result folders and runs), logs and checksums beside it.
# Measured (experiments/results/h100-2026-11-27): prepare 3 min, then an epoch of each row in
# about 4.3 min side by side; both rows with their evaluations need about 13 minutes, more than
# one 10-minute command. What the limit cuts off resumes on the CPU (study_ict.sh, train --resume
# from the packed last.pt), on a cache that matches the one trained on (Surrey: byte-identical).
set -u
OUT=${OUT:-gpu-study}
LIMIT=${LIMIT:-540}  # seconds: what has finished by then is packed and comes back
mkdir -p "$OUT"
source benchmarks/gpu_env.sh
export SE3UNET_SFM_DIR=$PWD/.gpu-data/shared/sfm SE3UNET_ICT_DIR=$PWD/.gpu-data/shared/ict OMP_NUM_THREADS=6
export WORKERS=7 EXTRA_SETTINGS="model.recompute=false"
se3unet() { python3 -m se3unet.cli "$@"; }
export -f se3unet
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/log.txt"
start=$(date +%s)
stamp() { echo "$1 after $(( $(date +%s) - start )) s" | tee -a "$OUT/log.txt"; }
(SOURCE=sfm bash experiments/study_ict.sh original > "$OUT/sfm-original.log" 2>&1; stamp "sfm original: exit $?") &
(bash experiments/study_ict.sh original-v2 > "$OUT/original-v2.log" 2>&1; stamp "ict original-v2: exit $?") &
while [ -n "$(jobs -rp)" ] && [ $(( $(date +%s) - start )) -lt "$LIMIT" ]; do sleep 5; done
stamp "packing"
(cd cache && md5sum ict-protocol/*/*.npz sfm-protocol/*/*.npz | awk '{n=split($2,a,"/"); print $1, a[1]"/"a[n]}') > "$OUT/md5.txt"
tar czf "$OUT/study.tar.gz" --exclude=tensorboard experiments/results/study-ablation-sfm/original \
    experiments/results/study-ablation/original-v2 runs/study-ablation-sfm/original runs/study-ablation/original-v2
stamp "packed"
