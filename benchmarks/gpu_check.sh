#!/usr/bin/env bash
# The GPU check of issue 11, one script of at most 10 minutes on a machine with a CUDA GPU and
# python3 holding a CUDA build of torch, e3nn, scipy, numpy, pyyaml, tqdm, matplotlib and
# trimesh (nothing is installed: wheels in .whl/ are added to the path when present).
#   1. se3unet verify on the GPU (every layer, default and report-v1 models, float32/float64);
#   2. the equivariance and recomputation tests, which add a "cuda" case when a GPU is there;
#   3. benchmarks/train_step.py --device cuda (recompute on and off, each in its own process);
#   4. benchmarks/predict_throughput.py --device cuda.
# Output goes to $OUT (default gpu-check/). Run from the repository root: bash benchmarks/gpu_check.sh
set -uo pipefail
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
source benchmarks/gpu_env.sh
status=0
step() {  # step NAME COMMAND...: output to $OUT/NAME.txt, exit status to summary.txt
    local name=$1; shift
    echo "== $name: $*" | tee -a "$OUT/summary.txt"
    "$@" 2>&1 | tee "$OUT/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "   exit $rc" | tee -a "$OUT/summary.txt"
    [ "$rc" = 0 ] || status=1
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, e3nn; print('torch', torch.__version__, 'e3nn', e3nn.__version__, torch.cuda.get_device_name())" | tee -a "$OUT/gpu.txt"
step verify-default python3 -m se3unet.cli verify --device cuda --preset default --json
step verify-report-v1 python3 -m se3unet.cli verify --device cuda --preset report-v1 --json
step pytest-cuda python3 -m pytest -q -p no:cacheprovider -k cuda tests/test_equivariant_layers.py tests/test_unet.py tests/test_recompute.py
step train-step python3 benchmarks/train_step.py --device cuda --presets report-v1 default original
step train-step-batch8 python3 benchmarks/train_step.py --device cuda --batch 8 --presets report-v1 default
step predict python3 benchmarks/predict_throughput.py --device cuda --scans 20
exit $status
