#!/usr/bin/env bash
# The shipped model's confidence file (src/se3unet/pretrained/face68.confidence.json) and the
# figures of docs/inference.md's "How much to trust a landmark" (issue 39), made on seed 555 and
# measured on seed 777. About 30 minutes on 2 CPU cores (50 beside other work, 2026-12-07); the
# measurement also reads experiments/evaluate_pretrained.sh's predictions (run it first). Run in
# the project's .venv with SE3UNET_SFM_DIR and SE3UNET_ICT_DIR set. STAGE=fit stops after
# writing the confidence file.
set -euo pipefail
OUT=${OUT:-runs/confidence}
mkdir -p "$OUT"
source "$(dirname "$0")/evaluation_sets.sh"
# Single readings (what evaluate scores) of 30 identities x 2 expressions per set, seed 555.
calibration=()
for name in $SET_NAMES; do
    cache=$(se3unet prepare ${SETS[$name]} --subjects 31 --val 0 --test 30 --expressions 2 --noise 0.3 --seed 555 \
        --cache-dir cache/confidence --workers 1 --quiet | tail -1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["cache"])')
    [ -f "$OUT/cal-$name/predictions.npz" ] || \
        se3unet evaluate --cache "$cache" --output "$OUT/cal-$name" --preprocessing raw --perturbations both --quiet >/dev/null
    calibration+=("$OUT/cal-$name/predictions.npz")
done
# Predict's path (face found, cropped, 32 samplings) on 6 ICT faces, 6 ICT heads, 6 Surrey faces.
[ -f "$OUT/readings-555.npz" ] || python experiments/confidence.py readings --seed 555 --identities 6 --output "$OUT/readings-555.npz"
[ -f "$OUT/shapes-choice.npz" ] || python experiments/confidence.py shapes --set choice --output "$OUT/shapes-choice.npz"
python experiments/confidence.py fit --one-pass "${calibration[@]}" --readings "$OUT/readings-555.npz" \
    --shapes "$OUT/shapes-choice.npz" | tee "$OUT/fit.txt"
cp "$OUT/fit.txt" experiments/results/pretrained/confidence-fit.txt
[ "${STAGE:-all}" = fit ] && exit 0
# Measured on seed 777: the evaluation sets (experiments/evaluate_pretrained.sh keeps their
# predictions in cache/evaluation/predictions/), predict's path, and shapes none of the threshold saw.
[ -f "$OUT/readings-777.npz" ] || python experiments/confidence.py readings --seed 777 --identities 6 --output "$OUT/readings-777.npz"
[ -f "$OUT/shapes-test.npz" ] || python experiments/confidence.py shapes --set test --output "$OUT/shapes-test.npz"
python experiments/confidence.py measure --one-pass cache/evaluation/predictions/*.npz --readings "$OUT/readings-777.npz" \
    --shapes "$OUT/shapes-test.npz" | tee experiments/results/pretrained/confidence.txt
