"""`se3unet predict`: landmarks for scans in any pose, from a checkpoint alone."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..data.errors import DataError
from ..data.io import read_surface
from ..data.preprocess import estimate_normals, farthest_points, normalise, sample_surface
from ..train.distributed import choose_device
from ..train.losses import predicted_heatmaps
from .landmarks import landmarks_from_heatmaps
from .plots import scan_picture
from .report import load_model


def prepare_scan(path: Path, samples: int, points: int, needs_normals: bool, seed: int = 0):
    """The training preprocessing for one file: (unit points, normals, centre, scale). A cloud
    without normals gets estimated ones when the model reads normals."""
    surface = read_surface(path)
    rng = np.random.default_rng(seed)
    if surface.is_mesh:
        cloud, normals = sample_surface(surface.vertices, surface.triangles, samples, rng)
    else:
        cloud, normals = surface.vertices, surface.normals
        if len(cloud) > samples:
            keep = rng.choice(len(cloud), samples, replace=False)
            cloud, normals = cloud[keep], None if normals is None else normals[keep]
    if len(cloud) < points:
        raise DataError(path, f"has {len(cloud)} points; the model needs at least {points}")
    keep = farthest_points(cloud, points)
    unit, centre, scale = normalise(cloud[keep])
    if normals is None and needs_normals:
        normals = estimate_normals(cloud)  # on the dense cloud, then kept with its points
    return unit, (normals[keep] if normals is not None else np.zeros_like(unit)), centre, scale


def write_landmarks(path: Path, landmarks: np.ndarray, names: Sequence[str], fmt: str, source: Path) -> None:
    if fmt == "json":
        path.write_text(json.dumps({"scan": str(source), "landmarks": {n: [float(v) for v in p] for n, p in zip(names, landmarks)}},
                                   indent=1))
    else:
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["landmark", "x", "y", "z"])
            writer.writerows([n, *(f"{v:.4f}" for v in p)] for n, p in zip(names, landmarks))


@torch.no_grad()
def predict(scans: Sequence[str], checkpoint: str, output: str, fmt: str = "csv", picture: bool = True,
            device: str = "auto") -> List[Dict[str, object]]:
    """Landmarks for each scan in its own coordinates; one result per scan, with ``error``
    set (and nothing written) for files that cannot be used."""
    device = choose_device(device)
    model, saved = load_model(checkpoint, device)
    data = saved.get("data_config", {})
    samples, points = int(data.get("samples", 8192)), int(data.get("points", 2048))
    loss_name = saved["experiment"]["loss"]["name"]
    names = saved.get("landmark_names") or [str(i + 1) for i in range(model.config.num_outputs)]
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for scan in scans:
        path = Path(scan)
        try:
            unit, normals, centre, scale = prepare_scan(path, samples, points, model.config.normals)
        except (DataError, ValueError) as error:
            results.append({"scan": str(path), "error": str(error)})
            continue
        x = torch.from_numpy(unit.astype(np.float32))[None].to(device)
        n = torch.from_numpy(normals.astype(np.float32))[None].to(device) if model.config.normals else None
        heat = predicted_heatmaps(loss_name, model(x, normals=n))
        landmarks_unit = landmarks_from_heatmaps(x, heat)[0].cpu().numpy().astype(np.float64)
        landmarks = landmarks_unit * scale + centre
        target = out / f"{path.stem}.landmarks.{fmt}"
        write_landmarks(target, landmarks, names, fmt, path)
        result = {"scan": str(path), "landmarks": str(target)}
        if picture:
            image = out / f"{path.stem}.png"
            scan_picture(unit * scale + centre, landmarks, image, title=path.name, names=names)
            result["picture"] = str(image)
        results.append(result)
    return results
