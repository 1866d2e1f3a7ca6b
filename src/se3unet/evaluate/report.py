"""`se3unet evaluate`: the report's test matrix on a prepared split, with a baseline.

Conditions: the scans as prepared ("none": canonical pose, no perturbation), and for each
perturbation (rotation over SO(3), translation, both) the perturbed scans either realigned by
ICP to the reference face ("icp") or fed as they are ("raw"). Per condition: precision,
recall and F1 over thresholds (micro per scan, macro over scans), IoU per landmark over
thresholds, landmark errors in mm. Writes metrics.json (every number), summary.md (a table),
predictions.npz (every predicted and true landmark) and PNG plots into the report folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .. import plots
from ..atomic import write_atomically
from ..data.dataset import LandmarkDataset, collate, to_device
from ..data.landmark_files import is_unnamed
from ..data.prepare import MANIFEST
from ..data.reference import REFERENCE, ReferenceFace
from ..inference import Checkpoint, choose_device, decode, landmark_errors_mm, landmark_uncertainty, load_model
from ..inference.confidence import ConfidenceModel, confidence_for
from ..model import SE3Unet
from ..pretrained import pretrained_path
from .baseline import baseline_landmarks
from .metrics import (IOU_THRESHOLDS, THRESHOLDS, confidence_statistics, error_statistics, iou_per_landmark,
                      precision_recall_f1)

PERTURBATIONS = ("rotation", "translation", "both")


@dataclass(frozen=True)
class Condition:
    name: str
    rotate: bool
    translate: bool
    realign: bool


def test_matrix(preprocessing: Sequence[str] = ("none", "icp", "raw"),
                perturbations: Sequence[str] = PERTURBATIONS) -> List[Condition]:
    conditions = []
    if "none" in preprocessing:
        conditions.append(Condition("none", False, False, False))
    for p in perturbations:
        for prep in ("icp", "raw"):
            if prep in preprocessing:
                conditions.append(Condition(f"{prep} / {p}", p in ("rotation", "both"), p in ("translation", "both"),
                                            prep == "icp"))
    return conditions


def points_to_read(checkpoint: Checkpoint, manifest: Dict, cache: Path) -> Optional[int]:
    """How many of each cached scan's points the model reads: None for all of them; the first n
    (FPS-ordered, ``fewer_points``) when the model was trained on fewer. Scans with fewer points
    than the model reads are refused."""
    trained, cached = checkpoint.inference.scan.points, int(manifest["config"]["points"])
    if trained > cached:
        raise ValueError(f"{cache}: its scans have {cached} points, the model reads {trained}; "
                         f"prepare the data with --points {trained} or more")
    return trained if trained < cached else None


@dataclass(frozen=True)
class LandmarkMatch:
    """The landmarks scored: those the cache defines that the model predicts, matched by name."""

    names: List[str]
    model_columns: List[int]  # their outputs of the model
    cache_columns: List[int]  # their columns in the cache
    unscored: List[str]  # landmarks of the cache the model does not predict

    @classmethod
    def between(cls, model_names: Sequence[str], cache_names: Optional[Sequence[str]], cache: Path) -> "LandmarkMatch":
        if cache_names is None or is_unnamed(cache_names):  # files without names: the model's, in order
            cache_names = list(model_names)[:len(cache_names)] if cache_names else list(model_names)
        position = {name: i for i, name in enumerate(model_names)}
        pairs = [(name, position[name], j) for j, name in enumerate(cache_names) if name in position]
        if not pairs:
            raise ValueError(f"{cache}: none of its landmarks ({', '.join(cache_names[:5])}, ...) is among the "
                             f"model's ({', '.join(model_names[:5])}, ...)")
        names, model_columns, cache_columns = (list(column) for column in zip(*pairs))
        return cls(names, model_columns, cache_columns, [n for n in cache_names if n not in position])

    def describe(self) -> str:
        text = f"{len(self.names)} landmarks scored ({', '.join(self.names)})"
        return text + (f"; the model does not predict {', '.join(self.unscored)}" if self.unscored else "")


@torch.no_grad()
def evaluate_condition(model: SE3Unet, checkpoint: Checkpoint, cache: Path, split: str, condition: Condition,
                       translation: float, batch_size: int, baseline: bool, seed: int, limit: Optional[int],
                       progress, match: LandmarkMatch, num_points: Optional[int] = None,
                       device: torch.device = torch.device("cpu"), labels: Optional[Tuple[float, float]] = None,
                       trust: Optional[ConfidenceModel] = None) -> Dict[str, object]:
    scan, decoding = checkpoint.inference.scan, checkpoint.inference.decoding
    sigma, threshold = labels or (scan.sigma, scan.threshold)
    # The hierarchy is built from each posed scan, as it would be for a user's scan.
    dataset = LandmarkDataset(cache, split, sigma, threshold, rotate=condition.rotate,
                              translation=translation if condition.translate else 0.0, realign=condition.realign,
                              hierarchy=model.hierarchy, seed=seed, fixed_pose=True, rebuild_hierarchy=True,
                              num_points=num_points)
    reference = ReferenceFace.load(cache / REFERENCE) if baseline else None
    count = len(dataset) if limit is None else min(limit, len(dataset))
    heat_all, labels_all, target_all, errors, base_errors, examples = [], [], [], [], [], []
    predicted_mm, true_mm, indices, rotations, translations_mm, uncertainty_mm = [], [], [], [], [], []
    for start in progress(range(0, count, batch_size), desc=condition.name):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, count))])
        # the landmarks scored, in the model's order: [B, K, 3] landmarks, [B, N, K] heatmaps and labels
        batch["landmarks"] = batch["landmarks"][:, match.cache_columns]
        for key in ("heatmaps", "labels"):
            batch[key] = batch[key][..., match.cache_columns]
        on_device = to_device(batch, device)
        logits, offsets = model(on_device["points"], on_device["hierarchy"],
                                normals=on_device["normals"] if model.config.normals else None, with_offsets=True)
        heat, predicted = decode(logits.cpu(), batch["points"], decoding,  # metrics and plots on the CPU
                                 None if offsets is None else offsets.cpu())
        votes = None if offsets is None or decoding.landmarks != "offset_vote" else offsets.cpu()
        uncertainty = landmark_uncertainty(batch["points"], heat, predicted, votes, decoding.fraction)
        heat, predicted = heat[..., match.model_columns], predicted[:, match.model_columns]
        errors.append(landmark_errors_mm(predicted, batch["landmarks"], batch["scale"]))
        uncertainty_mm.append(uncertainty * batch["scale"].view(-1, 1))  # every landmark of the model: what it calibrates
        mm = batch["scale"].view(-1, 1, 1)
        predicted_mm.append(predicted * mm)
        true_mm.append(batch["landmarks"] * mm)
        indices.append(batch["index"])
        rotations.append(batch["rotation"])
        translations_mm.append(batch["translation"] * mm[:, 0])
        heat_all.append(heat)
        labels_all.append(batch["labels"])
        target_all.append(batch["heatmaps"])
        if reference is not None:
            guess = np.stack([baseline_landmarks(p.numpy(), reference, seed=int(i))[match.cache_columns]
                              for p, i in zip(batch["points"], batch["index"])])
            base_errors.append(landmark_errors_mm(torch.from_numpy(guess).float(), batch["landmarks"], batch["scale"]))
        if len(examples) < 3:
            examples.append((batch["points"][0].numpy(), predicted[0].numpy(), batch["landmarks"][0].numpy(),
                             float(batch["scale"][0])))
    heat, labels, target = torch.cat(heat_all), torch.cat(labels_all), torch.cat(target_all)
    prf = precision_recall_f1(heat, labels, THRESHOLDS)
    iou = iou_per_landmark(heat, target, IOU_THRESHOLDS)
    result = {
        "scans": count,
        "thresholds": list(THRESHOLDS), **{k: v.tolist() for k, v in prf.items()},
        "iou_thresholds": list(IOU_THRESHOLDS), "iou_per_landmark": iou.tolist(),
        "mean_iou": np.nanmean(iou, axis=1).tolist(),
        "error": error_statistics(torch.cat(errors).numpy()),
    }
    uncertain = torch.cat(uncertainty_mm).numpy().astype(np.float64)
    if trust is not None:  # the checkpoint's own calibration, for a single reading of each scan
        confidence = trust.one_pass(uncertain)[:, match.model_columns]
        result["confidence"] = confidence_statistics(confidence, torch.cat(errors).numpy())
    uncertain = uncertain[:, match.model_columns]
    if base_errors:
        result["baseline_error"] = error_statistics(torch.cat(base_errors).numpy())
    result["_examples"] = examples
    result["_predictions"] = {"predicted_mm": torch.cat(predicted_mm).numpy().astype(np.float32),
                              "true_mm": torch.cat(true_mm).numpy().astype(np.float32),
                              "scan": torch.cat(indices).numpy(), "rotation": torch.cat(rotations).numpy(),
                              "translation_mm": torch.cat(translations_mm).numpy(),
                              "uncertainty_mm": uncertain.astype(np.float32)}
    if trust is not None:
        result["_predictions"]["confidence_mm"] = confidence.astype(np.float32)
    return result


def prediction_key(condition: str) -> str:
    """predictions.npz's key prefix for a condition: "raw / both" -> "raw_both"."""
    return condition.replace(" / ", "_")


