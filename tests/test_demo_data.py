"""translate.data.demo: the embedded summer → winter set, built offline from package photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from translate.data.demo import (
    CROPS_PER_PHOTO,
    PHOTOS_A,
    PHOTOS_B,
    TEST_PER_DOMAIN,
    build_demo,
    winter,
)
from translate.data.prep import REPORT_NAME, SPLITS
from translate.errors import TranslateError
from translate.io.images import to_rgb8

SIZE = 32  # small for speed; the layout and counts do not depend on it


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("demo")
    builds = {"first": 0, "again": 0, "other": 1}
    for name, seed in builds.items():
        build_demo(root / name, size=SIZE, seed=seed)
    return {name: root / name for name in builds}


def _files(folder: Path) -> dict[str, bytes]:
    """Every file's bytes; prep.json without its "out" entry (the folder name differs)."""
    files = {p.relative_to(folder).as_posix(): p.read_bytes()
             for p in sorted(folder.rglob("*")) if p.is_file()}
    info = json.loads(files[REPORT_NAME])
    assert info.pop("out") == str(folder)
    files[REPORT_NAME] = json.dumps(info, sort_keys=True).encode()
    return files


def test_layout_and_counts(demos):
    out = demos["first"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*SPLITS, REPORT_NAME])
    counts = {s: len(list((out / s).iterdir())) for s in SPLITS}
    assert counts == {"trainA": 50, "trainB": 50, "testA": 10, "testB": 10}  # as documented
    assert len(PHOTOS_A) * CROPS_PER_PHOTO == 60 and TEST_PER_DOMAIN == 10
    info = json.loads((out / REPORT_NAME).read_text("utf-8"))
    assert "winter" in info["source"]
    assert info["domains"]["A"]["written"] == {"train": 50, "test": 10}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_images_are_square_rgb8(demos):
    for path in demos["first"].rglob("*.png"):
        with Image.open(path) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "RGB", (SIZE, SIZE))


def test_domains_come_from_disjoint_photos(demos):
    info = json.loads((demos["first"] / REPORT_NAME).read_text("utf-8"))
    photos = info["photos"]
    assert set(photos["A"]).isdisjoint(photos["B"])
    assert len(photos["A"]) == len(photos["B"]) == 5
    for domain in "AB":
        for entry in info["domains"][domain]["files"]:
            photo = Path(entry["output"]).name.rsplit("_", 1)[0]
            assert photo in photos[domain], entry
            assert entry["output"].split("/")[0] in (f"train{domain}", f"test{domain}")
    # The loaders behind the names differ too (not just the labels).
    descriptions_a = {d for d, _ in PHOTOS_A.values()}
    assert descriptions_a.isdisjoint(d for d, _ in PHOTOS_B.values())


def test_same_seed_same_bytes_other_seed_differs(demos):
    first, again, other = (_files(demos[k]) for k in ("first", "again", "other"))
    assert first == again
    by_name = {Path(k).name: v for k, v in first.items()}
    other_by_name = {Path(k).name: v for k, v in other.items()}
    assert by_name.keys() == other_by_name.keys()  # same photos and crop counts ...
    changed = sum(by_name[k] != other_by_name[k] for k in by_name if k.endswith(".png"))
    assert changed > 100  # ... but other crops, flips and flakes
    assert first.keys() != other.keys()  # and another train/test split


def test_refuses_existing(demos):
    with pytest.raises(TranslateError, match="already exists"):
        build_demo(demos["first"], size=SIZE)


def _luma(rgb: np.ndarray) -> float:
    return float((rgb.astype(np.float64) @ [0.299, 0.587, 0.114]).mean())


def _blue_minus_red(rgb: np.ndarray) -> float:
    return float(rgb[..., 2].astype(np.float64).mean() - rgb[..., 0].astype(np.float64).mean())


def test_winter_is_bluer_and_brighter():
    """Warm and neutral photos turn bluer, every photo brighter; on average clearly both."""
    photos = [to_rgb8(load())[::2, ::2] for _, load in (*PHOTOS_A.values(), *PHOTOS_B.values())]
    photos.append(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    bluer, brighter = [], []
    for photo in photos:
        cold = winter(photo, np.random.default_rng(1))
        assert cold.shape == photo.shape and cold.dtype == np.uint8
        bluer.append(_blue_minus_red(cold) - _blue_minus_red(photo))
        brighter.append(_luma(cold) - _luma(photo))
        if _blue_minus_red(photo) <= 5:  # a sky-blue photo may lose some blue to desaturation
            assert bluer[-1] > 10
        assert brighter[-1] > 20
    assert np.mean(bluer) > 20 and np.mean(brighter) > 40


def test_winter_is_pure_and_seeded():
    photo = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    kept = photo.copy()
    one = winter(photo, np.random.default_rng(5))
    np.testing.assert_array_equal(photo, kept)
    np.testing.assert_array_equal(one, winter(photo, np.random.default_rng(5)))
    assert (one != winter(photo, np.random.default_rng(6))).any()  # the snow flakes move
    with pytest.raises(ValueError, match="uint8 RGB"):
        winter(photo[..., 0], np.random.default_rng(0))
