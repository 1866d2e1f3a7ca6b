"""How much what surrounds a face moves the shipped model's landmarks: unseen ICT identities
(seed 777, neutral) as whole heads and as their own face crops, predicted by `se3unet.predict`
with the bundled weights; prints the mean distance between the two predictions and each one's
error (docs/model-card.md, "Limits"). Needs SE3UNET_ICT_DIR.

    python experiments/head_vs_face.py [IDENTITIES] [SAMPLINGS]
"""

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from se3unet.data.ict import IctFaceModel
from se3unet.data.sources import IctFaceSource
from se3unet.locate import LocateSettings
from se3unet.predict import predict


def write_used_obj(path: Path, vertices: np.ndarray, triangles: np.ndarray) -> None:
    """An OBJ of the vertices the triangles use (a region's crop drops the rest)."""
    used = np.unique(triangles)
    index = np.full(len(vertices), -1)
    index[used] = np.arange(len(used))
    lines = [f"v {x} {y} {z}" for x, y, z in vertices[used]] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in index[triangles]]
    path.write_text("\n".join(lines) + "\n")


def main(identities: int, samplings: int) -> None:
    model, folder = IctFaceModel(), Path(tempfile.mkdtemp())
    apart, errors = [], {"head": [], "face": []}
    for subject in range(identities):
        truth = {}
        for region in ("head", "face"):
            raw = IctFaceSource(model, subjects=identities, seed=777, region=region).load((subject, 0))
            write_used_obj(folder / f"{region}{subject}.obj", raw.surface.vertices, raw.surface.triangles)
            truth[region] = raw.landmarks
        predict([str(folder / f"{r}{subject}.obj") for r in ("head", "face")], None, str(folder / "out"), fmt="json",
                picture=False, locating=LocateSettings(samplings=samplings))
        found = {r: np.array(list(json.loads((folder / "out" / f"{r}{subject}.landmarks.json").read_text())
                                  ["landmarks"].values())) for r in ("head", "face")}
        apart.append(np.linalg.norm(found["head"] - found["face"], axis=1).mean())
        for r in found:
            errors[r].append(np.linalg.norm(found[r] - truth[r], axis=1).mean())
    print(f"{samplings} samplings: head vs its face crop, mean over 68 landmarks: {np.mean(apart):.2f} mm (per identity "
          f"{', '.join(f'{a:.2f}' for a in apart)}); error on heads {np.mean(errors['head']):.2f} mm, "
          f"on face crops {np.mean(errors['face']):.2f} mm")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 6, int(sys.argv[2]) if len(sys.argv) > 2 else LocateSettings.samplings)
