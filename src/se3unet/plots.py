"""Pictures: training curves, PR and CED curves, per-landmark errors, scans with landmarks."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no backend chosen, no global figure registry

from .geometry.face import face_frame

PathLike = Union[str, Path]


def _save(fig, out: PathLike, dpi: int = 110) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)


def _read_csv(path: PathLike) -> Dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r[k] not in ("", None) else np.nan for r in rows]) for k in rows[0]}


def training_curves(steps_csv: PathLike, epochs_csv: PathLike, out: PathLike) -> None:
    """The report's four panels: training loss, learning rate, steps per epoch, validation."""
    steps, epochs = _read_csv(steps_csv), _read_csv(epochs_csv)
    fig = Figure(figsize=(11, 7.5))
    axes = fig.subplots(2, 2)
    if steps:
        axes[0, 0].plot(steps["step"], steps["loss"], lw=0.8, alpha=0.5, label="per step")
    if epochs:
        axes[0, 0].plot(epochs["step"], epochs["train_loss"], "o-", label="epoch mean")
    axes[0, 0].set(title="training loss", xlabel="step", ylabel="loss")
    axes[0, 0].legend()
    if steps:
        axes[0, 1].plot(steps["step"], steps["lr"])
    positive = not steps or min(steps["lr"]) > 0  # a log axis cannot show a rate of 0
    axes[0, 1].set(title="learning rate", xlabel="step", yscale="log" if positive else "linear")
    if epochs:
        axes[1, 0].plot(epochs["epoch"] + 1, epochs["step"], "o-")
        axes[1, 1].plot(epochs["epoch"] + 1, epochs["val_loss"], "o-", color="C1", label="val loss")
        twin = axes[1, 1].twinx()
        twin.plot(epochs["epoch"] + 1, epochs["val_error_mm"], "s--", color="C2", label="val error (mm)")
        twin.set_ylabel("landmark error (mm)")
        axes[1, 1].legend(loc="upper left")
        twin.legend(loc="upper right")
    axes[1, 0].set(title="optimizer steps", xlabel="epoch", ylabel="steps so far")
    axes[1, 1].set(title="validation", xlabel="epoch", ylabel="loss")
    _save(fig, out)


def compared_runs(runs: Dict[str, PathLike], out: PathLike, smooth: int = 50) -> None:
    """Learning curves of training runs side by side, by optimizer step: the training loss
    (moving mean over ``smooth`` steps) and the validation landmark error of each epoch."""
    fig = Figure(figsize=(11, 4.2))
    loss_axes, error_axes = fig.subplots(1, 2)
    for i, (name, folder) in enumerate(runs.items()):
        steps, epochs = _read_csv(Path(folder) / "steps.csv"), _read_csv(Path(folder) / "epochs.csv")
        if steps and len(steps["loss"]) >= smooth:
            mean = np.convolve(steps["loss"], np.ones(smooth) / smooth, mode="valid")
            loss_axes.plot(steps["step"][smooth - 1:], mean, color=f"C{i}", label=name)
        if epochs:
            error_axes.plot(epochs["step"], epochs["val_error_mm"], "o-", color=f"C{i}", label=name)
    loss_axes.set(title=f"training loss (mean of {smooth} steps)", xlabel="optimizer step", ylabel="loss")
    error_axes.set(title="validation landmark error", xlabel="optimizer step", ylabel="mm", yscale="log")
    error_axes.grid(alpha=0.3, which="both")
    from matplotlib.ticker import ScalarFormatter

    error_axes.yaxis.set_major_formatter(ScalarFormatter())  # plain millimetres, not powers of ten
    error_axes.yaxis.set_minor_formatter(ScalarFormatter())
    loss_axes.legend()
    error_axes.legend()
    _save(fig, out)


def pr_curves(results: Dict[str, Dict], out: PathLike) -> None:
    """Precision-recall (points over thresholds) and F1 against threshold, one line per condition."""
    fig = Figure(figsize=(11, 4.5))
    a, b = fig.subplots(1, 2)
    for name, r in results.items():
        a.plot(r["recall"], r["precision"], "o-", ms=3, label=name)
        b.plot(r["thresholds"], r["f1"], "o-", ms=3, label=name)
    a.set(title="precision-recall over thresholds", xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02))
    b.set(title="F1 against threshold", xlabel="threshold", ylabel="F1", ylim=(0, 1.02))
    b.legend(fontsize=8)
    _save(fig, out)


