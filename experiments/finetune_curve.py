"""Issue 38's measured case: how well `se3unet finetune` learns a new landmark set
(experiments/landmark_set.py) from N annotated ICT heads, against two baselines fitted on the
same N heads from the 68 landmarks the shipped model predicts:

- linear: a ridge map from the predicted 68 (rigidly aligned to their mean shape) to the new
  landmarks in the same frame;
- template: the mean of the N heads' new landmarks in that frame, carried onto each scan by the
  similarity transform that fits the mean 68 to its predicted 68 (template transfer, as ALPACA).

Training heads: identities of seed 4242 (neither the shipped model's training seeds nor 777),
whole heads as OBJ meshes in random poses with a Slicer .mrk.json beside each holding only the
new landmarks (what a user hands over); `finetune` adds the shipped scanner effects. Test: 60
unseen identities of seed 777, whole heads in random poses, through `predict`.

    SE3UNET_ICT_DIR=../shared/data/ict python experiments/finetune_curve.py --n 5 20 --seeds 0 1
    ... --method network  (fine-tuning the network instead of atlas transfer)

Every stage's output is kept under --work, so an interrupted run resumes; the tables and the
plot go to experiments/results/finetune/.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
from scipy.spatial.transform import Rotation

from se3unet.data.ict import IctFaceModel
from se3unet.data.landmark_files import format_landmarks
from se3unet.data.sources import IctFaceSource
from se3unet.finetune import METHODS, atlas_finetune, finetune
from se3unet.inference import ReadSettings
from se3unet.locate import LocateSettings
from se3unet.predict import predict

RESULTS = Path("experiments/results/finetune")
TRAIN_SEED, TEST_SEED = 4242, 777


def write_heads(model, folder: Path, seed: int, count: int, with_files: bool, names: List[str],
                vertices: List[int]) -> List[Path]:
    """``count`` whole heads of identities ``seed`` as OBJ files in random poses, the new
    landmarks beside them (.mrk.json) when ``with_files``; returns the paths and the new
    landmarks by file stem."""
    folder.mkdir(parents=True, exist_ok=True)
    source = IctFaceSource(model, subjects=count, seed=seed, region="head")
    paths, truth = [], {}
    for subject in range(count):
        path = folder / f"head{subject:03d}.obj"
        raw = source.load((subject, 0))
        rng = np.random.default_rng([seed, subject, 99])
        rotation, shift = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix(), rng.uniform(-200, 200, 3)
        moved = raw.surface.vertices @ rotation.T + shift
        truth[path.stem] = (moved[vertices], raw.landmarks @ rotation.T + shift)  # new, iBUG
        if not path.is_file():
            lines = [f"v {a:.6f} {b:.6f} {c:.6f}" for a, b, c in moved]
            lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in raw.surface.triangles]
            path.write_text("\n".join(lines) + "\n")
            if with_files:
                (folder / f"{path.stem}.mrk.json").write_text(format_landmarks(names, moved[vertices], "mrk.json"))
        paths.append(path)
    return paths, {k: v[0] for k, v in truth.items()}


def read_predictions(results: List[Dict], names: List[str]) -> Dict[str, np.ndarray]:
    out = {}
    for r in results:
        if "landmarks" not in r:
            raise RuntimeError(f"{r['scan']}: {r.get('error')}")
        record = json.loads(Path(r["landmarks"]).read_text())["landmarks"]
        out[Path(r["scan"]).stem] = np.array([record[n] if record[n] is not None else [np.nan] * 3 for n in names],
                                             dtype=float)
    return out


def cached_predict(scans: List[Path], checkpoint, output: Path, locating: LocateSettings, names: List[str]):
    results = predict([str(s) for s in scans], checkpoint, str(output), fmt="json", picture=False, locating=locating,
                      progress=True, keep_no_face=True)
    return read_predictions(results, names)


def similarity(source: np.ndarray, target: np.ndarray, scale: bool = True):
    """(s, R, t) with s R source + t ~ target (Umeyama), over rows finite in both."""
    ok = np.isfinite(source).all(1) & np.isfinite(target).all(1)
    a, b = source[ok], target[ok]
    ma, mb = a.mean(0), b.mean(0)
    u, sigma, vt = np.linalg.svd((b - mb).T @ (a - ma))
    d = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
    r = u @ d @ vt
    s = (sigma * np.diag(d)).sum() / ((a - ma) ** 2).sum() if scale else 1.0
    return s, r, mb - s * r @ ma


def baselines(train68: np.ndarray, train_new: np.ndarray, test68: np.ndarray) -> Dict[str, np.ndarray]:
    """Both baselines' new landmarks for the test scans ([T, K, 3]), fitted on N training heads."""
    mean68 = train68[0].copy()
    for _ in range(5):  # generalised Procrustes: the mean shape of the predicted 68
        aligned = []
        for p in train68:
            s, r, t = similarity(p, mean68, scale=False)
            aligned.append(p @ r.T + t)
        mean68 = np.mean(aligned, axis=0)
    frames = [similarity(p, mean68, scale=False) for p in train68]
    x = np.stack([p @ r.T + t for p, (s, r, t) in zip(train68, frames)])
    y = np.stack([q @ r.T + t for q, (s, r, t) in zip(train_new, frames)])
    template = y.mean(0)
    out = {"template": [], "linear": []}
    xm, ym = x.reshape(len(x), -1).mean(0), y.reshape(len(y), -1).mean(0)
    X, Y = x.reshape(len(x), -1) - xm, y.reshape(len(y), -1) - ym
    lam = _ridge_lambda(X, Y)
    weights = np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ Y)
    for p in test68:
        s, r, t = similarity(mean68, p)  # template: the mean 68 (with its new landmarks) onto the scan
        out["template"].append(s * template @ r.T + t)
        s, r, t = similarity(p, mean68, scale=False)  # linear: in the mean frame, then back
        q = ((p @ r.T + t).reshape(-1) - xm) @ weights + ym
        out["linear"].append((q.reshape(-1, 3) - t) @ r)
    return {k: np.stack(v) for k, v in out.items()}


