"""The refiner's training crops (issue 37, se3unet.data.crops): the shipped model's training
identities and scanner effects (Surrey faces and ICT whole heads of seed 2025, two expressions,
noise 0.3 mm, holes, field of view, single views, uneven density), one crop per landmark centred
where the coarse model's own error (experiments/coarse_errors.py) would put it.

    python experiments/refiner_crops.py --errors experiments/results/refiner/coarse-errors-555.npz \\
        --subjects 120 --output cache/refiner/crops
"""

import argparse
from pathlib import Path

import numpy as np

from se3unet.data.crops import CropDataConfig, CropSettings, prepare_crops
from se3unet.data.prepare import PrepareConfig, make_source
from se3unet.data.preprocess import ScannerEffects

SHIPPED_EFFECTS = ScannerEffects(noise=0.3, holes=1, fov=0.7, view=0.3, density=0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--errors", required=True, help="coarse_errors.py's npz")
    parser.add_argument("--subjects", type=int, default=120, help="identities of each face model")
    parser.add_argument("--val-subjects", type=int, default=4, help="of each face model, the last ones")
    parser.add_argument("--radius", type=float, default=15.0)
    parser.add_argument("--points", type=int, default=512)
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    errors = np.load(args.errors)["error"]
    source = make_source(PrepareConfig(source="mixed", region="head", subjects=args.subjects, expressions=2,
                                       seed=2025))
    config = CropDataConfig(crop=CropSettings(args.radius, args.points, args.samples), scanner=SHIPPED_EFFECTS)
    # mixed subjects are "sfm-00012" / "ict-00012": the last val_subjects of each model validate
    last = {f"{kind}-{s:05d}" for kind in ("sfm", "ict") for s in range(args.subjects - args.val_subjects, args.subjects)}
    sizes = prepare_crops(source, config, errors, Path(args.output), last, seed=2025, workers=args.workers)
    print(sizes)


if __name__ == "__main__":
    main()
