"""Which landmarks the refiner reads (issue 37): those whose mean error over the scans of a
refine_eval.py run on seed 555 (identities neither training nor evaluation uses) is lower
refined than coarse; written into the refiner file's settings (``landmarks``).

    python experiments/refine_choose.py runs/refiner/choose-555.json src/se3unet/pretrained/face68.refiner.pt
"""

import argparse
import json

import numpy as np
import torch

from se3unet.atomic import write_atomically
from se3unet.inference import load_model
from se3unet.pretrained import pretrained_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("measured", help="refine_eval.py's json (run with --all-landmarks)")
    parser.add_argument("refiner", help="the refiner file to update")
    parser.add_argument("--margin", type=float, default=0.0, help="mm: refine only where it gains at least this")
    args = parser.parse_args()
    rows = json.loads(open(args.measured).read())["rows"]
    coarse_key = next(k for k in rows[0] if k.startswith("coarse-"))
    refined_key = next(k for k in rows[0] if k.startswith("refined-"))
    coarse = np.nanmean(np.array([r[coarse_key] for r in rows], dtype=float), axis=0)
    refined = np.nanmean(np.array([r[refined_key] for r in rows], dtype=float), axis=0)
    names = load_model(pretrained_path())[1].inference.landmark_names
    chosen = [n for n, c, f in zip(names, coarse, refined) if f < c - args.margin]
    stored = torch.load(args.refiner, weights_only=True)
    stored["settings"]["landmarks"] = chosen
    write_atomically(args.refiner, lambda f: torch.save(stored, f))
    print(f"{len(chosen)} of {len(names)} landmarks refined: {' '.join(chosen)}")
    print(f"over those: coarse {np.mean([c for n, c in zip(names, coarse) if n in chosen]):.2f} mm, refined "
          f"{np.mean([f for n, f in zip(names, refined) if n in chosen]):.2f}")


if __name__ == "__main__":
    main()
