#!/usr/bin/env bash
# One GPU session (about 8 minutes on an H100): the shipped model's training and, beside it on
# the same GPU, the head / normalisation comparison. Needs the two prepared caches under
# .gpu-data/ (commands in configs/shipped.yaml and configs/compare-heads.yaml) and python3 with a
# CUDA torch, e3nn, scipy, yaml, tqdm, matplotlib. Results go to $OUT (default gpu-train/).
set -u
OUT=${OUT:-gpu-train}
mkdir -p "$OUT"
source benchmarks/gpu_env.sh
SHIPPED=$(ls -d .gpu-data/shipped/mixed-*) COMPARE=$(ls -d .gpu-data/compare/mixed-*)
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/log.txt"
start=$(date +%s)
python3 -m se3unet.cli train --config configs/shipped.yaml --quiet \
    --set data.cache="$SHIPPED" run.output=/tmp/shipped run.device=cuda > /tmp/shipped.log 2>&1 &
shipped=$!
for variant in "invariant bias" "invariant rms" "offset rms"; do
    set -- $variant
    python3 -m se3unet.cli train --config configs/compare-heads.yaml --quiet \
        --set data.cache="$COMPARE" run.output=/tmp/compare-$1-$2 run.device=cuda model.head=$1 model.norm=$2 \
        model.recompute=false > /tmp/compare-$1-$2.log 2>&1 &
done
wait $(jobs -p | grep -v "^$shipped$")
echo "comparison trained after $(( $(date +%s) - start )) s" | tee -a "$OUT/log.txt"
for variant in invariant-bias invariant-rms offset-rms; do
    python3 -m se3unet.cli evaluate --checkpoint /tmp/compare-$variant/best.pt --cache "$COMPARE" --quiet \
        --output /tmp/eval-$variant --preprocessing none raw --perturbations both --device cuda \
        > /tmp/eval-$variant.log 2>&1 || tail -20 /tmp/eval-$variant.log >> "$OUT/log.txt"
done
python3 - "$OUT" <<'PY'
import json, sys, csv
out = {}
for v in ("invariant-bias", "invariant-rms", "offset-rms"):
    with open(f"/tmp/compare-{v}/epochs.csv") as f:
        epochs = list(csv.DictReader(f))
    summary = json.load(open(f"/tmp/compare-{v}/summary.json"))
    try:
        metrics = json.load(open(f"/tmp/eval-{v}/metrics.json"))["conditions"]
        test = {c: {"error_mm": m["error"]["mean_mm"], "f1@0.5": m["f1"][5]} for c, m in metrics.items()}
    except FileNotFoundError:
        test = None
    out[v] = {"epochs": epochs, "steps": summary["steps"], "seconds": summary["seconds"], "test": test}
json.dump(out, open(f"{sys.argv[1]}/compare.json", "w"), indent=1)
PY
wait $shipped
echo "shipped model trained after $(( $(date +%s) - start )) s" | tee -a "$OUT/log.txt"
tail -5 /tmp/shipped.log /tmp/compare-*.log >> "$OUT/log.txt"
cp /tmp/shipped/best.pt "$OUT/shipped-best.pt"
cp /tmp/shipped/epochs.csv "$OUT/shipped-epochs.csv"
cp /tmp/shipped/steps.csv "$OUT/shipped-steps.csv"
cp /tmp/shipped/summary.json "$OUT/shipped-summary.json"
