"""A landmark set the shipped model never predicted, defined on the ICT Face Model's vertices:
head, ear and cheekbone points of anthropometry, each found once on the neutral head by a
geometric rule and kept as a vertex index (experiments/results/finetune/landmark_set.json), so
every ICT head carries them exactly as it carries its 68 iBUG landmarks.

    SE3UNET_ICT_DIR=../shared/data/ict python experiments/landmark_set.py

Writes the set, a picture (docs/images/landmark-set.png) and, per landmark, its distance to the
nearest iBUG landmark over 50 random heads (the issue asks for at least four 25 mm or more away).
Axes of the ICT head: x to the subject's left, y up, z forward.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from se3unet.data.ict import IctFaceModel

OUT = Path("experiments/results/finetune")
PICTURE = Path("docs/images/landmark-set.png")


def nearest(v: np.ndarray, mask: np.ndarray, score: np.ndarray) -> int:
    """The vertex of ``mask`` with the highest ``score``."""
    candidates = np.flatnonzero(mask)
    return int(candidates[np.argmax(score[candidates])])


def define(model: IctFaceModel) -> dict:
    v, ibug = model.neutral, model.landmarks(model.neutral)
    x, y, z = v.T
    nasion, jaw_top = ibug[27], ibug[16]  # jaw_top: the jawline's end beside the left ear
    midline = np.abs(x) < 2.0
    found = {
        "vertex": nearest(v, midline, y),  # top of the head
        "opisthocranion": nearest(v, midline & (y > nasion[1] - 10), -z),  # back of the head
        "metopion": nearest(v, midline & (np.abs(y - (nasion[1] + 45)) < 3), z),  # forehead, 45 mm above nasion
        "glabella": nearest(v, midline & (np.abs(y - (nasion[1] + 10)) < 2), z),  # between the brows
    }
    for side, sign in (("left", 1.0), ("right", -1.0)):
        lateral = sign * x
        # The ear stands out of the skull: wider than 80 mm from the midline behind the jaw (its
        # widest points lie at z -20..10, y -10..38 on the neutral head; the skull reaches 79).
        ear = (lateral > 80) & (z > -25) & (z < 15) & (y > -20) & (y < 45)
        found[f"euryon_{side}"] = nearest(v, (y > jaw_top[1] + 30) & (np.abs(z - jaw_top[2] + 30) < 30), lateral)
        found[f"superaurale_{side}"] = nearest(v, ear, y)  # top of the ear
        found[f"subaurale_{side}"] = nearest(v, ear, -y)  # bottom of the ear lobe
        found[f"tragion_{side}"] = nearest(v, (lateral > 76) & (y > 10) & (y < 22) & (z < 20), z)  # the ear's front
        found[f"zygion_{side}"] = nearest(  # the cheekbone's widest point, in front of the ear
            v, (np.arange(len(v)) < model.face_vertices) & (y > 20) & (y < 35) & (z > 30), lateral)
    return found


def main() -> None:
    model = IctFaceModel()
    found = define(model)
    rng = np.random.default_rng(5)
    distances = []
    for _ in range(50):
        v = model.vertices(rng.standard_normal(model.num_identities))
        ibug = model.landmarks(v)
        points = v[list(found.values())]
        distances.append(np.linalg.norm(points[:, None] - ibug[None], axis=-1).min(axis=1))
    distances = np.mean(distances, axis=0)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "landmark_set.json").write_text(json.dumps({
        "about": "vertex indices of the ICT Face Model (experiments/landmark_set.py); mm to the nearest iBUG "
                 "landmark, mean over 50 random heads",
        "vertices": found, "mm_to_nearest_ibug": {n: round(float(d), 1) for n, d in zip(found, distances)}},
        indent=1))
    for name, d in zip(found, distances):
        print(f"{name:20} vertex {found[name]:5d}  {d:5.1f} mm from the nearest iBUG landmark")
    print(f"{int((distances >= 25).sum())} of {len(found)} are 25 mm or more from every iBUG landmark")
    picture(model, found)


def picture(model: IctFaceModel, found: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v = model.neutral
    ibug = model.landmarks(v)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.5))
    for ax, (a, b, title) in zip(axes, ((0, 1, "front (x, y)"), (2, 1, "left side (z, y)"))):
        keep = v[:, 0] >= -1 if a == 2 else np.ones(len(v), bool)
        ax.scatter(v[keep, a], v[keep, b], s=0.2, c="0.75")
        ax.scatter(ibug[:, a], ibug[:, b], s=8, c="tab:blue", label="iBUG 68 (shipped model)")
        for name, index in found.items():
            if a == 2 and name.endswith("_right"):
                continue
            p = v[index]
            ax.scatter(p[a], p[b], s=30, c="tab:red")
            ax.annotate(name, (p[a], p[b]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_aspect("equal")
        ax.set_title(title)
        ax.axis("off")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle("The new landmark set (red) on the ICT neutral head")
    fig.tight_layout()
    PICTURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PICTURE, dpi=110)


if __name__ == "__main__":
    main()
