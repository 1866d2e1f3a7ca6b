"""`se3unet demo`: the whole tool on the built-in Surrey Face Model data, in minutes on a CPU.

Prepares random SFM faces (300 identities, 512 points each: at 1,024 points a step costs
twice as much and 4 epochs reached 6.7 mm where 8 epochs at 512 reach 4.2 mm in the same
time), trains the default model with the shipped model's head, norms and pooling (offset vote,
RMS norms, mean pooling: 4.47 mm in 6 epochs, 2026-11-27; with max pooling 4.38 mm in 5 epochs
where the heatmap head with bias norms reached 5.41 mm, 2026-11-26)
for 8 epochs or 6.5 minutes, whichever ends first, on scans in
random poses, evaluates it on test scans in random poses (rotation over SO(3) plus translation),
and compares it with the classical baseline (the mean face aligned to each scan by ICP).
The time limit cuts the schedule short on a slow machine rather than planning fewer epochs:
planning 4 epochs to fit 7 minutes on a machine 2x slower than usual reached 14.4 mm (the
baseline: 5.7 mm), where 6 epochs of an 8-epoch schedule cut off by the limit reached 4.65 mm;
the model leaves its early plateau (about 20 mm) around epoch 3, and only at a high learning rate.
Re-running reuses the cache and a finished training run; an interrupted one resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

from .data.prepare import PrepareConfig, prepare
from .data.sfm import resolve_sfm_dir
from .evaluate.report import evaluate
from .train.config import ExperimentConfig, apply_overrides
from .train.trainer import BEST, train

CONDITION = "raw / both"


def run_demo(output: str = "runs/demo", sfm_dir: Optional[str] = None, subjects: int = 300, points: int = 512,
             epochs: int = 8, minutes: float = 6.5, progress: bool = True,
             overrides: Sequence[str] = ()) -> Dict[str, object]:
    """``overrides``: experiment fields as for `se3unet train --set` (e.g. a smaller model)."""
    output = Path(output)
    folder = resolve_sfm_dir(sfm_dir).resolve()
    data = prepare(PrepareConfig(source="sfm", path=str(folder), subjects=subjects, points=points, val=0.1, test=0.2),
                   output / "cache", workers=2, progress=progress)
    print(f"data: {data.path} (train {data.sizes['train']}, val {data.sizes['val']}, test {data.sizes['test']} scans)")
    config = ExperimentConfig.from_dict(apply_overrides({
        # 512 points need no memory saving: recomputing the edge work would halve the epochs
        # the time limit allows (3 instead of 6 measured; results are the same either way).
        # The shipped model's recipe: landmarks by offset vote, RMS-normalised norms, mean pooling.
        "model": {"preset": "default", "normals": True, "recompute": False, "head": "offset", "norm": "rms",
                  "pooling": "mean"},
        "data": {"cache": str(data.path), "translation": 0.2},
        "loss": {"name": "heatmap_ce"},
        "optim": {"lr": 3e-3, "batch_size": 4, "epochs": epochs},
        "run": {"output": str(output / f"train-{data.path.name}"), "time_limit": minutes * 60, "val_scans": 20},
    }, overrides))
    trained = train(config, resume=True, progress=progress)
    checkpoint = Path(config.run.output) / BEST
    report = evaluate(checkpoint, data.path, output / "report", preprocessing=("none", "raw"), perturbations=("both",),
                      baseline=(CONDITION,), translation=1.0, progress=progress)
    print(report["table"])
    result = report["conditions"][CONDITION]
    error, baseline = result["error"]["mean_mm"], result["baseline_error"]["mean_mm"]
    verdict = "beats" if error < baseline else "does NOT beat"
    print(f"test scans in random poses: model {error:.2f} mm, baseline (mean face + ICP) {baseline:.2f} mm: "
          f"the model {verdict} the baseline")
    print(f"report: {report['report']}/summary.md and its pictures")
    return {"error_mm": round(error, 3), "baseline_error_mm": round(baseline, 3), "report": report["report"],
            "checkpoint": str(checkpoint), "train_seconds": round(trained["seconds"], 1),
            "epochs": trained["epochs"], "test_scans": result["scans"]}
