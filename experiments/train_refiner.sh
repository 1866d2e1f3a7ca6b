#!/usr/bin/env bash
# The refiner shipped beside face68.pt (issue 37, se3unet.refine), made again: (1) the shipped
# model's own error per landmark on seed-555 faces through predict's path (about 6 minutes);
# (2) one 15 mm crop of 512 points per landmark of 100 + 100 training identities (Surrey faces,
# ICT whole heads; seed 2025, two expressions, the shipped scanner effects), centred where that
# error would put it (about 2 minutes); (3) configs/refiner.yaml, one epoch of 2,763 steps
# (about 70 minutes on 2 cores); (4) src/se3unet/pretrained/face68.refiner.pt; (5) its per-landmark
# share of the refined place (experiments/refine_choose.py). Each step resumes
# or reuses what an interrupted run left. Run in the project's .venv with SE3UNET_SFM_DIR and
# SE3UNET_ICT_DIR set; `make pretrained` runs it after the coarse model.
set -euo pipefail
RUN=${REFINER_RUN:-runs/refiner}
ERRORS=experiments/results/refiner/coarse-errors-555.npz
CROPS=cache/refiner/crops-100
# COARSE: the coarse model whose errors the crops copy (default: the package's)
[ -f "$ERRORS" ] || python experiments/coarse_errors.py --seed 555 --identities 20 --samplings 8 --output "$ERRORS" \
    ${COARSE:+--checkpoint "$COARSE"}
[ -f "$CROPS/manifest.json" ] || python experiments/refiner_crops.py --errors "$ERRORS" --subjects 100 --val-subjects 3 \
    --workers 2 --output "$CROPS"
se3unet train --config configs/refiner.yaml --resume --set data.cache="$CROPS" run.output="$RUN" "$@"
# (4) + (5): written beside face68.pt and bound to it, its blend chosen on seed 555 (about 8 minutes)
bash experiments/bind_refiner.sh "$RUN" "$RUN/choose-555.json"
