"""How atlas transfer's votes should be weighted, chosen without the test heads: each of the N
training heads of experiments/finetune_curve.py placed by the other N - 1 (leave-one-out), the
votes fused with several `AtlasSettings.fit_temperature` values (0: equal votes).

    SE3UNET_ICT_DIR=../shared/data/ict python experiments/atlas_weighting.py --n 20

Reuses the curve's work folder (its heads and the shipped model's 68 on them; missing ones are
made) and writes experiments/results/finetune/atlas-weighting.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from finetune_curve import RESULTS, TRAIN_SEED, cached_predict, write_heads  # noqa: E402

from se3unet.atlas import Atlas, AtlasSettings, ScanCloud, fuse, register  # noqa: E402
from se3unet.data.ict import IctFaceModel  # noqa: E402
from se3unet.data.io import read_surface  # noqa: E402
from se3unet.locate import LocateSettings  # noqa: E402

TEMPERATURES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
_atlases, _clouds, _anchors = [], [], []


def _votes(held_out: int):
    """Every other atlas's votes and patch residuals on head ``held_out``."""
    placed = [register(a, _clouds[held_out], _anchors[held_out], AtlasSettings())
              for i, a in enumerate(_atlases) if i != held_out]
    return np.stack([p for p, _ in placed]), np.stack([r for _, r in placed])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--samplings", type=int, default=8)
    parser.add_argument("--work", default="cache/finetune-curve")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    work = Path(args.work)
    definition = json.loads((RESULTS / "landmark_set.json").read_text())["vertices"]
    names, vertices = list(definition), list(definition.values())
    paths, truth = write_heads(IctFaceModel(), work / "train-pool", TRAIN_SEED, args.n, True, names, vertices)
    found = cached_predict(paths, None, work / "shipped-train", LocateSettings(samplings=args.samplings),
                           [f"ibug{i + 1}" for i in range(68)])
    settings = AtlasSettings()
    for p in paths:
        _clouds.append(ScanCloud.of(read_surface(p), 1.0, settings))
        _anchors.append(found[p.stem])
        _atlases.append(Atlas(_clouds[-1], truth[p.stem], found[p.stem]))
    with Pool(args.workers) as pool:  # forked after the atlases are made: each worker reads them
        placed = list(tqdm(pool.imap(_votes, range(args.n)), total=args.n, desc="heads placed by the others"))
    rows = []
    for temperature in TEMPERATURES:
        errors = np.stack([np.linalg.norm(fuse(votes, residuals, temperature) - truth[p.stem], axis=1)
                           for p, (votes, residuals) in zip(paths, placed)])
        rows.append({"fit_temperature": temperature, "n": args.n, "mean_mm": float(errors.mean()),
                     "per_landmark": dict(zip(names, errors.mean(0).round(2).tolist()))})
        print(f"fit_temperature {temperature:4}: {errors.mean():.3f} mm (leave-one-out over {args.n} heads)")
    (RESULTS / "atlas-weighting.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
