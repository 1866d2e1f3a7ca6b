#!/usr/bin/env bash
# Issue 37's measure: predict's path (`se3unet evaluate --rebuilt`) on the seed-777 evaluation sets
# of experiments/evaluate_pretrained.sh, their scans rebuilt whole (scanner effects on the dense
# surface) in random poses, without and with the shipped refiner, timed in the same run. LIMIT
# scans per set (the first of each test split; 12 take about 25 minutes on 2 cores).
# Tables go to experiments/results/pretrained/rebuilt/, one line per set and reading in
# summary.md. Run in the project's .venv with SE3UNET_SFM_DIR and SE3UNET_ICT_DIR set.
set -euo pipefail
OUT=${OUT:-experiments/results/pretrained/rebuilt}
LIMIT=${LIMIT:-12}
mkdir -p "$OUT"
source "$(dirname "$0")/evaluation_sets.sh"
for name in $SET_NAMES; do
    cache=$(se3unet prepare ${SETS[$name]} --subjects 100 --val 0 --test 60 --expressions 2 --noise 0.3 --seed 777 \
        --cache-dir cache/evaluation --workers 1 --quiet | tail -1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["cache"])')
    [ -f "$OUT/$name/metrics.json" ] || \
        se3unet evaluate --cache "$cache" --rebuilt --limit "$LIMIT" --output "$OUT/$name" --quiet >/dev/null
    rm -f "$OUT/$name/ced.png"  # per_landmark.png says more; every number is in metrics.json
done
python3 - "$OUT" $SET_NAMES <<'PY' | tee "$OUT/summary.md"
import json, sys
from pathlib import Path
out, names = Path(sys.argv[1]), sys.argv[2:]
print("| set | reading | scans | mean mm | median mm | worst landmark mm | s / scan |\n|---|---|---|---|---|---|---|")
for name in names:
    m = json.loads((out / name / "metrics.json").read_text())
    for reading, r in m["rows"].items():
        e = r["error"]
        print(f"| {name} | {reading} | {m['scans']} | {e['mean_mm']:.2f} | {e['median_mm']:.2f} | "
              f"{max(x for x in e['per_landmark_mm'] if x == x):.2f} | {r['seconds_per_scan']:.1f} |")
PY