def write_predictions(path: Path, predictions: Dict[str, Dict[str, np.ndarray]], names: Sequence[str]) -> None:
    """predictions.npz: per condition, ``KEY.predicted_mm`` and ``KEY.true_mm`` [scans, landmarks, 3]
    in mm, in the frame of the scan as the model read it, ``KEY.rotation`` [scans, 3, 3] and
    ``KEY.translation_mm`` [scans, 3], the rigid motion from the prepared scan to that frame
    (x -> R x + t; ICP's realignment included), and ``KEY.scan`` the scans' indices in the split;
    ``landmark_names`` and ``conditions`` beside them."""
    arrays = {"landmark_names": np.array(names), "conditions": np.array(list(predictions))}
    for condition, values in predictions.items():
        arrays.update({f"{prediction_key(condition)}.{k}": v for k, v in values.items()})
    write_atomically(path, lambda f: np.savez_compressed(f, **arrays))


def summary_table(results: Dict[str, Dict]) -> str:
    i5, t2 = THRESHOLDS.index(0.5), IOU_THRESHOLDS.index(0.2)
    trusted = any("confidence" in r for r in results.values())
    head = "| condition | scans | F1@0.5 | best F1 | mean IoU@0.2 | error mm (mean ± std) | <= 2.5 mm | <= 5 mm | baseline mm |"
    rule = "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    if trusted:  # how well each landmark's confidence (its likely error) tells good from bad
        head += " confidence vs error (Spearman) | 90% most confident mm |"
        rule += " --- | --- |"
    lines = [head, rule]
    for name, r in results.items():
        e = r["error"]
        base = f"{r['baseline_error']['mean_mm']:.2f}" if "baseline_error" in r else "-"
        line = (f"| {name} | {r['scans']} | {r['f1'][i5]:.3f} | {max(r['f1']):.3f} | {r['mean_iou'][t2]:.3f} | "
                f"{e['mean_mm']:.2f} ± {e['std_mm']:.2f} | {e['success_rate']['2.5mm']:.1%} | "
                f"{e['success_rate']['5mm']:.1%} | {base} |")
        if trusted:
            c = r.get("confidence")
            line += (f" {c['spearman']:.2f} | {c['error_most_confident_90_mm']:.2f} |" if c else " - | - |")
        lines.append(line)
    return "\n".join(lines)


