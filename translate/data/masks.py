"""Hole masks for inpainting: a seedable free-form generator and a reader for mask files.

Masks are (H, W) ``uint8`` arrays with **1 = hole** and 0 = known pixel, everywhere in the project.

Generated masks follow LaMa's training masks (Suvorov et al. 2022, "Resolution-robust Large
Mask Inpainting with Fourier Convolutions", Sec. 3 and its ``random_{thin,medium,thick}``
generators): irregular strokes, each a polyline of a few segments drawn with a round brush,
plus optional rectangles. Sizes are given for a 256-pixel image and scale with
``min(H, W) / 256``. Every random choice comes from the ``numpy.random.Generator`` passed in, so
a seed gives the same mask anywhere. A draw whose hole fraction falls outside the preset's
documented range is redrawn (up to ``MAX_DRAWS`` times), so the ranges below hold:

==========  =========================================================  ================
preset      strokes (count, width, segment length at 256 px) + boxes   hole fraction
==========  =========================================================  ================
``thin``    6–24 strokes, 3–10 px, 10–50 px; no boxes                  0.03 – 0.25
``medium``  2–6 strokes, 10–30 px, 20–100 px; 0–2 boxes of 30–80 px     0.08 – 0.35
``thick``   1–4 strokes, 30–60 px, 30–160 px; 0–2 boxes of 50–120 px    0.20 – 0.55
==========  =========================================================  ================

Mask files: ``hole="white"`` means any nonzero value is a hole (LaMa's convention);
``hole="black"`` means 0 is a hole and any nonzero value is kept (e.g. PUT's masks, 255 = keep).
Files with several channels are accepted only when the encoding is clear: all colour channels
equal, and no transparency (an alpha channel must be fully opaque).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from translate.errors import TranslateError
from translate.io.images import DEFAULT_MAX_PIXELS, ImageReadError, read_image

HOLE_CONVENTIONS = ("white", "black")
MAX_DRAWS = 100
REFERENCE_SIZE = 256  # preset sizes are in pixels of a REFERENCE_SIZE image


@dataclass(frozen=True)
class MaskPreset:
    """A family of free-form masks. Pixel sizes are at ``REFERENCE_SIZE``; ranges inclusive.

    Attributes:
        strokes: (min, max) number of strokes.
        width: (min, max) brush width in pixels.
        length: (min, max) length of one stroke segment in pixels.
        segments: (min, max) segments per stroke (a polyline turning by random angles).
        boxes: (min, max) number of rectangles.
        box_size: (min, max) rectangle side in pixels.
        hole_fraction: (low, high) fraction of the image that is hole; draws outside are redone.
    """

    strokes: tuple[int, int]
    width: tuple[int, int]
    length: tuple[int, int]
    segments: tuple[int, int] = (1, 5)
    boxes: tuple[int, int] = (0, 0)
    box_size: tuple[int, int] = (0, 0)
    hole_fraction: tuple[float, float] = (0.0, 1.0)


PRESETS: dict[str, MaskPreset] = {
    "thin": MaskPreset(strokes=(6, 24), width=(3, 10), length=(10, 50),
                       hole_fraction=(0.03, 0.25)),
    "medium": MaskPreset(strokes=(2, 6), width=(10, 30), length=(20, 100), boxes=(0, 2),
                         box_size=(30, 80), hole_fraction=(0.08, 0.35)),
    "thick": MaskPreset(strokes=(1, 4), width=(30, 60), length=(30, 160), boxes=(0, 2),
                        box_size=(50, 120), hole_fraction=(0.20, 0.55)),
}


def _preset(name: str | MaskPreset) -> MaskPreset:
    if isinstance(name, MaskPreset):
        return name
    if name not in PRESETS:
        raise TranslateError(f"unknown mask preset {name!r}: one of {', '.join(PRESETS)}")
    return PRESETS[name]


def _draw(height: int, width: int, p: MaskPreset, rng: np.random.Generator,
          scale: float) -> np.ndarray:
    import cv2  # lazy: only mask drawing needs it here

    mask = np.zeros((height, width), np.uint8)

    def px(lo_hi: tuple[int, int]) -> int:  # a scaled size drawn uniformly from the range
        return max(1, round(float(rng.uniform(lo_hi[0], lo_hi[1])) * scale))

    for _ in range(int(rng.integers(p.strokes[0], p.strokes[1] + 1))):
        x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        angle = float(rng.uniform(0, 2 * math.pi))
        brush = px(p.width)
        for _ in range(int(rng.integers(p.segments[0], p.segments[1] + 1))):
            angle += float(rng.uniform(-math.pi / 2, math.pi / 2))  # a bend at each vertex
            length = px(p.length)
            nx = min(max(x + length * math.cos(angle), 0.0), width - 1.0)
            ny = min(max(y + length * math.sin(angle), 0.0), height - 1.0)
            cv2.line(mask, (round(x), round(y)), (round(nx), round(ny)), 1, brush)
            cv2.circle(mask, (round(nx), round(ny)), brush // 2, 1, -1)  # round joints
            x, y = nx, ny
    for _ in range(int(rng.integers(p.boxes[0], p.boxes[1] + 1))):
        bw, bh = min(px(p.box_size), width), min(px(p.box_size), height)
        left = int(rng.integers(0, width - bw + 1))
        top = int(rng.integers(0, height - bh + 1))
        mask[top : top + bh, left : left + bw] = 1
    return mask


def generate_mask(height: int, width: int, preset: str | MaskPreset,
                  rng: np.random.Generator, scale: float | None = None) -> np.ndarray:
    """A free-form hole mask (H, W) ``uint8``, 1 = hole, with its fraction in the preset's range.

    Args:
        height, width: mask size.
        preset: a name in :data:`PRESETS` or a :class:`MaskPreset`.
        rng: every random choice is drawn from it.
        scale: factor on the preset's pixel sizes; default ``min(height, width) / 256``. A
            training crop of a larger photo passes the photo's factor, so that its holes have
            the pixel sizes the whole photo's would have.

    Returns:
        The first of up to ``MAX_DRAWS`` draws whose hole fraction lies in
        ``preset.hole_fraction``; if none does (a preset that does not suit the size), the draw
        closest to the range.

    Raises:
        TranslateError: an unknown preset name.
    """
    p = _preset(preset)
    if height < 1 or width < 1:
        raise ValueError(f"mask size must be positive, got {height}x{width}")
    if scale is None:
        scale = min(height, width) / REFERENCE_SIZE
    low, high = p.hole_fraction
    best, best_gap = None, math.inf
    for _ in range(MAX_DRAWS):
        mask = _draw(height, width, p, rng, scale)
        fraction = float(mask.mean())
        gap = max(low - fraction, fraction - high, 0.0)
        if gap == 0.0:
            return mask
        if gap < best_gap:
            best, best_gap = mask, gap
    return best


def load_mask(path: str | os.PathLike, hole: str = "white",
              max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a mask file as (H, W) ``uint8`` with 1 = hole.

    Args:
        path: any image format ``translate.io.images.read_image`` reads (8 or 16 bit).
        hole: ``"white"``: nonzero is a hole (LaMa); ``"black"``: zero is a hole.
        max_pixels: refuse larger files.

    Raises:
        ImageReadError: the file cannot be read, or its channels do not say clearly which
            pixels are holes (colour channels that differ, or transparency); names the file.
        TranslateError: an unknown ``hole`` convention.
    """
    if hole not in HOLE_CONVENTIONS:
        raise TranslateError(f"unknown hole convention {hole!r}: one of white, black")
    image = read_image(path, max_pixels=max_pixels)
    array = image.array  # (H, W, 1) or (H, W, 3)
    if image.alpha is not None and not np.all(image.alpha == image.alpha.max(initial=0)):
        raise ImageReadError(path, "mask has transparency; which pixels are holes is unclear "
                             "(save it as a grayscale image)")
    if image.alpha is not None and image.alpha.min() < np.iinfo(image.alpha.dtype).max:
        raise ImageReadError(path, "mask is fully transparent; save it as a grayscale image")
    if array.shape[-1] == 3 and not (np.array_equal(array[..., 0], array[..., 1])
                                     and np.array_equal(array[..., 0], array[..., 2])):
        raise ImageReadError(path, "mask has colour channels that differ; which pixels are "
                             "holes is unclear (save it as a grayscale image)")
    return holes_of(array[..., 0], hole)


def holes_of(values: np.ndarray, hole: str = "white") -> np.ndarray:
    """(H, W) ``uint8``, 1 = hole, from a mask's values by the ``hole`` convention: ``white``,
    nonzero is a hole; ``black``, zero is."""
    return (values != 0 if hole == "white" else values == 0).astype(np.uint8)