def _ridge_lambda(X: np.ndarray, Y: np.ndarray) -> float:
    """The ridge weight with the least leave-one-out error, over a grid."""
    best, chosen = np.inf, 1.0
    for lam in 10.0 ** np.arange(0, 7):
        errors = []
        for i in range(len(X)):
            keep = np.arange(len(X)) != i
            w = np.linalg.solve(X[keep].T @ X[keep] + lam * np.eye(X.shape[1]), X[keep].T @ Y[keep])
            errors.append(np.linalg.norm(X[i] @ w - Y[i]))
        if np.mean(errors) < best:
            best, chosen = float(np.mean(errors)), float(lam)
    return chosen


def errors_mm(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(predicted - truth, axis=-1)  # [T, K]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--test", type=int, default=60)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--samplings", type=int, default=8, help="predict's samplings (shipped and fine-tuned models alike)")
    parser.add_argument("--method", choices=METHODS, default="atlas", help="finetune's method")
    parser.add_argument("--freeze", default="none")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--crop-radius", type=float, default=0.0, help="mm; 0: the fine-tuned model reads whole scans")
    parser.add_argument("--new-landmarks", default="fresh")
    parser.add_argument("--work", default="cache/finetune-curve")
    parser.add_argument("--tag", default="")
    parser.add_argument("--results", default="curve.json", help="file name of the rows under experiments/results/finetune")
    args = parser.parse_args()
    work = Path(args.work)
    definition = json.loads((RESULTS / "landmark_set.json").read_text())["vertices"]
    names, vertices = list(definition), list(definition.values())
    model = IctFaceModel()
    pool = max(args.n)
    train_paths, train_truth = write_heads(model, work / "train-pool", TRAIN_SEED, pool, True, names, vertices)
    test_paths, truth = write_heads(model, work / "test", TEST_SEED, args.test, False, names, vertices)
    test_truth = np.stack([truth[p.stem] for p in test_paths])
    ibug = [f"ibug{i + 1}" for i in range(68)]
    shipped = LocateSettings(samplings=args.samplings)
    pred68_train = cached_predict(train_paths, None, work / "shipped-train", shipped, ibug)
    pred68_test = cached_predict(test_paths, None, work / "shipped-test", shipped, ibug)
    test68 = np.stack([pred68_test[p.stem] for p in test_paths])
    rows = []
    for n in args.n:
        folder = work / f"train-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        for path in train_paths[:n]:  # the first n heads of the pool: each N holds the smaller ones
            for suffix in (".obj", ".mrk.json"):
                link = folder / f"{path.stem}{suffix}"
                if not link.exists():
                    link.symlink_to((path.parent / f"{path.stem}{suffix}").resolve())
        train68 = np.stack([pred68_train[p.stem] for p in train_paths[:n]])
        train_new = np.stack([train_truth[p.stem] for p in train_paths[:n]])
        for method, found in baselines(train68, train_new, test68).items():
            e = errors_mm(found, test_truth)
            rows.append({"n": n, "seed": "-", "method": method, "mean_mm": float(e.mean()),
                         "per_landmark": dict(zip(names, e.mean(0).round(2).tolist()))})
        for seed in args.seeds:
            started = time.perf_counter()
            if args.method == "atlas":  # no training: the N heads become atlases (se3unet.atlas)
                out = work / f"atlas{args.tag}-{n}-seed{seed}"
                summary = atlas_finetune(str(folder), str(out), seed=seed, samplings=args.samplings, progress=True)
                summary["steps"], locating = 0, LocateSettings(samplings=args.samplings)
            else:
                out = work / f"finetune{args.tag}-{n}-seed{seed}"
                reading = ReadSettings(crop=args.crop_radius > 0, radius_mm=args.crop_radius or 120.0)
                summary = finetune(str(folder), str(out), steps=args.steps, seed=seed, freeze=args.freeze, lr=args.lr,
                                   new_landmarks=args.new_landmarks, reading=reading, progress=True)
                locating = LocateSettings(crop=reading.crop, radius_mm=reading.radius_mm, samplings=args.samplings)
            minutes = (time.perf_counter() - started) / 60
            predicting = time.perf_counter()
            found = cached_predict(test_paths, summary["checkpoint"], out / "predictions", locating, names)
            seconds_per_scan = (time.perf_counter() - predicting) / len(test_paths)
            e = errors_mm(np.stack([found[p.stem] for p in test_paths]), test_truth)
            method = f"{args.method if args.method == 'atlas' else 'finetune'}{args.tag}"
            rows.append({"n": n, "seed": seed, "method": method, "mean_mm": float(e.mean()),
                         "minutes": round(minutes, 1), "steps": summary["steps"],
                         "predict_s_per_scan": round(seconds_per_scan, 1),
                         "per_landmark": dict(zip(names, e.mean(0).round(2).tolist()))})
            print(rows[-1], flush=True)
            RESULTS.mkdir(parents=True, exist_ok=True)  # after every run: a stopped experiment keeps its rows
            (RESULTS / args.results).write_text(json.dumps(rows, indent=1))
    for r in rows:
        print(f"N={r['n']:4} seed={r['seed']!s:2} {r['method']:16} {r['mean_mm']:6.2f} mm "
              f"{r.get('minutes', '')}")


if __name__ == "__main__":
    main()
