"""A PNG contact sheet of inputs beside their translations, for docs/ (not part of the package).

Pairs files by relative path between an input folder and the output folder ``translate infer``
wrote for it (outputs keep the input's name; a changed extension is matched by stem), takes the
first ``--n`` in sorted order, and lays them out as rows of (input, output) pairs.

    python scripts/example_sheet.py datasets/monet64/testB out/photo2monet docs/images/p2m.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from translate.io.images import IMAGE_EXTENSIONS, read_image, write_image  # noqa: E402


def pairs(inputs: Path, outputs: Path, n: int) -> list[tuple[Path, Path]]:
    by_stem = {p.relative_to(outputs).with_suffix(""): p for p in outputs.rglob("*")
               if p.suffix.lower() in IMAGE_EXTENSIONS}
    found = []
    for p in sorted(inputs.rglob("*")):
        key = p.relative_to(inputs).with_suffix("")
        if p.suffix.lower() in IMAGE_EXTENSIONS and key in by_stem:
            found.append((p, by_stem[key]))
    return found[:n]


def tensor(path: Path) -> torch.Tensor:
    """(3, H, W) float in [0, 1]; grayscale repeated to three channels."""
    img = read_image(path)
    x = torch.from_numpy(img.array.astype(np.float32) / (2**img.bit_depth - 1))
    return x.permute(2, 0, 1).expand(3, -1, -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", type=Path)
    ap.add_argument("outputs", type=Path)
    ap.add_argument("sheet", type=Path, help="PNG to write")
    ap.add_argument("--n", type=int, default=8, help="pairs on the sheet")
    ap.add_argument("--per-row", type=int, default=4, help="pairs per row")
    args = ap.parse_args()
    found = pairs(args.inputs, args.outputs, args.n)
    if not found:
        raise SystemExit(f"no input in {args.inputs} has an output in {args.outputs}")
    tiles = []
    for src, out in found:
        a, b = tensor(src), tensor(out)
        if a.shape != b.shape:
            raise SystemExit(f"{out} is {tuple(b.shape)}, its input {src} {tuple(a.shape)}")
        tiles += [a, b]
    h = max(t.shape[1] for t in tiles)
    w = max(t.shape[2] for t in tiles)
    tiles = [torch.nn.functional.pad(t, (0, w - t.shape[2], 0, h - t.shape[1]), value=1.0)
             for t in tiles]
    sheet = make_grid(torch.stack(tiles), nrow=2 * args.per_row, padding=2, pad_value=1.0)
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    write_image(args.sheet, sheet.permute(1, 2, 0).numpy())
    print(f"wrote {args.sheet} ({len(found)} pairs)")


if __name__ == "__main__":
    main()
