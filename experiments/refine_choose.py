"""How much of each landmark's refined place the refiner gives (issue 37): per landmark, the share
w in 0, 0.25, ..., 1 of w * refined + (1 - w) * coarse with the lowest mean error over the scans of
a refine_eval.py run on seed 555 (identities neither training nor evaluation uses; run it with
--all-landmarks); written into the refiner file's settings (``blend``; a share of 0 leaves the
landmark coarse and unread) with the crops per landmark of that reading (``samplings``).

    python experiments/refine_choose.py runs/refiner/choose-555.json src/se3unet/pretrained/face68.refiner.pt
"""

import argparse
import json

import numpy as np
import torch

from se3unet.atomic import write_atomically
from se3unet.inference import load_model
from se3unet.pretrained import pretrained_path

SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("measured", help="refine_eval.py's json (run with --all-landmarks)")
    parser.add_argument("refiner", help="the refiner file to update")
    parser.add_argument("--reading", help="which refined reading to choose by, e.g. 32x4 (default: the first)")
    args = parser.parse_args()
    rows = json.loads(open(args.measured).read())["rows"]
    refined_key = next(k for k in rows[0] if k.startswith(f"vectors-refined-{args.reading or ''}"))
    coarse_key = f"vectors-coarse-{refined_key.split('-')[-1].split('x')[0]}"
    coarse = np.array([r[coarse_key] for r in rows], dtype=float)  # [S, K, 3] error vectors
    refined = np.array([r[refined_key] for r in rows], dtype=float)
    errors = np.stack([np.nanmean(np.linalg.norm(w * refined + (1 - w) * coarse, axis=2), axis=0) for w in SHARES])
    best = np.nanargmin(np.where(np.isfinite(errors), errors, np.inf), axis=0)  # [K]
    names = load_model(pretrained_path())[1].inference.landmark_names
    blend = {n: SHARES[b] for n, b in zip(names, best) if SHARES[b] > 0}
    stored = torch.load(args.refiner, weights_only=True)
    stored["settings"]["blend"] = blend
    stored["settings"]["samplings"] = int(refined_key.split("x")[-1])  # the crops per landmark it was chosen with
    write_atomically(args.refiner, lambda f: torch.save(stored, f))
    chosen = errors[best, np.arange(len(names))]
    print(f"{len(blend)} of {len(names)} landmarks refined; shares: "
          + " ".join(f"{w:g}: {int((np.array(SHARES)[best] == w).sum())}" for w in SHARES))
    print(f"mean error on these scans: coarse {np.nanmean(errors[0]):.2f} mm, refined {np.nanmean(errors[-1]):.2f}, "
          f"blended {np.nanmean(chosen):.2f}")


if __name__ == "__main__":
    main()
