#!/usr/bin/env bash
# The shipped model's target evaluations (issue 9, docs/model-card.md): unseen faces drawn with
# seed 777, Surrey faces and ICT faces and heads, clean and with the training data's scanner
# effects, each evaluated with the bundled weights (no --checkpoint) in the canonical pose and in
# random poses without realignment, beside the ICP mean-face baseline. Tables go to
# experiments/results/pretrained/. `make` is not needed: run it in the project's .venv with
# SE3UNET_SFM_DIR and SE3UNET_ICT_DIR set (the Makefile's defaults: ../shared/data/...).
# STAGE=prepare only prepares the caches.
set -euo pipefail
OUT=${OUT:-experiments/results/pretrained}
mkdir -p "$OUT"
source "$(dirname "$0")/evaluation_sets.sh"
for name in $SET_NAMES; do
    cache=$(se3unet prepare ${SETS[$name]} --subjects 100 --val 0 --test 60 --expressions 2 --noise 0.3 --seed 777 \
        --cache-dir cache/evaluation --workers 1 --quiet | tail -1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["cache"])')
    echo "$name: $cache"
    [ "${STAGE:-all}" = prepare ] && continue
    mkdir -p "$OUT/$name"
    se3unet evaluate --cache "$cache" --output "$OUT/$name" --preprocessing none raw --perturbations both --quiet \
        | tee "$OUT/$name/table.txt"
    # one example picture per set is enough to commit; report.html needs plotly.min.js (4.6 MB) beside it;
    # predictions.npz is megabytes: kept out of git, where experiments/confidence.sh reads it
    mkdir -p cache/evaluation/predictions
    mv "$OUT/$name/predictions.npz" "cache/evaluation/predictions/$name.npz"
    rm -f "$OUT/$name"/example_[12].png "$OUT/$name"/iou.png "$OUT/$name"/report.html "$OUT/$name"/plotly.min.js
done
