#!/usr/bin/env bash
# The model that ships (docs/model-card.md): prepare its data, train it on the CPU (about 90
# minutes on 2 cores; run it again after an interruption and it resumes from the last epoch),
# then write the inference part of its best checkpoint into the package. `make pretrained` runs
# this in the project's .venv.
set -euo pipefail
RUN=${RUN:-runs/shipped}
cache=$(se3unet prepare --source mixed --region head --subjects 400 --expressions 2 --samples 16000 \
    --points 1024 --val 0.05 --test 0 --seed 2025 --noise 0.3 --holes 1 --fov 0.7 --view 0.3 \
    --density 0.3 --cache-dir cache/shipped --quiet | python3 -c 'import json, sys; print(json.loads(sys.stdin.read().splitlines()[-1])["cache"])')
se3unet train --config configs/shipped.yaml --resume --set data.cache="$cache" run.output="$RUN" "$@"
se3unet export "$RUN/best.pt" src/se3unet/pretrained/face68.pt
