#!/usr/bin/env bash
# The refiner trained in RUN (its best.pt) written beside the package's face68.pt, bound to those
# weights (their SHA-256), with how much of each landmark's refined place to take chosen on 18
# seed-555 scans read by those weights (about 8 minutes; the readings go to CHOICE and are reused
# when it exists). Used by train_refiner.sh and reship.sh. Run in the project's .venv.
#
#     bash experiments/bind_refiner.sh runs/refiner runs/refiner/choose-555.json
set -euo pipefail
RUN=${1:?usage: bind_refiner.sh RUN CHOICE}
CHOICE=${2:?usage: bind_refiner.sh RUN CHOICE}
python -c "
from se3unet.refine import RefineSettings, save_refiner
from se3unet.pretrained import pretrained_path
save_refiner(pretrained_path().with_name('face68.refiner.pt'), '$RUN/best.pt', pretrained_path(), RefineSettings())"
[ -f "$CHOICE" ] || python experiments/refine_eval.py --seed 555 --identities 6 --samplings 32 \
    --refine-samplings 1 --all-landmarks --output "$CHOICE"
python experiments/refine_choose.py "$CHOICE" src/se3unet/pretrained/face68.refiner.pt --reading 32x1
