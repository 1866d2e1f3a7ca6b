#!/usr/bin/env bash
# Fine-tunes the shipped model (configs/shipped-twins.yaml; run.init=... for other weights) on
# stage 2's scans with every Surrey face in a synthetic skull and neck, each read beside its twin
# (the same face, crop and scanner effects, alone) under a consistency term. The shipped stage 3
# is this from stage 2 with the term all but off (train_pretrained.sh); the tries with it on are
# in docs/inference.md. Resumes after an interruption (run it again). Measure it with
# experiments/sampling_floor.py and whole_head.py (--checkpoint runs/shipped-twins/best.pt).
# Run in the project's .venv.
# REGION=face: ICT faces (their face region) in a synthetic skull and neck too, so that ICT twins
# differ as well (head: ICT whole heads, which get no synthetic head: identical twins).
# KIND=ict: the surround is a random ICT head's own skull, ears and neck (prepare --surround-kind ict).
# SETTINGS: more train settings (e.g. "optim.lr=0.0003").
set -euo pipefail
RUN=${RUN:-runs/shipped-twins}
SCANS="--source mixed --region ${REGION:-head} --subjects 400 --expressions 2 --samples 16000 --points 1024 --val 0.05
    --test 0 --seed 2025 --noise 0.3 --holes 1 --fov 0.7 --view 0.3 --density 0.3 --surround 1 --surround-kind ${KIND:-synthetic} --face-crop 120
    --face-crop-share 0.5 --cache-dir cache/shipped"
prepared() {  # the cache folder of SCANS plus the arguments
    # shellcheck disable=SC2086
    se3unet prepare $SCANS "$@" --quiet | python3 -c 'import json, sys; print(json.loads(sys.stdin.read().splitlines()[-1])["cache"])'
}
cache=$(prepared)
twins=$(prepared --surround-twin)
se3unet train --config configs/shipped-twins.yaml --resume --set data.cache="$cache" data.twin_cache="$twins" \
    run.output="$RUN" ${SETTINGS:-} "$@"