def write_report_page(output: Path, checkpoint, cache: Path, split: str, table: str, scored: str, condition: str,
                      examples: Sequence[Tuple], names: Sequence[str]) -> Path:
    """report.html: the table, the plots, and example test scans (in mm) to turn around, each
    predicted landmark coloured by its error and joined to the true one."""
    import html

    from ..pages import figure_html, markdown_table_html, scan_figure, write_page

    views = []
    for i, (points, predicted, truth, scale) in enumerate(examples):
        figure = scan_figure(points * scale, None, predicted * scale, names, truth=truth * scale)
        figure.update_layout(title=f"test scan {i}, {condition}")
        views.append(figure_html(figure))
    plots_html = "".join(f'<img src="{name}" alt="{name}">' for name in
                         ("ced.png", "per_landmark.png", "precision_recall.png", "iou.png") if (output / name).is_file())
    body = (f"<p class=\"note\">{html.escape(split)} split of {html.escape(str(cache))}; model "
            f"{html.escape(str(checkpoint))}. {html.escape(scored)}</p>\n{markdown_table_html(table)}\n"
            f"<h2>Example test scans ({html.escape(condition)})</h2>\n{''.join(views)}\n<h2>Plots</h2>\n{plots_html}")
    return write_page(output / "report.html", "se3unet evaluation", body)


