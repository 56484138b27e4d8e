"""translate.data.prep on hostile folders built here: bad files, odd modes, EXIF, duplicates."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import save_image, smooth_image
from PIL import Image

from translate.data.prep import (
    REPORT_NAME,
    SPLITS,
    prep_dataset,
    print_prep_summary,
    split_counts,
)
from translate.errors import TranslateError
from translate.io.images import to_rgb8

SIZE = 32
TEST_FRACTION = 0.25
GREEN = (10, 200, 30)


GRAY16 = np.random.default_rng(1).integers(0, 65536, (SIZE, 40)).astype(np.uint16)
GRAY16[0, :6] = [0, 128, 129, 385, 65535, 32896]  # exact rounding edges: 0, 0, 1, 1, 255, 128

RGBA = np.zeros((SIZE, 40, 4), dtype=np.uint8)
RGBA[:, :10] = (*GREEN, 0)  # fully transparent: white
RGBA[:, 10:20] = (*GREEN, 255)  # opaque: unchanged
RGBA[:, 20:30] = (0, 0, 0, 128)  # half-transparent black: 255 * (1 - 128/255) = 127
RGBA[:, 30:] = (200, 100, 0, 64)  # c * 64/255 + 255 * 191/255 -> (241, 216, 191)


def _build_inputs(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    a, b = root / "in A", root / "in_b"
    save_image(a / "rgb1.jpg", smooth_image(rng, 48, 64), quality=95)
    rgb2 = smooth_image(rng, 40, 40)
    save_image(a / "rgb2.png", rgb2)
    save_image(a / "rgb3.png", smooth_image(rng, 50, 36))
    save_image(a / "sub" / "dup.bmp", rgb2)  # same pixels as rgb2.png, other format and name
    save_image(a / "sub" / "deeper" / "nested.png", smooth_image(rng, 36, 60))
    save_image(a / "sub" / "été photo ñ.png", smooth_image(rng, 64, 48))
    save_image(a / "big.png", smooth_image(rng, 100, 80))
    save_image(a / "small.png", smooth_image(rng, 16, 20))  # upscaled to short side 32
    save_image(a / "deep16.png", Image.fromarray(GRAY16))  # 16-bit gray PNG
    save_image(a / "cmyk.jpg", Image.new("CMYK", (40, SIZE), (0, 255, 255, 0)), quality=95)  # red
    save_image(a / "rgba.png", RGBA)
    # Stored 48 wide x 32 high with a red block at the stored top-left; Orientation 6 means
    # "turn 90° clockwise to view", which puts the block at the top-right of a 48-high image.
    stored = np.full((SIZE, 48, 3), 40, dtype=np.uint8)
    stored[:8, :8] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    save_image(a / "exif_rot.jpg", stored, quality=95, exif=exif.tobytes())
    jpeg = io.BytesIO()
    Image.fromarray(smooth_image(rng, 64, 64)).save(jpeg, "JPEG")
    (a / "corrupt.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (a / "empty.jpg").write_bytes(b"")
    (a / "notes.png").write_text("not an image\n")
    (a / "readme.txt").write_text("ignored: not an image extension\n")

    for i in range(5):
        save_image(b / f"b{i}.png", smooth_image(rng, 40 + 4 * i, 48))
    save_image(b / "x.jpg", smooth_image(rng, 40, 40), quality=95)  # same stem as x.png
    save_image(b / "x.png", smooth_image(rng, 40, 40))
    save_image(b / "pal.png", Image.fromarray(smooth_image(rng, SIZE, 40)).convert("P"))
    save_image(b / "gray.png", smooth_image(rng, SIZE, 40)[..., 0])
    return a, b


@pytest.fixture(scope="module")
def prepped(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("prep")
    a, b = _build_inputs(root)
    out = root / "datasets" / "toy"
    report = prep_dataset(a, b, out, size=SIZE, test_fraction=TEST_FRACTION, seed=3,
                          show_progress=False)
    return root, a, b, out, report, json.loads((out / REPORT_NAME).read_text("utf-8"))


def _output(info: dict, domain: str, source: str) -> str:
    [entry] = [f for f in info["domains"][domain]["files"] if f["source"] == source]
    return entry["output"]


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert (im.format, im.mode) == ("PNG", "RGB")
        return np.asarray(im)


def test_counts_skips_and_duplicates(prepped):
    _, _, _, _, report, info = prepped
    a, b = info["domains"]["A"], info["domains"]["B"]
    assert a["found"] == 15  # readme.txt is not an image file
    reasons = {s["file"]: s["reason"] for s in a["skipped"]}
    assert set(reasons) == {"corrupt.jpg", "empty.jpg", "notes.png"}
    assert reasons["empty.jpg"] == "empty file"
    assert reasons["notes.png"].startswith("not an image file")
    assert reasons["corrupt.jpg"].startswith("truncated or corrupt")
    assert a["duplicates"] == [{"file": "sub/dup.bmp", "duplicate_of": "rgb2.png"}]
    assert a["written"] == {"train": 8, "test": 3}  # 11 unique, round(0.25 * 11) = 3
    assert a["upscaled"] == 1
    assert (b["found"], b["skipped"], b["duplicates"]) == (9, [], [])
    assert b["written"] == {"train": 7, "test": 2}
    assert report.domains["A"].train == 8 and report.domains["B"].test == 2
    assert report.as_dict() == info


def test_outputs_are_rgb_png_at_size(prepped):
    _, _, _, out, _, info = prepped
    for domain in "AB":
        listed = sorted(f["output"] for f in info["domains"][domain]["files"])
        written = sorted(
            p.relative_to(out).as_posix() for s in (f"train{domain}", f"test{domain}")
            for p in (out / s).iterdir()
        )
        assert listed == written
        for rel in written:
            assert rel.endswith(".png")
            assert min(_pixels(out / rel).shape[:2]) == SIZE
    assert _pixels(out / _output(info, "A", "big.png")).shape == (40, SIZE, 3)
    assert _pixels(out / _output(info, "A", "small.png")).shape == (SIZE, 40, 3)
    assert sorted(p.name for p in out.iterdir()) == sorted([*SPLITS, REPORT_NAME])
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_names_keep_subfolders_and_unicode(prepped):
    _, _, _, out, _, info = prepped
    assert _output(info, "A", "sub/été photo ñ.png").endswith("/sub__été photo ñ.png")
    assert _output(info, "A", "sub/deeper/nested.png").endswith("/sub__deeper__nested.png")
    assert _output(info, "B", "x.jpg").endswith("/x.png")
    assert _output(info, "B", "x.png").endswith("/x__png.png")  # the clash gets its extension
    assert "été" in (out / REPORT_NAME).read_text("utf-8")


def test_sixteen_bit_is_scaled_not_saturated(prepped):
    _, _, _, out, _, info = prepped
    got = _pixels(out / _output(info, "A", "deep16.png"))
    expected = np.floor(GRAY16.astype(np.float64) / 257 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(got, np.repeat(expected[..., None], 3, axis=2))
    assert list(got[0, :6, 0]) == [0, 0, 1, 1, 255, 128]


def test_cmyk_palette_and_gray_become_rgb(prepped):
    _, _, b, out, _, info = prepped
    red = _pixels(out / _output(info, "A", "cmyk.jpg")).reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(red, [255, 0, 0], atol=12)
    with Image.open(b / "gray.png") as im:
        gray = np.asarray(im)
    np.testing.assert_array_equal(_pixels(out / _output(info, "B", "gray.png")),
                                  np.repeat(gray[..., None], 3, axis=2))
    with Image.open(b / "pal.png") as im:
        palette = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(_pixels(out / _output(info, "B", "pal.png")), palette)


def test_alpha_is_composited_on_white(prepped):
    _, _, _, out, _, info = prepped
    got = _pixels(out / _output(info, "A", "rgba.png"))
    assert (got[:, :10] == 255).all()
    assert (got[:, 10:20] == GREEN).all()
    assert (got[:, 20:30] == 127).all()
    assert (got[:, 30:] == (241, 216, 191)).all()


def test_exif_orientation_is_applied(prepped):
    _, _, _, out, _, info = prepped
    got = _pixels(out / _output(info, "A", "exif_rot.jpg"))
    assert got.shape == (48, SIZE, 3)  # upright: portrait
    r, g, bl = got[3, SIZE - 4].astype(int)  # the marker is now at the top-right
    assert r > 200 and g < 60 and bl < 60
    r, g, bl = got[3, 3].astype(int)  # and not at the top-left
    assert r < 100


def test_split_is_seeded(prepped, tmp_path):
    _, a, b, out, _, info = prepped
    again = prep_dataset(a, b, tmp_path / "again", size=SIZE, test_fraction=TEST_FRACTION,
                         seed=3, show_progress=False)
    assert again.as_dict()["domains"] == info["domains"]
    other = prep_dataset(a, b, tmp_path / "other", size=SIZE, test_fraction=TEST_FRACTION,
                         seed=4, show_progress=False)
    assert other.domains["A"].files != again.domains["A"].files


@pytest.mark.parametrize(
    ("n", "fraction", "expected"),
    [(0, 0.1, 0), (1, 0.5, 0), (2, 0.1, 1), (10, 0.1, 1), (11, 0.25, 3), (3, 0.9, 2), (5, 0, 0)],
)
def test_split_counts(n, fraction, expected):
    assert split_counts(n, fraction) == expected


def test_refuses_existing_dataset(prepped):
    _, a, b, out, _, _ = prepped
    before = (out / REPORT_NAME).read_bytes()
    with pytest.raises(TranslateError, match="already exists; choose another --out"):
        prep_dataset(a, b, out, size=SIZE, show_progress=False)
    assert (out / REPORT_NAME).read_bytes() == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_refuses_out_inside_an_input(prepped):
    _, a, b, _, _, _ = prepped
    with pytest.raises(TranslateError, match="inside the domain B folder"):
        prep_dataset(a, b, b / "ds", size=SIZE, show_progress=False)
    assert not (b / "ds").exists()


def test_refuses_missing_input(tmp_path, prepped):
    _, a, _, _, _, _ = prepped
    with pytest.raises(TranslateError, match="domain B folder .*nope does not exist"):
        prep_dataset(a, tmp_path / "nope", tmp_path / "ds", show_progress=False)
    assert list(tmp_path.iterdir()) == []


def test_empty_domain_leaves_nothing(tmp_path, prepped):
    _, a, _, _, _, _ = prepped
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"")
    (bad / "b.png").write_text("text")
    out = tmp_path / "new" / "ds"
    with pytest.raises(TranslateError, match=r"domain B has no usable images in .*bad"):
        prep_dataset(a, bad, out, size=SIZE, show_progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]  # no out, parent or temp


def test_into_existing_folders(tmp_path, prepped):
    """An empty ``out`` is replaced; one with other things in it keeps them."""
    _, a, b, _, _, _ = prepped
    (tmp_path / "empty").mkdir()
    prep_dataset(a, b, tmp_path / "empty", size=SIZE, show_progress=False)
    assert (tmp_path / "empty" / REPORT_NAME).is_file()
    busy = tmp_path / "busy"
    shutil.copytree(b, busy / "raw")
    prep_dataset(a, busy / "raw", busy, size=SIZE, show_progress=False)
    assert sorted(p.name for p in busy.iterdir()) == sorted(["raw", *SPLITS, REPORT_NAME])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_to_rgb8_every_16bit_value():
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    got = to_rgb8(values)
    expected = np.floor(values / 257 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(got, np.repeat(expected[..., None], 3, axis=2))
    alpha = np.full((256, 256), 65535, dtype=np.uint16)
    np.testing.assert_array_equal(to_rgb8(values, alpha), got)  # opaque alpha changes nothing


def test_summary_table(prepped, capsys):
    _, _, _, _, report, _ = prepped
    print_prep_summary(report)
    err = capsys.readouterr().err
    assert "corrupt.jpg" in err and "empty file" in err
    assert "found" in err and "duplicates" in err
