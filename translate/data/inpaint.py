"""Training data for inpainting: any folder of photos → random crops + a random free-form mask.

Every file under ``root`` (recursively, ``translate.io.images.scan_images``) is one item. An item
is a random ``crop_size`` square crop (images with a shorter side are first resized up so the
short side is ``crop_size``), a random left-right flip, and a mask drawn from a preset chosen at
random among ``presets`` (``translate.data.masks``). The mask's strokes and boxes have the pixel
sizes they would have on the whole photo (scale ``min(H, W) / 256`` of the photo, not of the
crop), so a model trained on crops meets holes of the sizes it will fill in whole photos; the
hole fraction of each crop stays in the preset's range.

Determinism as in ``translate.data.unaligned``: each item's choices come from a NumPy generator
seeded with ``SeedSequence([seed, epoch, index])``; the loop passes ``(epoch, index)`` keys, so an
item is the same in any DataLoader worker and after a resume.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translate.data.masks import PRESETS, REFERENCE_SIZE, generate_mask
from translate.data.seeded import EpochSeededDataset
from translate.errors import TranslateError
from translate.io.images import ImageReadError, read_image, scan_images, to_rgb8


class InpaintDataset(EpochSeededDataset):
    """Photos with generated holes.

    Args:
        root: a folder of photos (searched recursively).
        crop_size: side of the square crops.
        flip: random left-right flips.
        presets: mask presets to draw from, uniformly (names in ``translate.data.masks.PRESETS``).
        seed: seed of every random choice, with the epoch and the index.

    Items are ``{"image": (3, S, S) float32 in [-1, 1], "mask": (1, S, S) float32 (1 = hole),
    "path": str}``.

    Raises:
        TranslateError: a missing or empty folder, or an unknown preset (named).
    """

    def __init__(self, root: str | os.PathLike, crop_size: int = 256, flip: bool = True,
                 presets: tuple[str, ...] = ("thin", "medium", "thick"), seed: int = 0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise TranslateError(f"{self.root} not found: inpainting trains on a folder of photos")
        self.paths = scan_images(self.root)
        if not self.paths:
            raise TranslateError(f"{self.root} holds no images")
        unknown = [p for p in presets if p not in PRESETS]
        if unknown or not presets:
            raise TranslateError(
                f"unknown mask preset(s) {unknown or presets}: use {', '.join(PRESETS)}")
        if crop_size < 1:
            raise ValueError(f"crop_size must be positive, got {crop_size}")
        self.crop_size, self.flip, self.presets, self.seed = crop_size, flip, tuple(presets), seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.paths)

    def item(self, index: int, epoch: int | None = None) -> dict[str, Any]:
        index, epoch = self.locate(index, epoch)
        rng = self.rng(epoch, index)
        path = self.paths[index]
        try:
            rgb = to_rgb8(read_image(path))  # (H, W, 3) uint8
        except ImageReadError as e:
            # Training data must be clean (translate data prep lists bad files); name it.
            raise TranslateError(f"training image {e}") from None
        crop, scale = self._crop(rgb, rng)
        preset = self.presets[int(rng.integers(len(self.presets)))]
        mask = generate_mask(self.crop_size, self.crop_size, preset, rng, scale=scale)
        image = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))).float()
        return {
            "image": image / 127.5 - 1.0,  # [0, 255] -> [-1, 1]
            "mask": torch.from_numpy(mask)[None].float(),
            "path": str(path),
        }

    def _crop(self, rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """A random square crop (flipped at random) and the photo's mask scale."""
        import cv2

        s = self.crop_size
        h, w = rgb.shape[:2]
        if min(h, w) < s:  # too small to crop: resize up so the short side is s
            f = s / min(h, w)
            h, w = max(s, round(h * f)), max(s, round(w * f))
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC)
        top, left = int(rng.integers(h - s + 1)), int(rng.integers(w - s + 1))
        crop = rgb[top : top + s, left : left + s]
        if self.flip and rng.random() < 0.5:
            crop = crop[:, ::-1]
        return crop, min(h, w) / REFERENCE_SIZE
