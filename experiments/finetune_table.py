"""The learning curve of experiments/finetune_curve.py as one table and one picture.

    python experiments/finetune_table.py experiments/results/finetune/curve-*.json

Prints a Markdown table (mean error over the new landmarks of the 60 unseen heads, per N and
method; atlas transfer and fine-tuning per seed; rows measured on an earlier shipped model, marked
"base" in the files, are labelled with it and their baselines left out) and writes docs/images/finetune-curve.png.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

PICTURE = Path("docs/images/finetune-curve.png")
BASELINES = ("linear", "template")


def main(files) -> None:
    rows = [r for f in files for r in json.loads(Path(f).read_text())]
    by = defaultdict(list)
    for r in rows:  # rows measured on an earlier shipped model ("base"): its baselines are superseded
        if "base" in r and r["method"] in BASELINES:
            continue
        by[(r["method"] + (f" ({r['base']})" if "base" in r else ""), r["n"])].append(r)
    methods = sorted({m for m, _ in by}, key=lambda m: (m in BASELINES, m))
    ns = sorted({n for _, n in by})
    print("| N heads | " + " | ".join(methods) + " |")
    print("| --- | " + " | ".join("---" for _ in methods) + " |")
    for n in ns:
        cells = []
        for m in methods:
            found = by.get((m, n), [])
            if not found:
                cells.append("")
            elif m not in BASELINES:  # per training seed
                cells.append(" / ".join(f"{r['mean_mm']:.2f}" for r in sorted(found, key=lambda r: r["seed"]))
                             + f" ({', '.join(str(r.get('minutes', '')) for r in found)} min"
                             + (f"; predict {found[0]['predict_s_per_scan']} s/scan)" if "predict_s_per_scan" in found[0]
                                else ")"))
            else:
                cells.append(f"{found[0]['mean_mm']:.2f}")
        print(f"| {n} | " + " | ".join(cells) + " |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        points = sorted((n, r["mean_mm"]) for (mm, n), found in by.items() if mm == m for r in found)
        ax.plot(*zip(*points), "s" if "stage 3" in m else "o-", label=m)
    top = 10.0  # a network fine-tuned on 5 heads (26 mm) would flatten the rest: written at the edge instead
    for (m, n), found in by.items():
        for r in found:
            if r["mean_mm"] > top:
                ax.annotate(f"{m}: {r['mean_mm']:.1f} mm", (n, top), xytext=(4, -12), textcoords="offset points",
                            fontsize=7, arrowprops=None)
    ax.set_ylim(0, top)
    ax.axhline(2.5, color="0.6", ls="--", lw=1, label="issue 38's target (2.5 mm)")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("annotated training heads (N)")
    ax.set_ylabel("mean error over 14 new landmarks (mm)")
    ax.set_title("60 unseen ICT heads in random poses")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PICTURE, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1:])
