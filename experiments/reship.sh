#!/usr/bin/env bash
# Ship new coarse weights as face68.pt and make again everything bound to them (their SHA-256):
# the refiner's binding and its per-landmark blend (chosen on seed 555), the confidence file, and
# the figures the docs quote: refine_eval on seed 777 (clean and with scanner effects), the
# model card's one-pass tables (evaluate_pretrained.sh), the confidence measure, and predict on
# rebuilt scans (evaluate_rebuilt.sh). About 35 minutes alone on 2 cores (2026-12-07, stage 5).
# Then update docs/model-card.md, docs/inference.md ("Coarse to fine", "How much to trust a
# landmark"), README.md's figures, and experiments/train_pretrained.sh's recipe.
#
#     bash experiments/reship.sh runs/stage5/best.pt
#
# After an interruption the refiner's choice and the seed-777 readings are reused from $WORK
# (delete it to start over), the rest runs again. Run in the
# project's .venv with SE3UNET_SFM_DIR and SE3UNET_ICT_DIR set; REFINER_RUN: the refiner's
# training run (its best.pt), default runs/refiner (experiments/train_refiner.sh makes it).
set -euo pipefail
NEW=${1:?usage: reship.sh CHECKPOINT}
WORK=${WORK:-runs/reship}
REFINER_RUN=${REFINER_RUN:-runs/refiner}
P=src/se3unet/pretrained
mkdir -p "$WORK"
se3unet export "$NEW" $P/face68.pt
bash experiments/bind_refiner.sh "$REFINER_RUN" "$WORK/choose-555.json"
for effects in "" "--effects"; do
    f="$WORK/eval-777${effects:+-effects}.json"
    [ -f "$f" ] || python experiments/refine_eval.py --seed 777 --identities 8 --samplings 32 $effects --output "$f"
done
OUT="$WORK/confidence" STAGE=fit bash experiments/confidence.sh
bash experiments/evaluate_pretrained.sh
OUT="$WORK/confidence" bash experiments/confidence.sh
rm -rf experiments/results/pretrained/rebuilt
bash experiments/evaluate_rebuilt.sh
