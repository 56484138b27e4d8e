"""Write the package photos used to evaluate inpainting: centre square crops resized to 256 px.

Usage: python scripts/inpaint_eval_photos.py OUT_DIR [--size 256]

The photos install with scikit-image (astronaut, chelsea, coffee, rocket, the left motorcycle
view) and scikit-learn (china, flower); none of them is in the inpainting training data
(monet2photo/testB). Then, e.g.:

    translate eval RUN --images OUT_DIR --mask-preset thin --mask-preset medium --mask-preset thick
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from sklearn.datasets import load_sample_images

from translate.io.images import write_image


def photos() -> dict[str, np.ndarray]:
    """Name → (H, W, 3) uint8 RGB."""
    found = {name: getattr(skimage.data, name)() for name in
             ("astronaut", "chelsea", "coffee", "rocket")}
    found["motorcycle"] = skimage.data.stereo_motorcycle()[0]
    sklearn = load_sample_images()
    for path, image in zip(sklearn.filenames, sklearn.images, strict=True):
        found[Path(path).stem] = image
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    for name, rgb in photos().items():
        h, w = rgb.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = np.ascontiguousarray(rgb[top : top + side, left : left + side, :3])
        small = cv2.resize(square, (args.size, args.size), interpolation=cv2.INTER_AREA)
        write_image(args.out / f"{name}.png", small)
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
