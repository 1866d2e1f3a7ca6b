"""Learning curves of training runs side by side (plots.compared_runs), and a table of their
epochs and test scores when the folders hold an evaluation's metrics.json.

    python experiments/plot_runs.py OUT.png NAME=FOLDER [NAME=FOLDER ...]
"""

import json
import sys
from pathlib import Path

from se3unet.plots import compared_runs


def main(out: str, pairs: list) -> None:
    runs = dict(pair.split("=", 1) for pair in pairs)
    compared_runs(runs, out)
    print("| run | steps | seconds | best val mm | test, canonical pose (mm) | test, raw / both (mm) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, folder in runs.items():
        summary = json.loads((Path(folder) / "summary.json").read_text())
        metrics = Path(folder) / "metrics.json"
        test = json.loads(metrics.read_text())["conditions"] if metrics.is_file() else {}
        scores = [f"{test[c]['error']['mean_mm']:.2f}" if c in test else "-" for c in ("none", "raw / both")]
        print(f"| {name} | {summary['steps']} | {summary['seconds']:.0f} | {summary['best_val_error_mm']:.2f} | "
              + " | ".join(scores) + " |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
