"""Unaligned two-domain images for CycleGAN: ``root/trainA`` and ``root/trainB`` (or ``test*``).

As the CycleGAN reference's unaligned dataset: an epoch is max(|A|, |B|) items; item i pairs
A[i mod |A|] with a B drawn at random, so no pairing is ever learnt. Training augmentation is the
reference's ``resize_and_crop``: resize to ``load_size`` × ``load_size`` (bicubic), a random
``crop_size`` crop, a random left-right flip, each drawn independently for A and B; pixels are
scaled to [-1, 1] as (3, H, W) float32 tensors.

Determinism: every random choice of an item (the B index, crops, flips) comes from a NumPy
generator seeded with ``SeedSequence([seed, epoch, index])``, never from a global RNG. So an item
is the same whichever DataLoader worker builds it, and a resumed run sees the same items as an
uninterrupted one. The epoch is either set with ``set_epoch`` (reaches worker processes only when
they are started after the call, i.e. not with ``persistent_workers=True``) or given with the
index as a key ``dataset[(epoch, index)]``, which works with any worker set-up.

Albumentations does the deterministic parts (resize, normalisation); the random parts are drawn
from the generator above so they cannot depend on albumentations' own seeding.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translate.data.seeded import EpochSeededDataset
from translate.errors import TranslateError
from translate.io.images import read_image, scan_images, to_rgb8

PHASES = ("train", "test")


def _domain_files(root: Path, folder: str) -> list[Path]:
    path = root / folder
    if not path.is_dir():
        raise TranslateError(
            f"{path} not found: a dataset needs {folder}/ (make one with `translate data prep`)"
        )
    files = scan_images(path)
    if not files:
        raise TranslateError(f"{path} holds no images")
    return files


class UnalignedDataset(EpochSeededDataset):
    """Unpaired images from ``root/{phase}A`` and ``root/{phase}B``.

    Args:
        root: the dataset folder (as written by ``translate data prep`` or ``data demo``).
        phase: "train" (random B, crop and flip) or "test" (no augmentation, A[i] with
            B[i mod |B|], each resized to ``crop_size`` × ``crop_size``).
        load_size: side images are resized to before cropping (train).
        crop_size: side of the square crops returned.
        flip: random left-right flips in training.
        seed: seed of every random choice, with the epoch and the index.

    Items are ``{"A": (3, crop, crop) float32 in [-1, 1], "B": same, "A_path": str,
    "B_path": str}``.

    Raises:
        TranslateError: a missing or empty domain folder (named in the message).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        phase: str = "train",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        seed: int = 0,
    ):
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        if crop_size < 1 or load_size < crop_size:
            raise ValueError(f"need 1 <= crop_size <= load_size, got {crop_size}, {load_size}")
        import albumentations as A  # lazy: slow to import, only datasets need it
        import cv2

        self.root = Path(root)
        self.phase = phase
        self.load_size, self.crop_size, self.flip, self.seed = load_size, crop_size, flip, seed
        self.epoch = 0
        self.paths_A = _domain_files(self.root, f"{phase}A")
        self.paths_B = _domain_files(self.root, f"{phase}B")
        # Bicubic, as the reference's transforms.Resize(..., BICUBIC).
        self._load = A.Resize(load_size, load_size, interpolation=cv2.INTER_CUBIC)
        self._plain = A.Resize(crop_size, crop_size, interpolation=cv2.INTER_CUBIC)
        # (x / 255 - 0.5) / 0.5: [0, 255] -> [-1, 1].
        self._normalize = A.Normalize(mean=(0.5,) * 3, std=(0.5,) * 3, max_pixel_value=255.0)

    def __len__(self) -> int:
        return max(len(self.paths_A), len(self.paths_B))

    def item(
        self, index: int, epoch: int | None = None, augment: bool | None = None
    ) -> dict[str, Any]:
        """Item ``index`` of ``epoch`` (default: the current one).

        ``augment`` defaults to True in the train phase; False gives the test-phase item
        (A[i], B[i mod |B|], resized to crop_size, no randomness), e.g. for fixed sample grids.
        """
        index, epoch = self.locate(index, epoch)
        augment = self.phase == "train" if augment is None else augment
        path_a = self.paths_A[index % len(self.paths_A)]
        if not augment:
            path_b = self.paths_B[index % len(self.paths_B)]
            return {
                "A": self._tensor(self._plain(image=self._read(path_a))["image"]),
                "B": self._tensor(self._plain(image=self._read(path_b))["image"]),
                "A_path": str(path_a),
                "B_path": str(path_b),
            }
        # The order of draws is part of the format: B index, then A's crop/flip, then B's.
        rng = self.rng(epoch, index)
        path_b = self.paths_B[int(rng.integers(len(self.paths_B)))]
        image_a = self._augment(self._read(path_a), rng)
        image_b = self._augment(self._read(path_b), rng)
        return {"A": image_a, "B": image_b, "A_path": str(path_a), "B_path": str(path_b)}

    # ── Helpers.

    @staticmethod
    def _read(path: Path) -> np.ndarray:
        return to_rgb8(read_image(path))  # (H, W, 3) uint8

    def _augment(self, rgb: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        loaded = self._load(image=rgb)["image"]  # (load, load, 3)
        span = self.load_size - self.crop_size + 1
        top, left = int(rng.integers(span)), int(rng.integers(span))
        crop = loaded[top : top + self.crop_size, left : left + self.crop_size]
        if self.flip and rng.random() < 0.5:
            crop = crop[:, ::-1]
        return self._tensor(crop)

    def _tensor(self, rgb: np.ndarray) -> torch.Tensor:
        normed = self._normalize(image=np.ascontiguousarray(rgb))["image"]  # (H, W, 3) float32
        return torch.from_numpy(np.ascontiguousarray(normed.transpose(2, 0, 1)))  # (3, H, W)
