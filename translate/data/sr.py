"""Super-resolution training pairs made on the fly from any folder of high-resolution photos.

Each item is a random HR crop (side ``hr_size``, a multiple of the scale), augmented by flips
and 90° rotations (the 8 dihedral transforms, as EDSR/RCAN train), and its LR version made by
antialiased bicubic downsampling. ``torch``'s ``interpolate(..., mode="bicubic",
antialias=True)`` is the same filter as MATLAB's ``imresize`` (Keys' kernel with a = −0.5,
stretched by the scale): on Set5 it reproduces the published LR inputs to within rounding, so
the model trains on the degradation the benchmark tables use.

Optional degradations for real-world inputs (off by default; Real-ESRGAN's first-order model,
Wang et al. 2021): Gaussian blur of the HR crop before downsampling, Gaussian noise on the LR,
and JPEG compression of the LR (blur and JPEG through albumentations).

Determinism: every random choice of an item comes from a NumPy generator seeded with
``SeedSequence([seed, epoch, index])``, so items do not depend on DataLoader workers and a
resumed run sees exactly the items of an uninterrupted one (the loop passes ``(epoch, index)``
keys, see ``translate.train.loop.EpochBatchSampler``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from translate.data.seeded import EpochSeededDataset
from translate.errors import TranslateError
from translate.io.images import read_image, scan_images, to_rgb8


def bicubic_down(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downsampling by an integer ``scale`` (MATLAB ``imresize``'s filter).

    Args:
        hr: (C, H, W) or (B, C, H, W) float, H and W multiples of ``scale``.

    Returns:
        The LR image(s), (…, H / scale, W / scale), not clamped or rounded.
    """
    batched = hr if hr.dim() == 4 else hr[None]
    lr = F.interpolate(batched, scale_factor=1.0 / scale, mode="bicubic", antialias=True,
                       align_corners=False)
    return lr if hr.dim() == 4 else lr[0]