def evaluate(checkpoint, cache, output, split: str = "test", preprocessing: Sequence[str] = ("none", "icp", "raw"),
             perturbations: Sequence[str] = PERTURBATIONS, translation: float = 1.0, batch_size: int = 4,
             baseline: Sequence[str] = (), seed: int = 1234, limit: Optional[int] = None,
             progress: bool = True, device: str = "cpu", sigma: Optional[float] = None,
             threshold: Optional[float] = None) -> Dict[str, object]:
    """Runs every condition; ``baseline`` names the conditions that also get the ICP
    mean-face baseline (it costs an ICP per scan). ``checkpoint`` None: the shipped model.
    ``sigma``, ``threshold``: the heatmaps and labels the scores are against (default: those the
    model trained on; one setting for every model makes their F1 and IoU comparable)."""
    from tqdm import tqdm

    def bar(iterable, desc):
        return tqdm(iterable, desc=desc, disable=not progress, leave=False)

    cache, output = Path(cache), Path(output)
    conditions = test_matrix(preprocessing, perturbations)
    if baseline or any(c.realign for c in conditions):  # a damaged file fails now, not after hours of work
        ReferenceFace.load(cache / REFERENCE)
    checkpoint = pretrained_path() if checkpoint is None else checkpoint
    output.mkdir(parents=True, exist_ok=True)
    device = choose_device(device)
    model, saved = load_model(checkpoint, device)
    trust = confidence_for(checkpoint)
    if trust is not None and len(trust.one_pass.scale_mm) != len(saved.inference.landmark_names):
        trust = None
    manifest = json.loads((cache / MANIFEST).read_text())
    num_points = points_to_read(saved, manifest, cache)
    match = LandmarkMatch.between(saved.inference.landmark_names, manifest.get("landmark_names"), cache)
    names = match.names
    scan = saved.inference.scan
    labels = (scan.sigma if sigma is None else sigma, scan.threshold if threshold is None else threshold)
    results = {}
    for condition in conditions:
        results[condition.name] = evaluate_condition(model, saved, cache, split, condition, translation, batch_size,
                                                     condition.name in baseline or "all" in baseline, seed, limit, bar,
                                                     match, num_points, device, labels, trust)
    examples = {name: r.pop("_examples") for name, r in results.items()}
    write_predictions(output / "predictions.npz", {name: r.pop("_predictions") for name, r in results.items()}, names)

    plots.pr_curves(results, output / "precision_recall.png")
    plots.iou_curves(results, output / "iou.png")
    curves = {name: r["error"]["ced"] for name, r in results.items()}
    curves.update({f"baseline, {name}": r["baseline_error"]["ced"] for name, r in results.items() if "baseline_error" in r})
    plots.ced_curves(curves, output / "ced.png")
    main = next(reversed(results))
    per_landmark = {f"model, {main}": results[main]["error"]["per_landmark_mm"]}
    if "baseline_error" in results[main]:
        per_landmark[f"baseline, {main}"] = results[main]["baseline_error"]["per_landmark_mm"]
    plots.per_landmark_errors(per_landmark, names, output / "per_landmark.png")
    for i, (points, predicted, truth, _) in enumerate(examples[main]):
        plots.scan_picture(points, predicted, output / f"example_{i}.png", truth, title=f"test scan {i}, {main}",
                           names=names, annotate=False)

    points = f"the first {num_points} of each scan's {manifest['config']['points']} points (FPS order)" \
        if num_points else f"all {manifest['config']['points']} points of each scan"
    scored = f"Scored: {match.describe()}. The model reads {points}."
    report = {"checkpoint": str(checkpoint), "cache": str(cache), "split": split, "translation": translation,
              "sigma": labels[0], "label_threshold": labels[1],
              "landmark_names": names, "unscored_landmarks": match.unscored, "points": points,
              "conditions": results}
    (output / "metrics.json").write_text(json.dumps(report, indent=1))
    table = summary_table(results)
    decoding = saved.inference.decoding
    rule = "offset vote of the points" if decoding.landmarks == "offset_vote" else "heatmap-weighted mean of the points"
    (output / "summary.md").write_text(
        f"# Evaluation of {checkpoint}\n\n{split} split of {cache}; translations up to {translation} units; "
        f"heatmaps at sigma {labels[0]:g}, labels where they reach {labels[1]:g}; "
        f"landmark = {rule} >= {decoding.fraction} x peak; baseline = reference face aligned by ICP.\n\n"
        f"{scored}\n\n{table}\n\n"
        f"Plots: precision_recall.png, iou.png, ced.png, per_landmark.png, example_*.png; report.html to turn the "
        f"examples around; predictions.npz: every predicted and true landmark in mm, per condition\n")
    write_report_page(output, checkpoint, cache, split, table, scored, main, examples[main], names)
    return {"report": str(output), "table": table, "scored": match.describe(), "conditions": results}
