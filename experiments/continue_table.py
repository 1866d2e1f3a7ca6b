"""The refiner against the same CPU minutes spent on training the coarse model on (issue 37): one
markdown table from experiments/refine_eval.py's results of the shipped model (with and without
--refine) and of the continued one (experiments/continue_coarse.sh), on the same seed-777 scans.

    python experiments/continue_table.py experiments/results/refiner
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from refine_eval import GROUPS  # noqa: E402

KINDS = {"sfm-face": "Surrey faces", "ict-face": "ICT faces", "ict-head": "ICT whole heads"}


def errors(rows, kind: str, key: str) -> np.ndarray:
    return np.array([r[key] for r in rows if r["kind"] == kind], dtype=float)


def cell(e: np.ndarray) -> str:
    return f"{np.nanmean(e):.2f}"


def groups(e: np.ndarray) -> str:
    per = np.nanmean(e, axis=0)
    return " / ".join(f"{np.nanmean(per[list(i)]):.2f}" for i in GROUPS.values())


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "experiments/results/refiner")
    print("| set (8 unseen identities each) | shipped: predict | predict --refine | continued: predict | "
          f"jaw / brows / nose / eyes / mouth: shipped | --refine | continued |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for suffix, label in (("", ""), ("-effects", ", scanner effects")):
        shipped = json.loads((folder / f"eval-777{suffix}.json").read_text())["rows"]
        continued = json.loads((folder / f"continued-777{suffix}.json").read_text())["rows"]
        for kind, name in KINDS.items():
            coarse, refined = errors(shipped, kind, "coarse-32"), errors(shipped, kind, "refined-32x1")
            again = errors(continued, kind, "coarse-32")
            print(f"| {name}{label} | {cell(coarse)} mm | {cell(refined)} | **{cell(again)}** | {groups(coarse)} | "
                  f"{groups(refined)} | {groups(again)} |")


if __name__ == "__main__":
    main()