class SRDataset(EpochSeededDataset):
    """Random (LR, HR) crop pairs from a folder of photos.

    Args:
        root: folder of HR photos (searched recursively; any format ``read_image`` reads), or
            several separated by commas. Grayscale, 16-bit and RGBA images become 8-bit RGB
            (``to_rgb8``).
        scale: 2, 3 or 4.
        hr_size: side of the HR crops, a multiple of ``scale``.
        repeat: crops per image per epoch (the length is ``repeat × images``).
        flip: random horizontal and vertical flips.
        rot90: random 90° rotation (with ``flip``, all 8 dihedral transforms).
        cache: decode every image once at construction and keep it in memory.
        blur: > 0: Gaussian blur of the HR crop, σ ~ U(0.2, blur) HR pixels.
        noise: > 0: Gaussian noise on the LR crop, σ ~ U(0, noise) on the 0–255 scale.
        jpeg: > 0: JPEG compression of the LR crop at quality ~ U(jpeg, 95).
        degrade_prob: chance each enabled degradation applies to a sample.
        seed: seed of every random choice, with the epoch and the index.

    Items are ``{"lr": (3, h, h) float32, "hr": (3, H, H) float32}`` in [0, 1], ``H = hr_size``,
    ``h = H / scale``.

    Raises:
        TranslateError: a missing or empty folder, an unreadable image, or an image smaller
            than ``hr_size`` (each named in the message).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        scale: int = 4,
        hr_size: int = 128,
        repeat: int = 1,
        flip: bool = True,
        rot90: bool = True,
        cache: bool = True,
        blur: float = 0.0,
        noise: float = 0.0,
        jpeg: int = 0,
        degrade_prob: float = 1.0,
        seed: int = 0,
    ):
        if hr_size % scale:
            raise TranslateError(f"hr_size {hr_size} is not a multiple of the scale {scale}")
        # Several folders may be given as "a,b" (e.g. BSD68 and Urban100 read in place).
        self.roots = [Path(r.strip()) for r in str(root).split(",") if r.strip()]
        self.paths: list[Path] = []
        for folder in self.roots:
            if not folder.is_dir():
                raise TranslateError(f"SR training folder not found: {folder}")
            found = scan_images(folder)
            if not found:
                raise TranslateError(f"{folder} holds no images")
            self.paths += found
        self.scale, self.hr_size, self.repeat = scale, hr_size, repeat
        self.flip, self.rot90 = flip, rot90
        self.blur, self.noise, self.jpeg, self.degrade_prob = blur, noise, jpeg, degrade_prob
        self.seed = seed
        self.epoch = 0
        self._cache: list[np.ndarray] | None = None
        if cache:
            self._cache = [self._read(p) for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths) * self.repeat

    def _read(self, path: Path) -> np.ndarray:
        rgb = to_rgb8(read_image(path))  # (H, W, 3) uint8
        h, w = rgb.shape[:2]
        if min(h, w) < self.hr_size:
            raise TranslateError(
                f"{path}: {w}x{h} is smaller than the HR crop size data.hr_size={self.hr_size}"
            )
        return rgb

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as (H, W, 3) uint8."""
        return self._cache[i] if self._cache is not None else self._read(self.paths[i])

    def item(self, index: int, epoch: int | None = None) -> dict[str, torch.Tensor]:
        """Item ``index`` of ``epoch`` (default: the current one)."""
        index, epoch = self.locate(index, epoch)
        rng = self.rng(epoch, index)
        # The order of draws is part of the format: crop, flips, rotation, then degradations.
        img = self.image(index % len(self.paths))
        h, w = img.shape[:2]
        top = int(rng.integers(h - self.hr_size + 1))
        left = int(rng.integers(w - self.hr_size + 1))
        crop = img[top : top + self.hr_size, left : left + self.hr_size]
        hflip, vflip, rot = rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.5
        if self.flip:
            crop = crop[:, ::-1] if hflip else crop
            crop = crop[::-1] if vflip else crop
        if self.rot90 and rot:
            crop = np.rot90(crop)
        hr = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float() / 255.0
        return self.degrade(hr, rng)

    def degrade(self, hr: torch.Tensor, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """HR (3, H, W) in [0, 1] → ``{"lr", "hr"}``: blur?, bicubic ↓, noise?, JPEG?, quantise."""
        import albumentations as A  # lazy: slow to import

        blurred = hr
        if self.blur > 0 and rng.random() < self.degrade_prob:
            sigma = float(rng.uniform(0.2, self.blur))
            ksize = 2 * int(np.ceil(3 * sigma)) + 1
            # A point range makes the albumentations transform deterministic (our RNG drew σ).
            op = A.GaussianBlur(blur_limit=(ksize, ksize), sigma_limit=(sigma, sigma), p=1.0)
            blurred = torch.from_numpy(
                op(image=hr.permute(1, 2, 0).numpy())["image"]
            ).permute(2, 0, 1).contiguous()
        lr = bicubic_down(blurred, self.scale)
        if self.noise > 0 and rng.random() < self.degrade_prob:
            sigma = float(rng.uniform(0.0, self.noise)) / 255.0
            lr = lr + torch.from_numpy(rng.normal(0.0, sigma, lr.shape).astype(np.float32))
        # LR inputs at test time are 8-bit images: train on 8-bit-quantised LR too.
        lr8 = (lr.clamp(0, 1) * 255.0).round().to(torch.uint8)
        if self.jpeg > 0 and rng.random() < self.degrade_prob:
            quality = int(rng.integers(self.jpeg, 96))
            op = A.ImageCompression(quality_range=(quality, quality), p=1.0)
            lr8 = torch.from_numpy(op(image=lr8.permute(1, 2, 0).numpy())["image"]).permute(2, 0, 1)
        return {"lr": lr8.float() / 255.0, "hr": hr}


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack ``lr`` and ``hr`` of equal-sized items."""
    return {k: torch.stack([it[k] for it in items]) for k in ("lr", "hr")}
