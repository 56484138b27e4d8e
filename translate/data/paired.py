"""Paired images for pix2pix (Isola et al., "Image-to-Image Translation with Conditional
Adversarial Networks", CVPR 2017): each input A has its one target B.

Two layouts of ``root``:

* **aligned** — the reference's (junyanz/pytorch-CycleGAN-and-pix2pix ``aligned_dataset``):
  ``root/{train,val,test}/`` hold side-by-side images, A in the left half and B in the right
  (split at ``w // 2``; an odd width leaves B one column wider, as the reference does);
* **folders** — ``root/{phase}A/`` and ``root/{phase}B/`` (the unaligned layout of CycleGAN),
  paired by relative path without the extension (``shoes/1.jpg`` ↔ ``shoes/1.png``). Files with
  no partner are never dropped silently: they are an error naming them, or — with
  ``strict=False`` — listed in ``dataset.unmatched`` for the caller to report.

``direction="BtoA"`` swaps the roles, so an item's ``"A"`` is always the generator's input.

Training augmentation is the reference's ``resize_and_crop`` with *one* draw per pair: both
images are resized to ``load_size`` × ``load_size`` (bicubic), then the same random
``crop_size`` crop and the same left-right flip are applied to both — albumentations applies one
``Compose`` to the image and its ``additional_targets`` partner with shared parameters. Pixels
are scaled to [-1, 1] as (3, H, W) float32 tensors. Evaluation phases resize to ``crop_size``.

Determinism as in ``translate.data.unaligned``: the Compose draws from the item's own generator,
``SeedSequence([seed, epoch, index])`` (set with ``set_random_state`` before each call), so an
item does not depend on the DataLoader worker that builds it, and resume is exact (for one
albumentations version: the order of its draws is part of the item).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translate.data.seeded import EpochSeededDataset
from translate.errors import TranslateError
from translate.io.images import read_image, scan_images, to_rgb8

PHASES = ("train", "val", "test")
DIRECTIONS = ("AtoB", "BtoA")
LAYOUTS = ("auto", "aligned", "folders")
_SHOWN = 10  # unmatched names quoted in an error message


@dataclass
class Pairing:
    """Files of two folders matched by relative path without extension.

    ``pairs`` holds ``(a, b)`` in sorted order; ``only_a`` / ``only_b`` the files with no
    partner in the other folder.
    """

    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    only_a: list[Path] = field(default_factory=list)
    only_b: list[Path] = field(default_factory=list)
    # With skip_clashes: files of one folder sharing a relative path (a.jpg and a.png), each
    # with the other file(s) it clashes with; none of them is paired.
    clashes_a: dict[Path, list[Path]] = field(default_factory=dict)
    clashes_b: dict[Path, list[Path]] = field(default_factory=dict)
    # What the scan passed over as unreadable (translate.io.images.scan_images' problems):
    # folders that cannot be listed, broken links, entries that are no regular file.
    unreadable_a: list[tuple[Path, str]] = field(default_factory=list)
    unreadable_b: list[tuple[Path, str]] = field(default_factory=list)


def _keyed(folder: Path, clashes: dict[Path, list[Path]] | None = None,
           problems: list[tuple[Path, str]] | None = None) -> dict[str, Path]:
    """Relative path without extension → file. Two files under one key raise, or, given
    ``clashes``, are all left out and recorded there; ``problems``: see ``scan_images``."""
    groups: dict[str, list[Path]] = {}
    for path in scan_images(folder, problems=problems):
        groups.setdefault(path.relative_to(folder).with_suffix("").as_posix(), []).append(path)
    keyed: dict[str, Path] = {}
    for key, paths in groups.items():
        if len(paths) == 1:
            keyed[key] = paths[0]
        elif clashes is None:
            raise TranslateError(f"{folder}: {paths[0].name} and {paths[1].name} pair with the "
                                 f"same file of the other domain ({key}.*); keep one of them")
        else:
            for path in paths:
                clashes[path] = [other for other in paths if other != path]
    return keyed


def pair_by_path(dir_a: str | os.PathLike, dir_b: str | os.PathLike,
                 skip_clashes: bool = False) -> Pairing:
    """Match the images of ``dir_a`` and ``dir_b`` (recursively) by relative path, extension
    ignored.

    Args:
        skip_clashes: images of one folder with the same relative path but different
            extensions are left out and listed (``Pairing.clashes_a`` / ``clashes_b``) instead
            of raising (``data prep --paired``: one such file does not stop the prep).

    Raises:
        TranslateError: a folder is missing, or (without ``skip_clashes``) holds two images
            with the same relative path but different extensions (which one is the partner
            would be a guess).
    """
    dir_a, dir_b = Path(dir_a), Path(dir_b)
    for folder in (dir_a, dir_b):
        if not folder.is_dir():
            raise TranslateError(f"{folder} not found: paired data needs both folders")
    clashes_a: dict[Path, list[Path]] | None = {} if skip_clashes else None
    clashes_b: dict[Path, list[Path]] | None = {} if skip_clashes else None
    unreadable_a: list[tuple[Path, str]] = []
    unreadable_b: list[tuple[Path, str]] = []
    a, b = _keyed(dir_a, clashes_a, unreadable_a), _keyed(dir_b, clashes_b, unreadable_b)
    return Pairing(
        pairs=[(a[k], b[k]) for k in sorted(a.keys() & b.keys())],
        only_a=[a[k] for k in sorted(a.keys() - b.keys())],
        only_b=[b[k] for k in sorted(b.keys() - a.keys())],
        clashes_a=clashes_a or {},
        clashes_b=clashes_b or {},
        unreadable_a=unreadable_a,
        unreadable_b=unreadable_b,
    )


def _unmatched_message(dir_a: Path, dir_b: Path, pairing: Pairing) -> str:
    parts = []
    for files, here, there in ((pairing.only_a, dir_a, dir_b), (pairing.only_b, dir_b, dir_a)):
        if files:
            names = ", ".join(p.relative_to(here).as_posix() for p in files[:_SHOWN])
            more = f" and {len(files) - _SHOWN} more" if len(files) > _SHOWN else ""
            parts.append(f"{len(files)} in {here} have no partner in {there}: {names}{more}")
    return "; ".join(parts)


class PairedDataset(EpochSeededDataset):
    """(A, B) image pairs from an aligned or a two-folder layout (see the module docstring).

    Args:
        root: the dataset folder.
        phase: "train" (random crop and flip, shared by A and B), "val" or "test" (each image
            resized to ``crop_size``, no randomness).
        direction: "AtoB" (A is the input) or "BtoA" (the folder's B is returned as "A").
        load_size: side both images are resized to before cropping (train).
        crop_size: side of the square crops returned.
        flip: random left-right flips in training (the same for A and B).
        seed: seed of every random choice, with the epoch and the index.
        layout: "aligned" (``root/phase/``), "folders" (``root/{phase}A`` + ``root/{phase}B``)
            or "auto" (whichever exists).
        strict: unmatched files in the folders layout are an error; if False they are kept in
            ``self.unmatched`` (``{"A": [...], "B": [...]}``, in the folders' own naming).

    Items are ``{"A": (3, crop, crop) float32 in [-1, 1], "B": same, "A_path": str,
    "B_path": str}`` (for the aligned layout both paths are the side-by-side file).

    Raises:
        TranslateError: a missing or empty phase folder, an ambiguous layout, or unmatched
            files with ``strict`` (named in the message).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        phase: str = "train",
        direction: str = "AtoB",
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        seed: int = 0,
        layout: str = "auto",
        strict: bool = True,
    ):
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if crop_size < 1 or load_size < crop_size:
            raise ValueError(f"need 1 <= crop_size <= load_size, got {crop_size}, {load_size}")
        import albumentations as A  # lazy: slow to import, only datasets need it
        import cv2

        self.root, self.phase, self.direction = Path(root), phase, direction
        self.load_size, self.crop_size, self.flip, self.seed = load_size, crop_size, flip, seed
        self.epoch = 0
        self.layout = self._resolve_layout(layout)
        self.unmatched: dict[str, list[Path]] = {"A": [], "B": []}
        # (A, B) file per item; for the aligned layout B is None (the right half of A's file).
        self.sources: list[tuple[Path, Path | None]]
        if self.layout == "aligned":
            folder = self.root / phase
            self.sources = [(p, None) for p in scan_images(folder)]
        else:
            folder = self.root / f"{phase}A"
            dir_a, dir_b = self.root / f"{phase}A", self.root / f"{phase}B"
            pairing = pair_by_path(dir_a, dir_b)
            if (pairing.only_a or pairing.only_b) and strict:
                raise TranslateError(_unmatched_message(dir_a, dir_b, pairing))
            self.unmatched = {"A": pairing.only_a, "B": pairing.only_b}
            self.sources = list(pairing.pairs)
        if not self.sources:
            raise TranslateError(f"{folder} holds no image pairs")

        cubic = cv2.INTER_CUBIC  # the reference's transforms.Resize(..., BICUBIC)
        self._load = A.Resize(load_size, load_size, interpolation=cubic)
        self._plain = A.Resize(crop_size, crop_size, interpolation=cubic)
        # (x / 255 - 0.5) / 0.5: [0, 255] -> [-1, 1].
        normalize = A.Normalize(mean=(0.5,) * 3, std=(0.5,) * 3, max_pixel_value=255.0)
        # One Compose for the pair: "B" gets exactly the crop and flip drawn for "image".
        self._pair = A.Compose(
            [A.RandomCrop(crop_size, crop_size), A.HorizontalFlip(p=0.5 if flip else 0.0),
             normalize],
            additional_targets={"B": "image"},
        )
        self._plain_pair = A.Compose([normalize], additional_targets={"B": "image"})

    def _resolve_layout(self, layout: str) -> str:
        aligned = (self.root / self.phase).is_dir()
        folders = (self.root / f"{self.phase}A").is_dir() or (
            self.root / f"{self.phase}B").is_dir()
        if layout == "auto":
            if aligned and folders:
                raise TranslateError(
                    f"{self.root} holds both {self.phase}/ (aligned A|B images) and "
                    f"{self.phase}A/, {self.phase}B/ (paired folders); choose a layout")
            if not (aligned or folders):
                raise TranslateError(
                    f"{self.root} has neither {self.phase}/ (aligned A|B images) nor "
                    f"{self.phase}A/ and {self.phase}B/ (paired folders)")
            layout = "aligned" if aligned else "folders"
        if layout == "aligned" and not aligned:
            raise TranslateError(f"{self.root / self.phase} not found (aligned layout)")
        return layout

    def __len__(self) -> int:
        return len(self.sources)

    def item(
        self, index: int, epoch: int | None = None, augment: bool | None = None
    ) -> dict[str, Any]:
        """Item ``index`` of ``epoch`` (default: the current one).

        ``augment`` defaults to True in the train phase; False gives the evaluation item
        (both images resized to ``crop_size``, no randomness), e.g. for fixed sample grids.
        """
        index, epoch = self.locate(index, epoch)
        augment = self.phase == "train" if augment is None else augment
        path_a, path_b = self.sources[index]
        image_a, image_b = self._read_pair(path_a, path_b)
        if self.direction == "BtoA":
            image_a, image_b = image_b, image_a
            path_a, path_b = path_b, path_a
        path_a = path_a if path_a is not None else path_b
        path_b = path_b if path_b is not None else path_a
        if augment:
            resize = self._load
            rng = self.rng(epoch, index)
            # Every draw of the Compose comes from this item's generator.
            self._pair.set_random_state(rng, random.Random(int(rng.integers(2**63))))
            pair = self._pair
        else:
            resize, pair = self._plain, self._plain_pair
        out = pair(image=resize(image=image_a)["image"], B=resize(image=image_b)["image"])
        return {"A": _tensor(out["image"]), "B": _tensor(out["B"]),
                "A_path": str(path_a), "B_path": str(path_b)}

    @staticmethod
    def _read_pair(path_a: Path, path_b: Path | None) -> tuple[np.ndarray, np.ndarray]:
        image = to_rgb8(read_image(path_a))  # (H, W, 3) uint8
        if path_b is not None:
            return image, to_rgb8(read_image(path_b))
        w = image.shape[1]
        if w < 2:
            raise TranslateError(f"{path_a} is {w} pixel wide: not a side-by-side A|B image")
        half = w // 2  # the reference's int(w / 2): A is [0, w2), B is [w2, w)
        return np.ascontiguousarray(image[:, :half]), np.ascontiguousarray(image[:, half:])


def _tensor(normed: np.ndarray) -> torch.Tensor:
    # (H, W, 3) float32 in [-1, 1] -> (3, H, W)
    return torch.from_numpy(np.ascontiguousarray(normed.transpose(2, 0, 1)))