def ced_curves(curves: Dict[str, Dict], out: PathLike, limit_mm: float = 20.0, title: str = "",
               styles: Optional[Dict[str, Dict]] = None) -> None:
    """Cumulative error distribution: share of landmarks within x mm (up to ``limit_mm``);
    ``styles``: matplotlib line settings per curve (a colour per model, a line style per condition)."""
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    for name, ced in curves.items():
        ax.plot(ced["mm"], ced["fraction"], label=name, **(styles or {}).get(name, {}))
    for t in (2.5, 5, 10):
        ax.axvline(t, color="grey", lw=0.5, ls=":")
    ax.set(title=title or "cumulative error distribution", xlabel="landmark error (mm)",
           ylabel="fraction of landmarks", ylim=(0, 1.01), xlim=(0, limit_mm))
    ax.legend(fontsize=8)
    _save(fig, out)


def per_landmark_errors(errors: Dict[str, Sequence[float]], names: Sequence[str], out: PathLike) -> None:
    fig = Figure(figsize=(max(8, 0.22 * len(names) * len(errors)), 4.5))
    ax = fig.subplots()
    width = 0.8 / max(1, len(errors))
    x = np.arange(len(names))
    for i, (label, values) in enumerate(errors.items()):
        ax.bar(x + i * width, values, width, label=label)
    ax.set_xticks(x + width * (len(errors) - 1) / 2, names, rotation=90, fontsize=7)
    ax.set(title="mean error per landmark", ylabel="mm")
    ax.legend(fontsize=8)
    _save(fig, out)


def iou_curves(results: Dict[str, Dict], out: PathLike) -> None:
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    for name, r in results.items():
        ax.plot(r["iou_thresholds"], r["mean_iou"], "o-", ms=3, label=name)
    ax.set(title="mean IoU over landmarks", xlabel="threshold t", ylabel="IoU", ylim=(0, 1))
    ax.legend(fontsize=8)
    _save(fig, out)


def scan_picture(points: np.ndarray, predicted: np.ndarray, out: PathLike, truth: Optional[np.ndarray] = None,
                 title: str = "", names: Optional[Sequence[str]] = None, annotate: bool = True) -> None:
    """The scan seen from the front and from its right side, with predicted (and true)
    landmarks. The face's own frame (``face_frame``: eyes and mouth, of the true landmarks when
    given) sets the views, so a whole head is seen face-on; without iBUG names, the scan's
    principal axes do (the axis of least spread towards the viewer). ``annotate``: write the
    names beside the predicted landmarks."""
    centre = points.mean(0)
    frame = face_frame(truth if truth is not None else predicted, names)
    if frame is None:
        _, _, axes = np.linalg.svd(points - centre, full_matrices=False)
        frame = axes[[1, 0, 2]]  # rows: middle, largest, smallest spread
    fig = Figure(figsize=(11, 5.5))
    panels = fig.subplots(1, 2)
    views = (("front", (0, 1), 2), ("side", (2, 1), 0))  # (label, (horizontal, vertical) rows, depth row)
    for ax, (label, (u, v), depth) in zip(panels, views):
        p = (points - centre) @ frame.T
        ax.scatter(p[:, u], p[:, v], s=2, c=p[:, depth] * (1 if label == "front" else -1), cmap="Greys", alpha=0.6)
        if truth is not None:
            t = (truth - centre) @ frame.T
            ax.scatter(t[:, u], t[:, v], s=22, facecolors="none", edgecolors="tab:green", label="true")
        q = (predicted - centre) @ frame.T
        ax.scatter(q[:, u], q[:, v], s=14, c="tab:red", marker="x", label="predicted")
        if names is not None and annotate and label == "front":
            for (x, y), n in zip(q[:, [u, v]], names):
                ax.annotate(n, (x, y), fontsize=5, color="tab:red")
        ax.set_aspect("equal")
        ax.set_title(f"{title} ({label})" if title else label)
        ax.axis("off")
        ax.legend(fontsize=8, loc="lower right")
    _save(fig, out, dpi=120)
