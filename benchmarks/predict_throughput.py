"""Scans per second of `se3unet predict` at 2048 points, from mesh files on disk.

Writes N face meshes (.obj; Surrey Face Model faces when its folder is found, else an
ellipsoid of about the same vertex count) and a checkpoint of the default model (random
weights: speed does not depend on them), then runs predict over them twice, with the picture
on and off, and prints scans per second and the time of each stage: reading, surface sampling,
FPS (with normalisation), normal estimation, the model (hierarchy, forward and decoding),
writing the landmarks and drawing the picture.

    python benchmarks/predict_throughput.py                 # 20 scans on the CPU
    python benchmarks/predict_throughput.py --device cuda   # the model on a GPU
    python benchmarks/predict_throughput.py --whole-scan    # one pass a scan, no crop (the model stage 1/34)

By default predict reads each face as se3unet.locate does (a first pass, a crop, 32 samplings
averaged: 34 passes of the model); --samplings and --whole-scan set that as predict's options do.

The last line is JSON: {"picture_on": {...}, "picture_off": {...}}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

STAGES = ("read", "sample", "fps", "normals", "model", "write", "picture")


def write_meshes(folder: Path, count: int, sfm_dir: str) -> str:
    import trimesh

    try:
        from se3unet.data.sfm import SurreyFaceModel

        sfm = SurreyFaceModel(sfm_dir)
        rng = np.random.default_rng(0)
        meshes = [(sfm.random_face(rng)[0], sfm.triangles) for _ in range(count)]
        what = "Surrey Face Model faces"
    except Exception:  # no SFM files here (a GPU machine): a face-sized ellipsoid instead
        sphere = trimesh.creation.icosphere(subdivisions=4)
        meshes = [(sphere.vertices * [80.0, 100.0, 60.0] * (1 + 0.01 * i), sphere.faces) for i in range(count)]
        what = "ellipsoids (no Surrey Face Model folder found)"
    for i, (vertices, triangles) in enumerate(meshes):
        trimesh.Trimesh(vertices=vertices, faces=triangles, process=False).export(folder / f"scan{i:03d}.obj")
    return f"{count} {what}, {len(meshes[0][0])} vertices each"


def write_checkpoint(path: Path, points: int) -> None:
    from se3unet.inference import Checkpoint, InferenceState, ScanSettings
    from se3unet.model import SE3Unet, preset

    torch.manual_seed(0)
    model = SE3Unet(preset("default"))
    names = [f"l{i}" for i in range(model.config.num_outputs)]
    Checkpoint(InferenceState(model.config.to_dict(), model.state_dict(), names, ScanSettings(points=points))).save(path)


def run(scans, checkpoint: Path, output: Path, picture: bool, device: str, locating) -> dict:
    from se3unet.predict import predict

    predict(scans[:1], str(checkpoint), str(output), picture=picture, device=device, locating=locating)  # warm-up
    timings = {}
    start = time.perf_counter()
    results = predict(scans, str(checkpoint), str(output), picture=picture, device=device, timings=timings,
                      locating=locating)
    total = time.perf_counter() - start
    failed = [r for r in results if "error" in r]
    if failed:
        raise RuntimeError(f"predict failed: {failed[0]}")
    return {"scans_per_second": len(scans) / total, "seconds": total,
            "stages": {s: timings.get(s, 0.0) / len(scans) for s in STAGES}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=20)
    parser.add_argument("--points", type=int, default=2048)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sfm-dir", default=None, help="Surrey Face Model folder (default: $SE3UNET_SFM_DIR)")
    parser.add_argument("--samplings", type=int, default=32, help="as predict's --samplings")
    parser.add_argument("--whole-scan", action="store_true", help="as predict's --whole-scan: one pass a scan")
    args = parser.parse_args()
    from se3unet.locate import LocateSettings

    locating = LocateSettings(crop=not args.whole_scan, samplings=args.samplings)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        what = write_meshes(folder, args.scans, args.sfm_dir)
        write_checkpoint(folder / "model.pt", args.points)
        scans = sorted(str(p) for p in folder.glob("scan*.obj"))
        results = {f"picture_{'on' if picture else 'off'}": run(scans, folder / "model.pt", folder / "out", picture,
                                                                 args.device, locating)
                   for picture in (True, False)}
    how = "whole scan, one pass" if args.whole_scan else f"located, {args.samplings} samplings"
    print(f"se3unet predict, default model, {args.points} points, {args.device}, {how}; {what}")
    print(f"{'picture':8} {'scans/s':>8} " + " ".join(f"{s:>8}" for s in STAGES) + "   (ms per scan)")
    for name, r in results.items():
        print(f"{name[8:]:8} {r['scans_per_second']:8.2f} " + " ".join(f"{1e3 * r['stages'][s]:8.1f}" for s in STAGES))
    print(json.dumps({k: {**v, "scans_per_second": round(v["scans_per_second"], 3),
                          "stages": {s: round(t, 5) for s, t in v["stages"].items()}} for k, v in results.items()}))


if __name__ == "__main__":
    main()
