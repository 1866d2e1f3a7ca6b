"""What predict's face finding (se3unet.locate) does for scans larger than a face, with the
shipped weights on unseen identities (seed 777) in random poses:

- Surrey faces alone and embedded in a synthetic skull cap and neck (data/synthetic_head.py):
  how far apart the two predictions are, and each one's error; with --ict-surround also in an
  ICT head's own skull, ears and neck (embed_in_ict_head: the surround of a real head);
- ICT faces and ICT whole heads: the error in one pass over the whole scan and after locating.

Needs SE3UNET_SFM_DIR and SE3UNET_ICT_DIR. Prints one line per setting (docs/inference.md).

    python experiments/whole_head.py --radius 110 120 130 --samplings 4 --identities 4
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from se3unet.data.ict import IctFaceModel
from se3unet.data.io import Surface
from se3unet.data.sfm import SurreyFaceModel
from se3unet.data.sources import IctFaceSource, SurreyFaceSource
from se3unet.data.synthetic_head import embed_in_head, embed_in_ict_head
from se3unet.inference import load_model
from se3unet.locate import LandmarkReader, LocateSettings, locate
from se3unet.predict import surface_input
from se3unet.pretrained import pretrained_path


def posed(surface: Surface, rng: np.random.Generator):
    """The surface (only the vertices its triangles use) in a random pose, and the pose."""
    used = np.unique(surface.triangles)
    index = np.full(len(surface.vertices), -1)
    index[used] = np.arange(len(used))
    rotation, shift = Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix(), rng.normal(0, 100, 3)
    return Surface(surface.vertices[used] @ rotation.T + shift, index[surface.triangles]), rotation, shift


def landmarks(read, surface, settings, rng):
    """Predicted landmarks of the surface in a random pose, brought back to its own pose."""
    moved, rotation, shift = posed(surface, rng)
    first = surface_input(moved, Path("scan"), read.inference.scan)
    return (locate(moved, Path("scan"), first, read, settings) - shift) @ rotation


def error(found, truth):
    return float(np.linalg.norm(found - truth, axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--radius", type=float, nargs="+", default=[120.0], help="crop radii to compare (mm)")
    parser.add_argument("--samplings", type=int, default=LocateSettings.samplings)
    parser.add_argument("--identities", type=int, default=4)
    parser.add_argument("--checkpoint", help="the model to measure (default: the shipped one)")
    parser.add_argument("--ict-surround", action="store_true",
                        help="also each Surrey face in an ICT head's skull, ears and neck (another identity's)")
    args = parser.parse_args()
    model, checkpoint = load_model(args.checkpoint or pretrained_path())
    read = LandmarkReader(model, checkpoint.inference, torch.device("cpu"))
    names = checkpoint.inference.landmark_names
    sfm = SurreyFaceSource(SurreyFaceModel(), args.identities, seed=777)
    shared = [names.index(n) for n in sfm.landmark_names]
    ict = IctFaceModel()
    ict_heads = IctFaceSource(ict, args.identities, seed=778, region="head")  # not the identities measured below
    whole_scan = LocateSettings(crop=False)
    for radius in args.radius:
        settings, rng, start = LocateSettings(radius_mm=radius, samplings=args.samplings), np.random.default_rng(0), time.time()
        apart, face_errors, head_errors, shares, one_pass = [], [], [], [], []
        real = {"apart": [], "defined": [], "error": [], "share": []}
        for subject in range(args.identities):
            raw = sfm.load((subject, 0))
            head, share = embed_in_head(raw.surface)
            face_found, head_found = (landmarks(read, s, settings, rng) for s in (raw.surface, head))
            apart.append(error(face_found, head_found))
            face_errors.append(error(face_found[shared], raw.landmarks))
            head_errors.append(error(head_found[shared], raw.landmarks))
            shares.append(share)
            one_pass.append([error(landmarks(read, s, whole_scan, rng)[shared], raw.landmarks) for s in (raw.surface, head)])
            if args.ict_surround:
                truth = np.full((len(names), 3), np.nan)
                truth[shared] = raw.landmarks
                other = ict_heads.load((subject, 0))
                in_ict, share = embed_in_ict_head(raw.surface, truth, names, other.surface, other.landmarks, ict.face_vertices)
                found = landmarks(read, in_ict, settings, rng)
                real["apart"].append(error(face_found, found))
                real["defined"].append(error(face_found[shared], found[shared]))
                real["error"].append(error(found[shared], raw.landmarks))
                real["share"].append(share)
        ict_errors = {}
        for region in ("face", "head"):
            source = IctFaceSource(ict, args.identities, seed=777, region=region)
            raws = [source.load((s, 0)) for s in range(args.identities)]
            ict_errors[region] = [np.mean([error(landmarks(read, r.surface, how, rng), r.landmarks) for r in raws])
                                  for how in (whole_scan, settings)]
        print(f"radius {radius:.0f} mm, {args.samplings} samplings, {args.identities} identities: Surrey face vs the same "
              f"face in a synthetic head (face {np.mean(shares):.0%} of its surface) {np.mean(apart):.2f} mm apart "
              f"(at most {np.max(apart):.2f}), errors {np.mean(face_errors):.2f} / {np.mean(head_errors):.2f} mm "
              f"(one pass: {np.mean(one_pass, axis=0)[0]:.2f} / {np.mean(one_pass, axis=0)[1]:.2f}); "
              f"ICT faces {ict_errors['face'][0]:.2f} -> {ict_errors['face'][1]:.2f} mm, ICT heads "
              f"{ict_errors['head'][0]:.2f} -> {ict_errors['head'][1]:.2f} mm (one pass -> located); "
              f"{time.time() - start:.0f} s", flush=True)
        if args.ict_surround:
            print(f"radius {radius:.0f} mm: the same Surrey faces in an ICT head's skull, ears and neck (face "
                  f"{np.mean(real['share']):.0%} of its surface) {np.mean(real['apart']):.2f} mm from the face alone "
                  f"(at most {np.max(real['apart']):.2f}; over the {len(shared)} it defines {np.mean(real['defined']):.2f}), error {np.mean(real['error']):.2f} mm", flush=True)


if __name__ == "__main__":
    main()
