"""How much of the gap between a Surrey face and the same face in a synthetic skull and neck is
sampling noise and how much is the surrounding surface: with the shipped weights, a sphere of
each radius around the true nose tip is sampled N times for the face alone (twice, with other
seeds: the noise floor) and for the face in the head (data/synthetic_head.py). The averaged
landmarks are compared over all 68 (and by region: which part of the face the head moves) and
over the 50 the Surrey face defines (its mesh ends at the chin: no jawline but iBUG 9), and each
one's error given. Unseen identities (seed 777), canonical pose (the model is equivariant).
Needs SE3UNET_SFM_DIR. Results: experiments/results/pretrained/sampling_floor.txt.

    python experiments/sampling_floor.py --samplings 8 32 --radius 100 110 120
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from se3unet.data.preprocess import crop_centre
from se3unet.data.sfm import SurreyFaceModel
from se3unet.data.sources import SurreyFaceSource
from se3unet.data.synthetic_head import embed_in_head
from se3unet.inference import load_model
from se3unet.locate import LandmarkReader, crop_input
from se3unet.pretrained import pretrained_path
from study_tables import REGIONS  # experiments/ is on the path when this script runs


def apart(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=1).mean())


def by_region(a: np.ndarray, b: np.ndarray, names) -> list:
    return [apart(a[rows], b[rows]) for rows in ([names.index(f"ibug{i}") for i in r] for r in REGIONS.values())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samplings", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--radius", type=float, nargs="+", default=[120.0])
    parser.add_argument("--identities", type=int, default=4)
    parser.add_argument("--checkpoint", help="the model to measure (default: the shipped one)")
    args = parser.parse_args()
    model, checkpoint = load_model(args.checkpoint or pretrained_path())
    read = LandmarkReader(model, checkpoint.inference, torch.device("cpu"))
    scan, names = checkpoint.inference.scan, checkpoint.inference.landmark_names
    source = SurreyFaceSource(SurreyFaceModel(), args.identities, seed=777)
    shared = [names.index(n) for n in source.landmark_names]
    for samplings in args.samplings:
        for radius in args.radius:
            rows, regions = [], []
            for subject in range(args.identities):
                raw = source.load((subject, 0))
                head, _ = embed_in_head(raw.surface)
                nose = crop_centre(raw.landmarks, source.landmark_names)

                def averaged(surface, first_seed):
                    inputs = [crop_input(surface, Path("face"), nose, radius, scan.points, scan.samples, seed)
                              for seed in range(first_seed, first_seed + samplings)]
                    return np.mean([r.landmarks for r in read(inputs)], axis=0)

                face, face_again, in_head = averaged(raw.surface, 0), averaged(raw.surface, 1000), averaged(head, 0)
                regions.append(by_region(face, in_head, names))
                rows.append((apart(face, face_again), apart(face, in_head), apart(face[shared], in_head[shared]),
                             apart(face[shared], raw.landmarks), apart(in_head[shared], raw.landmarks)))
            noise, gap, gap_defined, face_error, head_error = np.mean(rows, axis=0)
            print(f"{samplings} samplings, radius {radius:.0f} mm: face vs face (other samplings) {noise:.2f} mm, face vs "
                  f"face in head {gap:.2f} mm (" + ", ".join(f"{r} {g:.2f}" for r, g in zip(REGIONS, np.mean(regions, axis=0)))
                  + f"; over the {len(shared)} the Surrey face defines {gap_defined:.2f}); errors {face_error:.2f} / "
                  f"{head_error:.2f} mm", flush=True)


if __name__ == "__main__":
    main()
