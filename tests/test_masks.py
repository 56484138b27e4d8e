"""Free-form mask presets (fractions, determinism) and mask files (conventions, bad encodings)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from helpers import save_image
from PIL import Image

from translate.data.masks import PRESETS, generate_mask, load_mask
from translate.errors import TranslateError
from translate.io.images import ImageReadError

PUT_IMAGENET = SHARED_DATA / "inpainting" / "PUT" / "imagenet_256_sample" / "mr0.5_0.6"


@pytest.mark.parametrize("size", [(256, 256), (64, 64), (96, 160)])
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_hole_fractions_stay_in_their_documented_range(name: str, size) -> None:
    low, high = PRESETS[name].hole_fraction
    fractions = []
    for seed in range(150):
        mask = generate_mask(*size, name, np.random.default_rng(seed))
        assert mask.shape == size and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 1}
        fractions.append(mask.mean())
    fractions = np.array(fractions)
    assert fractions.min() >= low and fractions.max() <= high, (fractions.min(), fractions.max())
    # Not a degenerate generator: the masks vary and use the range.
    assert fractions.std() > 0.02


def test_presets_are_ordered_thin_medium_thick() -> None:
    means = {n: np.mean([generate_mask(128, 128, n, np.random.default_rng(s)).mean()
                         for s in range(60)]) for n in PRESETS}
    assert means["thin"] < means["medium"] < means["thick"]


def test_masks_are_seeded() -> None:
    a = generate_mask(64, 64, "medium", np.random.default_rng(7))
    b = generate_mask(64, 64, "medium", np.random.default_rng(7))
    c = generate_mask(64, 64, "medium", np.random.default_rng(8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_unknown_preset_is_named() -> None:
    with pytest.raises(TranslateError, match="unknown mask preset 'huge'"):
        generate_mask(32, 32, "huge", np.random.default_rng(0))


# ── Mask files.


@pytest.fixture
def pattern() -> np.ndarray:
    hole = np.zeros((20, 30), bool)
    hole[5:12, 8:25] = True
    return hole


def test_white_convention_nonzero_is_hole(tmp_path: Path, pattern: np.ndarray) -> None:
    values = np.where(pattern, 1, 0).astype(np.uint8)  # even 1 counts (nonzero), as LaMa
    path = save_image(tmp_path / "m.png", values)
    assert np.array_equal(load_mask(path, "white"), pattern.astype(np.uint8))
    assert np.array_equal(load_mask(path, "black"), (~pattern).astype(np.uint8))


def test_black_convention_zero_is_hole(tmp_path: Path, pattern: np.ndarray) -> None:
    keep255 = np.where(pattern, 0, 255).astype(np.uint8)  # PUT: 255 = keep
    path = save_image(tmp_path / "m.png", keep255)
    assert np.array_equal(load_mask(path, "black"), pattern.astype(np.uint8))


def test_rgb_with_equal_channels_and_opaque_rgba_are_accepted(tmp_path: Path,
                                                              pattern: np.ndarray) -> None:
    gray = np.where(pattern, 255, 0).astype(np.uint8)
    rgb = save_image(tmp_path / "rgb.png", np.dstack([gray] * 3))
    rgba = save_image(tmp_path / "rgba.png", np.dstack([gray] * 3 + [np.full_like(gray, 255)]))
    for path in (rgb, rgba):
        assert np.array_equal(load_mask(path), pattern.astype(np.uint8))


def test_sixteen_bit_mask(tmp_path: Path, pattern: np.ndarray) -> None:
    path = tmp_path / "m16.png"
    Image.fromarray(np.where(pattern, 65535, 0).astype(np.uint16)).save(path)
    assert np.array_equal(load_mask(path), pattern.astype(np.uint8))


def test_unclear_multichannel_masks_are_refused_naming_the_file(tmp_path: Path,
                                                                pattern: np.ndarray) -> None:
    gray = np.where(pattern, 255, 0).astype(np.uint8)
    colour = np.dstack([gray, np.zeros_like(gray), gray])
    path = save_image(tmp_path / "colour.png", colour)
    with pytest.raises(ImageReadError, match="colour channels that differ") as info:
        load_mask(path)
    assert str(path) in str(info.value)
    alpha = np.full_like(gray, 255)
    alpha[0, 0] = 0
    path = save_image(tmp_path / "alpha.png", np.dstack([gray] * 3 + [alpha]))
    with pytest.raises(ImageReadError, match="transparency"):
        load_mask(path)


def test_corrupt_mask_file_and_bad_convention(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageReadError) as info:
        load_mask(path)
    assert str(path) in str(info.value)
    with pytest.raises(TranslateError, match="unknown hole convention 'grey'"):
        load_mask(path, hole="grey")


@pytest.mark.skipif(not PUT_IMAGENET.is_dir(), reason=f"PUT sample masks not at {PUT_IMAGENET}")
def test_put_masks_hold_half_holes_with_the_black_convention() -> None:
    files = sorted(PUT_IMAGENET.glob("*.png"))
    assert files
    for f in files:
        fraction = load_mask(f, "black").mean()
        assert 0.45 <= fraction <= 0.65, (f, fraction)  # the folder's name: mr0.5_0.6


def test_scale_sets_stroke_sizes_in_pixels() -> None:
    # A 64-pixel crop of a 256-pixel photo gets the photo's strokes (scale 1), which cover more
    # of the crop than strokes scaled to the crop itself (scale 0.25), within the same range.
    def mean_fraction(scale: float | None) -> float:
        return float(np.mean([generate_mask(64, 64, "medium", np.random.default_rng(s),
                                            scale=scale).mean() for s in range(40)]))

    assert mean_fraction(1.0) > mean_fraction(None) + 0.03
    assert mean_fraction(None) == mean_fraction(64 / 256)
