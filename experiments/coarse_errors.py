"""The coarse model's own error, per landmark, as the refiner (issue 37) is trained to undo it:
predict's path (se3unet.locate: face found, cropped, samplings averaged) with the shipped model on
ICT faces, ICT whole heads and Surrey faces of a seed that neither training (2025) nor evaluation
(777) uses, each in a random pose; the error vectors are turned back into the face model's own
frame, so a training crop can be displaced by them on any face.

    python experiments/coarse_errors.py --seed 555 --identities 20 --samplings 8 \\
        --output experiments/results/refiner/coarse-errors-555.npz
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from confidence import faces, posed  # noqa: E402  (the same faces and poses as the confidence study)

from se3unet.atomic import write_atomically  # noqa: E402
from se3unet.inference import load_model  # noqa: E402
from se3unet.locate import LandmarkReader, LocateSettings, locate  # noqa: E402
from se3unet.predict import surface_input  # noqa: E402
from se3unet.pretrained import pretrained_path  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=555)
    parser.add_argument("--identities", type=int, default=20, help="of each kind (ICT face, ICT head, Surrey face)")
    parser.add_argument("--samplings", type=int, default=8)
    parser.add_argument("--checkpoint", help="the coarse model (default: the shipped one)")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, checkpoint = load_model(args.checkpoint or pretrained_path())
    read = LandmarkReader(model, checkpoint.inference, torch.device("cpu"))
    names = checkpoint.inference.landmark_names
    rng = np.random.default_rng(args.seed)
    kinds, errors = [], []
    for kind, surface, truth in tqdm(list(faces(args.seed, args.identities, names)), desc="coarse errors"):
        moved, rotation, shift = posed(surface, rng)
        first = surface_input(moved, Path(kind), checkpoint.inference.scan)
        found = locate(moved, Path(kind), first, read, LocateSettings(samplings=args.samplings))
        kinds.append(kind)
        errors.append((found - shift) @ rotation - truth)  # in the face model's frame; NaN where undefined
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(output, lambda f: np.savez(f, kind=np.array(kinds), error=np.stack(errors),
                                                 names=np.array(names), samplings=args.samplings))
    norms = np.linalg.norm(np.stack(errors), axis=2)
    for kind in dict.fromkeys(kinds):
        rows = norms[np.array(kinds) == kind]
        print(f"{kind}: {np.nanmean(rows):.2f} mm over {len(rows)} scans")


if __name__ == "__main__":
    main()
