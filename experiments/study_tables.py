"""The study's tables (issue 10, docs/RESULTS.md) from the evaluations that experiments/study_ict.sh
wrote: one Markdown table of error / mean IoU at 0.2 / peak F1 per model and condition, the
per-region errors, and results.json in the issue's schema:

    {"models": {NAME: {CONDITION: {"error_mm": x, "iou_0.2": x, "f1_peak": x}}}}

with the ICP mean-face baseline as "icp-mean-face" (error only, the conditions it was run on) and
"budget" (the training budget) when --budget gives it; the schema's NAMEs only (rows such as
original-v2 are in the printed tables and their own metrics.json); also
the success rates (share of landmarks within 2.5 / 5 / 10 mm) and FOLDER/ced.png: every model's
cumulative error distribution in the hardest cell (raw / both) and on aligned scans (none).

    python experiments/study_tables.py experiments/results/study-ablation [--json OUT.json]
"""

import argparse
import json
from pathlib import Path

import numpy as np

from se3unet.train.config import flat_settings

# iBUG-68, 1-based, by region (the jaw is the jawline 1-17).
REGIONS = {"jaw": range(1, 18), "brows": range(18, 28), "nose": range(28, 37), "eyes": range(37, 49),
           "mouth": range(49, 69)}
# The learned models results.json names (the schema); other rows are printed only.
SCHEMA = ("default", "original", "baseline", "baseline-rotaug")


def cell(condition: dict) -> dict:
    at = condition["iou_thresholds"].index(0.2)
    return {"error_mm": round(condition["error"]["mean_mm"], 3), "iou_0.2": round(condition["mean_iou"][at], 3),
            "f1_peak": round(max(condition["f1"]), 3)}


def region_errors(metrics: dict, condition: str) -> dict:
    names, per_landmark = metrics["landmark_names"], metrics["conditions"][condition]["error"]["per_landmark_mm"]
    by_name = dict(zip(names, per_landmark))
    return {region: round(float(np.nanmean([by_name[f"ibug{n}"] for n in numbers if f"ibug{n}" in by_name])), 2)
            for region, numbers in REGIONS.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--json", type=Path, help="where to write results.json (default: FOLDER/results.json)")
    parser.add_argument("--budget", help="the training budget, recorded in results.json beside the models "
                                         "(e.g. '668 steps of batch 4, 1024 points')")
    args = parser.parse_args()
    found = {p.parent.name: json.loads(p.read_text()) for p in sorted(args.folder.glob("*/metrics.json"))}
    if not found:
        raise SystemExit(f"{args.folder}: no */metrics.json (run experiments/study_ict.sh first)")
    runs = {name: m for name, m in found.items() if not name.startswith("abl-")}
    ablations = {name: m for name, m in found.items() if name.startswith("abl-")}
    models, icp = {}, {}
    for name, metrics in runs.items():
        models[name] = {c: cell(v) for c, v in metrics["conditions"].items()}
        icp.update({c: {"error_mm": round(v["baseline_error"]["mean_mm"], 3)}
                    for c, v in metrics["conditions"].items() if "baseline_error" in v})
    if icp:
        models["icp-mean-face"] = icp
    out = args.json or args.folder / "results.json"
    # A rerun for the tables alone keeps the budget an earlier run recorded.
    budget = args.budget or (json.loads(out.read_text()).get("budget") if out.is_file() else None)
    in_schema = {name: cells for name, cells in models.items() if name in SCHEMA or name == "icp-mean-face"}
    table = {"budget": budget, "models": in_schema} if budget else {"models": in_schema}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(table, indent=1) + "\n")
    conditions = list(next(iter(runs.values()))["conditions"])
    print("| model | " + " | ".join(conditions) + " |")
    print("| --- |" + " --- |" * len(conditions))
    for name, cells in models.items():
        row = [f"{cells[c]['error_mm']:.2f} mm" + (f" / {cells[c]['iou_0.2']:.2f} / {cells[c]['f1_peak']:.2f}"
                                                   if "iou_0.2" in cells[c] else "") if c in cells else "-"
               for c in conditions]
        print(f"| {name} | " + " | ".join(row) + " |")
    print("\n(error / mean IoU at 0.2 / peak F1)\n")
    print("| model | condition | " + " | ".join(REGIONS) + " |")
    print("| --- | --- |" + " --- |" * len(REGIONS))
    for name, metrics in runs.items():
        for condition in ("none", "raw / both"):
            if condition in metrics["conditions"]:
                errors = region_errors(metrics, condition)
                print(f"| {name} | {condition} | " + " | ".join(f"{errors[r]:.2f}" for r in REGIONS) + " |")
    print("\n| model | condition | within 2.5 mm | within 5 mm | within 10 mm |")
    print("| --- | --- | --- | --- | --- |")
    for name, metrics in runs.items():
        for condition in ("none", "raw / both"):
            if condition in metrics["conditions"]:
                rates = metrics["conditions"][condition]["error"]["success_rate"]
                print(f"| {name} | {condition} | " + " | ".join(f"{rates[t]:.1%}" for t in ("2.5mm", "5mm", "10mm")) + " |")
    if ablations:
        ablation_table(args.folder, {"default": runs["default"], **ablations} if "default" in runs else ablations)
    picture, examples = args.folder / "ced.png", args.folder / "examples.png"
    ced_figure(runs, picture, args.folder.name)
    examples_figure(args.folder, list(runs), examples)
    print(f"\n{out}\n{picture}\n{examples}")



