"""The README's picture: `se3unet predict --html` (shipped weights) on an ICT Face Model head the
model never saw (seed 777), turned to a random pose, and a headless Chromium screenshot of its
page. Needs the ICT Face Model (SE3UNET_ICT_DIR) and Chromium (make browser).

    python experiments/page_picture.py docs/images/predict-page.png
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from se3unet.data.ict import IctFaceModel
from se3unet.data.sources import IctFaceSource

FLAGS = ["--headless=new", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def main(out: str) -> None:
    from playwright.sync_api import sync_playwright

    source = IctFaceSource(IctFaceModel(), subjects=1, expressions=2, seed=777, region="head")
    head = source.load((0, 1)).surface  # an unseen identity with an expression
    vertices = head.vertices @ Rotation.random(random_state=7).as_matrix().T + 25.0
    folder = Path(tempfile.mkdtemp())
    lines = [f"v {x:.4f} {y:.4f} {z:.4f}" for x, y, z in vertices] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in head.triangles]
    (folder / "head.obj").write_text("\n".join(lines) + "\n")
    subprocess.run(["se3unet", "predict", str(folder / "head.obj"), "--html", "--no-picture", "--output",
                    str(folder / "out")], check=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 900, "height": 760})
        page.goto((folder / "out" / "head.html").resolve().as_uri())
        page.wait_for_selector(".js-plotly-plot canvas")
        page.wait_for_timeout(1500)
        page.screenshot(path=out, clip={"x": 0, "y": 0, "width": 900, "height": 760})
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1])
