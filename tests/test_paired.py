"""Paired (pix2pix) data: pairing two folders by path, the aligned A|B layout, one shared crop and
flip per pair, direction, determinism — on tiny images the tests write."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from translate.data.paired import PairedDataset, pair_by_path
from translate.errors import TranslateError

LEVEL = 2 / 127.5  # two 8-bit steps in [-1, 1]: cv2's fixed-point bicubic rounds each image


def write(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def flat(h: int, w: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.tile(np.array(rgb, np.uint8), (h, w, 1))


def as_rgb(t: torch.Tensor) -> np.ndarray:
    return ((t.permute(1, 2, 0).numpy() + 1) * 127.5).round()  # (H, W, 3) 0–255


# --- pairing by path -----------------------------------------------------------------------


def test_pair_by_path_matches_relative_paths_across_extensions(tmp_path):
    a, b = tmp_path / "trainA", tmp_path / "trainB"
    for rel in ("x.png", "sub/y.png", "only_a.png"):
        write(a / rel, noise(8, 8, 0))
    for rel in ("x.jpg", "sub/y.png", "y.png", "only_b.png"):  # y.png is not sub/y.png
        write(b / rel, noise(8, 8, 1))
    pairing = pair_by_path(a, b)
    assert [(p.relative_to(a).as_posix(), q.relative_to(b).as_posix())
            for p, q in pairing.pairs] == [("sub/y.png", "sub/y.png"), ("x.png", "x.jpg")]
    assert [p.name for p in pairing.only_a] == ["only_a.png"]
    assert [p.name for p in pairing.only_b] == ["only_b.png", "y.png"]


def test_unmatched_files_are_named_not_dropped(tmp_path):
    for rel in ("1.png", "2.png", "3.png"):
        write(tmp_path / "trainA" / rel, noise(8, 8, 0))
    for rel in ("1.png", "4.png"):
        write(tmp_path / "trainB" / rel, noise(8, 8, 1))
    with pytest.raises(TranslateError) as e:
        PairedDataset(tmp_path, load_size=8, crop_size=8)
    assert "2 in" in str(e.value) and "2.png, 3.png" in str(e.value)
    assert "1 in" in str(e.value) and "4.png" in str(e.value)
    ds = PairedDataset(tmp_path, load_size=8, crop_size=8, strict=False)
    assert ds.layout == "folders" and len(ds) == 1
    assert [p.name for p in ds.unmatched["A"]] == ["2.png", "3.png"]
    assert [p.name for p in ds.unmatched["B"]] == ["4.png"]


def test_same_key_twice_in_one_folder_is_an_error(tmp_path):
    write(tmp_path / "trainA" / "1.png", noise(8, 8, 0))
    write(tmp_path / "trainA" / "1.jpg", noise(8, 8, 0))
    write(tmp_path / "trainB" / "1.png", noise(8, 8, 1))
    with pytest.raises(TranslateError, match="1.jpg and 1.png"):
        PairedDataset(tmp_path, load_size=8, crop_size=8)


def test_layout_errors(tmp_path):
    with pytest.raises(TranslateError, match="neither train/"):
        PairedDataset(tmp_path)
    write(tmp_path / "train" / "ab.png", noise(8, 16, 0))
    write(tmp_path / "trainA" / "1.png", noise(8, 8, 0))
    with pytest.raises(TranslateError, match="both train/"):
        PairedDataset(tmp_path)
    assert PairedDataset(tmp_path, layout="aligned", load_size=8, crop_size=8).layout == "aligned"
    with pytest.raises(TranslateError, match="trainB not found"):
        PairedDataset(tmp_path, layout="folders")
    with pytest.raises(ValueError, match="direction"):
        PairedDataset(tmp_path, direction="AB")


# --- the aligned layout and direction ------------------------------------------------------


@pytest.mark.parametrize("phase", ["train", "val", "test"])
def test_aligned_split_and_direction(tmp_path, phase):
    left, right = (200, 10, 10), (10, 10, 200)
    # odd width: the reference's int(w / 2) leaves B one column wider
    write(tmp_path / phase / "p.png", np.concatenate([flat(12, 12, left), flat(12, 13, right)],
                                                     axis=1))
    ds = PairedDataset(tmp_path, phase=phase, load_size=10, crop_size=8)
    item = ds[0]
    assert item["A"].shape == item["B"].shape == (3, 8, 8)
    assert (as_rgb(item["A"]) == left).all() and (as_rgb(item["B"]) == right).all()
    assert item["A_path"] == item["B_path"] == str(tmp_path / phase / "p.png")
    swapped = PairedDataset(tmp_path, phase=phase, direction="BtoA", load_size=10, crop_size=8)[0]
    assert (as_rgb(swapped["A"]) == right).all() and (as_rgb(swapped["B"]) == left).all()


def test_folders_direction_swaps_images_and_paths(tmp_path):
    pa = write(tmp_path / "testA" / "1.png", flat(8, 8, (255, 0, 0)))
    pb = write(tmp_path / "testB" / "1.png", flat(8, 8, (0, 0, 255)))
    ab = PairedDataset(tmp_path, phase="test", load_size=8, crop_size=8)[0]
    ba = PairedDataset(tmp_path, phase="test", direction="BtoA", load_size=8, crop_size=8)[0]
    assert (ab["A_path"], ab["B_path"]) == (ba["B_path"], ba["A_path"]) == (str(pa), str(pb))
    assert torch.equal(ab["A"], ba["B"]) and torch.equal(ab["B"], ba["A"])
    assert ab["A"][0].min() == 1 and ab["A"][2].max() == -1  # red in [-1, 1]


# --- one crop and one flip per pair --------------------------------------------------------


def find_crop(loaded: np.ndarray, crop: np.ndarray) -> tuple[int, int, bool]:
    """(top, left, flipped) of ``crop`` within ``loaded``; fails if it is nowhere."""
    c = crop.shape[0]
    for top in range(loaded.shape[0] - c + 1):
        for left in range(loaded.shape[1] - c + 1):
            window = loaded[top : top + c, left : left + c]
            for flipped in (False, True):
                if np.abs((window[:, ::-1] if flipped else window) - crop).max() <= 1:
                    return top, left, flipped
    raise AssertionError("the crop is not a window of the resized image")


@pytest.mark.parametrize("layout", ["folders", "aligned"])
def test_a_and_b_share_crop_and_flip(tmp_path, layout):
    load, size = 20, 12
    images = [noise(17, 19, seed) for seed in range(3)]
    for i, a in enumerate(images):
        b = 255 - a  # B is A's colour inverse: A + B = 0 in [-1, 1] iff crop and flip agree
        if layout == "folders":
            write(tmp_path / "trainA" / f"{i}.png", a)
            write(tmp_path / "trainB" / f"{i}.png", b)
        else:
            write(tmp_path / "train" / f"{i}.png", np.concatenate([a, b], axis=1))
    ds = PairedDataset(tmp_path, load_size=load, crop_size=size, seed=3)
    assert ds.layout == layout
    seen = set()
    for epoch in range(6):
        for i, a in enumerate(images):
            item = ds[(epoch, i)]
            assert item["A"].shape == (3, size, size)
            assert (item["A"] + item["B"]).abs().max() <= LEVEL
            loaded = cv2.resize(a, (load, load), interpolation=cv2.INTER_CUBIC).astype(float)
            seen.add(find_crop(loaded, as_rgb(item["A"])))
    assert {flipped for *_, flipped in seen} == {False, True}
    assert len({(top, left) for top, left, _ in seen}) > 5


def test_items_are_a_function_of_seed_epoch_and_index(tmp_path):
    for i in range(2):
        write(tmp_path / "trainA" / f"{i}.png", noise(16, 16, i))
        write(tmp_path / "trainB" / f"{i}.png", noise(16, 16, 10 + i))
    ds = PairedDataset(tmp_path, load_size=16, crop_size=8, seed=1)
    again = PairedDataset(tmp_path, load_size=16, crop_size=8, seed=1)
    ds[(2, 1)]  # draws in between must not matter
    assert all(torch.equal(ds[(e, 1)]["A"], again[(e, 1)]["A"]) for e in range(4))
    ds.set_epoch(3)
    assert torch.equal(ds[1]["B"], again[(3, 1)]["B"])
    assert not all(torch.equal(ds[(0, 1)]["A"], ds[(e, 1)]["A"]) for e in range(1, 6))
    plain = ds.item(1, augment=False)
    assert plain["A"].shape == (3, 8, 8)
    assert torch.equal(plain["A"], ds.item(1, epoch=5, augment=False)["A"])
