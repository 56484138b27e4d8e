"""A PNG contact sheet of inputs beside their translations, for docs/ (not part of the package).

Pairs files by relative path between an input folder and the output folder ``translate infer``
wrote for it (outputs keep the input's name; a changed extension is matched by stem), takes the
first ``--n`` in sorted order, and lays them out as rows of (input, output) pairs; with
``--truth DIR`` (paired data: the ground truth, matched the same way) as (input, output, truth)
triples.

    python scripts/example_sheet.py datasets/monet64/testB out/photo2monet docs/images/p2m.png
    python scripts/example_sheet.py datasets/edges2photo/testA out/e2p docs/images/e2p.png \
        --truth datasets/edges2photo/testB
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


def by_stem(folder: Path) -> dict[Path, Path]:
    return {p.relative_to(folder).with_suffix(""): p for p in folder.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS}


def pairs(inputs: Path, outputs: Path, n: int,
          truth: Path | None = None) -> list[tuple[Path, ...]]:
    """The first ``n`` inputs (sorted) with an output (and, given ``truth``, a ground truth)."""
    others = [by_stem(outputs)] + ([by_stem(truth)] if truth else [])
    found = []
    for p in sorted(inputs.rglob("*")):
        key = p.relative_to(inputs).with_suffix("")
        if p.suffix.lower() in IMAGE_EXTENSIONS and all(key in o for o in others):
            found.append((p, *(o[key] for o in others)))
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
    ap.add_argument("--truth", type=Path, help="ground-truth folder: a third image per input")
    args = ap.parse_args()
    found = pairs(args.inputs, args.outputs, args.n, args.truth)
    if not found:
        raise SystemExit(f"no input in {args.inputs} has an output in {args.outputs}"
                         + (f" and a ground truth in {args.truth}" if args.truth else ""))
    tiles = []
    for src, *rest in found:
        a = tensor(src)
        for path, t in ((p, tensor(p)) for p in rest):
            if a.shape != t.shape:
                raise SystemExit(f"{path} is {tuple(t.shape)}, its input {src} {tuple(a.shape)}")
        tiles += [a, *(tensor(p) for p in rest)]
    h = max(t.shape[1] for t in tiles)
    w = max(t.shape[2] for t in tiles)
    tiles = [torch.nn.functional.pad(t, (0, w - t.shape[2], 0, h - t.shape[1]), value=1.0)
             for t in tiles]
    sheet = make_grid(torch.stack(tiles), nrow=len(found[0]) * args.per_row, padding=2,
                      pad_value=1.0)
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    write_image(args.sheet, sheet.permute(1, 2, 0).numpy())
    print(f"wrote {args.sheet} ({len(found)} inputs)")


if __name__ == "__main__":
    main()