def change(folder: Path, name: str) -> str:
    """What an ablation's config.json sets differently from default's (its output folder aside)."""
    configs = [folder / model / "config.json" for model in ("default", name)]
    if not all(p.is_file() for p in configs):
        return "?"
    reference, ablation = (flat_settings(json.loads(p.read_text())) for p in configs)
    differences = [f"{key}={json.dumps(ablation.get(key))}" for key in sorted(set(reference) | set(ablation))
                   if key != "run.output" and reference.get(key) != ablation.get(key)]
    return ", ".join(differences).replace('"', "") or "-"


def training_minutes(folder: Path) -> str:
    epochs = folder / "epochs.csv"
    if not epochs.is_file():
        return "?"
    seconds = np.genfromtxt(epochs, delimiter=",", names=True)["seconds"]
    return f"{float(np.sum(seconds)) / 60:.0f}"


def ablation_table(folder: Path, runs: dict) -> None:
    """One row per ablation (the shipped recipe with one change, read from the runs' config.json):
    errors on aligned scans and in raw / both, the hardest cell's IoU and F1, per-region errors."""
    print("\n| ablation | change | none | raw / both | IoU at 0.2 | peak F1 | " + " | ".join(REGIONS) + " | minutes |")
    print("| --- " * (7 + len(REGIONS)) + "|")
    for name, metrics in runs.items():
        aligned, hardest = (cell(metrics["conditions"][c]) for c in ("none", "raw / both"))
        regions = region_errors(metrics, "raw / both")
        print(f"| {name} | {change(folder, name) if name != 'default' else '-'} | {aligned['error_mm']:.2f} mm | "
              f"{hardest['error_mm']:.2f} mm | {hardest['iou_0.2']:.2f} | {hardest['f1_peak']:.2f} | "
              + " | ".join(f"{regions[r]:.2f}" for r in REGIONS) + f" | {training_minutes(folder / name)} |")


def examples_figure(folder: Path, names: list, out: Path) -> None:
    """The same test scan in the same random pose (raw / both: evaluate's example_0.png, whose
    pose depends on the evaluation seed alone) as each model saw it, front views side by side."""
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    shown = [n for n in names if (folder / n / "example_0.png").exists()]
    if not shown:
        return
    fig = Figure(figsize=(4.2 * len(shown), 4.6))
    for ax, name in zip(np.atleast_1d(fig.subplots(1, len(shown))), shown):
        image = imread(folder / name / "example_0.png")
        ax.imshow(image[:, : image.shape[1] // 2])  # the front view
        ax.set_title(name)
        ax.axis("off")
    # On two lines when the panels are too few to hold it on one.
    fig.suptitle("one test scan, rotated and moved (raw / both)" + (": " if len(shown) > 2 else "\n")
                 + "predicted x, true o")
    fig.tight_layout(rect=(0, 0, 1, 0.92 if len(shown) > 2 else 0.88))
    fig.savefig(out, dpi=110)


def ced_figure(runs: dict, out: Path, study: str) -> None:
    """One CED curve per model and condition (none, raw / both), the ICP baseline's in raw / both."""
    from se3unet.plots import ced_curves

    curves, styles = {}, {}
    for i, (name, metrics) in enumerate(runs.items()):
        for condition, line in (("none", "-"), ("raw / both", "--")):
            if condition in metrics["conditions"]:
                curves[f"{name} ({condition})"] = metrics["conditions"][condition]["error"]["ced"]
                styles[f"{name} ({condition})"] = {"color": f"C{i % 10}", "linestyle": line}
    baseline = [m["conditions"]["raw / both"]["baseline_error"] for m in runs.values()
                if "baseline_error" in m["conditions"].get("raw / both", {})]
    if baseline:
        curves["ICP mean face (raw / both)"] = baseline[0]["ced"]
        styles["ICP mean face (raw / both)"] = {"color": "black", "linestyle": ":"}
    limit = max(c["mm"][-1] for c in curves.values())  # as far as the evaluation tabulated it
    ced_curves(curves, out, limit_mm=limit, title=f"cumulative error distribution, {study} test scans",
               styles=styles)


if __name__ == "__main__":
    main()
