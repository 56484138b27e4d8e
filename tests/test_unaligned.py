"""translate.data.unaligned: CycleGAN's unpaired dataset, deterministic per (seed, epoch, index)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import save_image
from PIL import Image
from torch.utils.data import DataLoader

from translate.data.unaligned import UnalignedDataset
from translate.errors import TranslateError

LOAD, CROP = 20, 16


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unaligned")
    rng = np.random.default_rng(0)
    save_image(root / "trainA" / "a0.png", rng.integers(0, 256, (24, 30, 3), dtype=np.uint8))
    save_image(root / "trainA" / "a1.png", np.full((18, 22, 3), 255, dtype=np.uint8))  # white
    save_image(root / "trainA" / "a2.png", rng.integers(0, 256, (26, 20), dtype=np.uint8))  # gray
    for i in range(5):
        save_image(root / "trainB" / f"b{i}.png", rng.integers(0, 256, (22, 25, 3), dtype=np.uint8))
    for i in range(2):
        save_image(root / "testA" / f"ta{i}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    save_image(root / "testB" / "tb0.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    return root


def _dataset(root: Path, **kw) -> UnalignedDataset:
    return UnalignedDataset(root, load_size=LOAD, crop_size=CROP, seed=7, **kw)


def _same(x: dict, y: dict) -> bool:
    return (x["A_path"], x["B_path"]) == (y["A_path"], y["B_path"]) and all(
        torch.equal(x[k], y[k]) for k in ("A", "B")
    )


def test_length_shapes_and_range(root):
    ds = _dataset(root)
    assert len(ds) == 5  # max(3, 5)
    for i in range(len(ds)):
        item = ds[i]
        assert Path(item["A_path"]).name == f"a{i % 3}.png"
        assert Path(item["B_path"]).parent.name == "trainB"
        for key in ("A", "B"):
            assert item[key].shape == (3, CROP, CROP) and item[key].dtype == torch.float32
            assert -1.0 <= float(item[key].min()) and float(item[key].max()) <= 1.0
    assert torch.equal(ds[1]["A"], torch.ones(3, CROP, CROP))  # white -> 1.0


def test_items_are_crops_of_the_resized_image(root):
    """Each A is a CROP-sized window (maybe mirrored) of the bicubic LOAD-sized image."""
    ds = _dataset(root)
    with Image.open(root / "trainA" / "a0.png") as im:
        resized = cv2.resize(np.asarray(im), (LOAD, LOAD), interpolation=cv2.INTER_CUBIC)
    expected = (resized.astype(np.float32) / 255 - 0.5) / 0.5
    windows = [expected[t : t + CROP, s : s + CROP] for t in range(LOAD - CROP + 1)
               for s in range(LOAD - CROP + 1)]
    windows += [w[:, ::-1] for w in windows]
    for epoch in range(4):
        got = ds.item(0, epoch=epoch)["A"].permute(1, 2, 0).numpy()
        assert min(np.abs(got - w).max() for w in windows) < 1e-6


def test_deterministic_per_seed_epoch_index(root):
    one, two = _dataset(root), _dataset(root)
    two.set_epoch(3)
    for i in range(len(one)):
        assert _same(one.item(i, epoch=3), two[i])
        assert _same(one[(3, i)], two[i])
    changed = [not _same(one.item(i, epoch=0), one.item(i, epoch=1)) for i in range(len(one))]
    assert any(changed)
    other_seed = UnalignedDataset(root, load_size=LOAD, crop_size=CROP, seed=8)
    assert any(not _same(one.item(i), other_seed.item(i)) for i in range(len(one)))


def test_unaugmented_and_test_phase(root):
    ds = _dataset(root)
    plain = ds.item(4, epoch=0, augment=False)
    assert _same(plain, ds.item(4, epoch=9, augment=False))
    assert Path(plain["B_path"]).name == "b4.png"
    test = _dataset(root, phase="test")
    assert len(test) == 2
    item = test[1]
    assert (Path(item["A_path"]).name, Path(item["B_path"]).name) == ("ta1.png", "tb0.png")
    assert item["A"].shape == (3, CROP, CROP)
    test.set_epoch(5)
    assert _same(item, test[1])


def test_missing_and_empty_domains(root, tmp_path):
    (tmp_path / "trainA").mkdir()
    save_image(tmp_path / "trainA" / "a.png", np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(TranslateError, match="trainB"):
        _dataset(tmp_path)
    (tmp_path / "trainB").mkdir()
    (tmp_path / "trainB" / "notes.txt").write_text("no images here")
    with pytest.raises(TranslateError, match="trainB holds no images"):
        _dataset(tmp_path)
    with pytest.raises(ValueError, match="crop_size"):
        UnalignedDataset(root, load_size=10, crop_size=16)


def test_workers_give_the_same_batches(root):
    ds = _dataset(root)
    ds.set_epoch(2)
    keyed = [(2, i) for i in range(len(ds))]

    def batches(workers: int, sampler=None) -> list[dict]:
        loader = DataLoader(ds, batch_size=2, num_workers=workers, sampler=sampler)
        return list(loader)

    for sampler in (None, keyed):
        serial, parallel = batches(0, sampler), batches(2, sampler)
        assert len(serial) == len(parallel) == 3
        for x, y in zip(serial, parallel, strict=True):
            assert x["A_path"] == y["A_path"] and x["B_path"] == y["B_path"]
            assert torch.equal(x["A"], y["A"]) and torch.equal(x["B"], y["B"])
    # Plain indices at epoch 2 and (2, i) keys give the same items.
    for x, y in zip(batches(0), batches(0, keyed), strict=True):
        assert torch.equal(x["B"], y["B"])
