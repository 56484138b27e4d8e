"""``translate showcase`` (a model beside its baseline, scored, as a section file) and
``translate report --section`` (the section rendered into report.html), on tiny models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import error_line, invoke
from helpers import img_sources, save_tiny_image_models, smooth_image

from translate.data.demo import winter
from translate.data.resize import imresize
from translate.errors import TranslateError
from translate.eval.image_metrics import psnr, ssim
from translate.eval.showcase import sr_beside_bicubic, winter_truth
from translate.io.images import write_image
from translate.modelfile import load_model
from translate.report import format_number, read_section

H, W = 32, 40


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(folder / f"p{i}.png", smooth_image(rng, H, W))
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_tiny_image_models(tmp_path_factory.mktemp("models"))


def _images(photos: Path) -> list[tuple[str, np.ndarray]]:
    from translate.io.images import read_image, to_rgb8

    return [(f.stem, to_rgb8(read_image(f))) for f in sorted(photos.glob("*.png"))]


def _rows(section: dict) -> dict[str, list[float]]:
    return {name: values for name, *values in section["rows"]}


# ── the ground-truth table of the demo ─────────────────────────────────────────────────────

def test_winter_truth_scores_against_winter_with_seed_0(photos: Path, tmp_path: Path) -> None:
    images = _images(photos)
    perfect = winter_truth(lambda x: winter(x, np.random.default_rng(0)), images, tmp_path)
    rows = _rows(perfect)
    assert rows["G_AB(x)"][0] == math.inf and rows["G_AB(x)"][1] == pytest.approx(1.0)
    # the input as is, scored by hand
    want = [np.mean([f(x, winter(x, np.random.default_rng(0))) for _, x in images])
            for f in (psnr, ssim)]
    assert rows["input as is"] == pytest.approx(want, rel=1e-12)
    assert rows["input as is"][0] < 20 and rows["input as is"][1] < 0.99  # a real difference
    # other flakes: close, not equal (the flakes are part of the truth)
    other = _rows(winter_truth(lambda x: winter(x, np.random.default_rng(1)), images,
                               tmp_path))["G_AB(x)"]
    assert 25 < other[0] < math.inf and rows["input as is"][1] < other[1] < 1.0
    # the images it links: input, output, truth, for each image
    assert [row[0] for row in perfect["images"]] == ["p0", "p1", "p2"]
    for row in perfect["images"]:
        assert all((tmp_path / f).is_file() for f in row[1:])


def test_showcase_cyclegan_needs_truth_winter(models: Path, photos: Path, tmp_path: Path) -> None:
    line = error_line(invoke("showcase", models["cyclegan"], photos, "--out", tmp_path / "o"))
    assert "--truth winter" in line
    line = error_line(invoke("showcase", models["sr"], photos, "--out", tmp_path / "o",
                             "--truth", "winter"))
    assert "only for cyclegan models" in line and "'sr' model" in line
    assert not (tmp_path / "o").exists()
    result = invoke("showcase", models["cyclegan"], photos, "--out", tmp_path / "o",
                    "--truth", "winter", "--limit", 2, "--device", "cpu")
    assert result.exit_code == 0, result.output
    section = read_section(tmp_path / "o" / "section.json")
    assert [row[0] for row in section["rows"]] == ["G_AB(x)", "input as is"]
    assert len(section["images"]) == 2  # --limit


# ── super-resolution and inpainting heads, scored as `translate eval` scores them ─────────

def test_sr_showcase_scores_as_translate_eval(models: Path, photos: Path, tmp_path: Path) -> None:
    from translate.eval.sr import evaluate_sr

    result = invoke("showcase", models["sr"], photos, "--out", tmp_path / "sr", "--device", "cpu")
    assert result.exit_code == 0, result.output
    rows = _rows(read_section(tmp_path / "sr" / "section.json"))
    scored = evaluate_sr(load_model(models["sr"]), photos).as_dict()
    assert rows["bicubic"] == pytest.approx([scored["bicubic"]["psnr"],
                                             scored["bicubic"]["ssim"]], abs=1e-9)
    assert rows["sr"] == pytest.approx([scored["model"]["psnr"], scored["model"]["ssim"]],
                                       abs=1e-9)
    assert rows["sr"] != pytest.approx(rows["bicubic"])  # a random network is not bicubic


def test_sr_section_of_bicubic_itself_ties(photos: Path, tmp_path: Path) -> None:
    section = sr_beside_bicubic(lambda lr: imresize(lr, scale=4), _images(photos), tmp_path,
                                4, "bicubic again")
    rows = _rows(section)
    assert rows["bicubic again"] == rows["bicubic"]
    assert 15 < rows["bicubic"][0] < 60
    with_lr = section["images"][0]
    assert with_lr[1] == "p0_lr.png"
    from PIL import Image

    with Image.open(tmp_path / with_lr[1]) as lr, Image.open(tmp_path / with_lr[4]) as hr:
        assert (lr.size, hr.size) == ((W // 4, H // 4), (W, H))


def test_inpaint_showcase_scores_cv2_as_translate_eval(models: Path, photos: Path,
                                                        tmp_path: Path) -> None:
    from translate.eval.inpaint import evaluate_inpaint

    result = invoke("showcase", models["inpaint"], photos, "--out", tmp_path / "ip",
                    "--seed", 3, "--device", "cpu")
    assert result.exit_code == 0, result.output
    rows = _rows(read_section(tmp_path / "ip" / "section.json"))
    scored = evaluate_inpaint(load_model(models["inpaint"]), photos, presets=("medium",),
                              seed=3).sets[0].scores
    assert rows["cv2 Telea"] == pytest.approx([scored["cv2 Telea"].psnr,
                                               scored["cv2 Telea"].ssim], abs=1e-9)
    assert rows["inpaint"] == pytest.approx([scored["model"].psnr, scored["model"].ssim],
                                            abs=1e-6)


def test_showcase_of_a_missing_folder_is_one_line(models: Path, tmp_path: Path) -> None:
    line = error_line(invoke("showcase", models["sr"], tmp_path / "nope", "--out", tmp_path / "o"))
    assert "images not found" in line and "nope" in line


# ── translate report --section ─────────────────────────────────────────────────────────────

def _section_file(folder: Path, **changes: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in ("a_in.png", "a_out.png"):
        write_image(folder / name, smooth_image(rng, 8, 8))
    data = {"title": "Heads <x>", "note": "means over 1 image", "columns": ["PSNR (dB)", "SSIM"],
            "rows": [["bicubic", 27.031, 0.73251], ["model", None, 0.5]],
            "image_columns": ["input", "output"], "images": [["a", "a_in.png", "a_out.png"]]}
    data.update(changes)
    path = folder / "section.json"
    path.write_text(json.dumps(data))
    return path


def test_report_shows_a_section(gan_run: Path, tmp_path: Path) -> None:
    section = _section_file(tmp_path / "sec")
    result = invoke("report", gan_run, "--section", section)
    assert result.exit_code == 0, result.output
    page_path = gan_run / "report.html"
    page = page_path.read_text(encoding="utf-8")
    assert "<h2>Heads &lt;x&gt;</h2>" in page and "means over 1 image" in page
    assert '<td>bicubic</td><td class="num">27.03</td><td class="num">0.7325</td>' in page
    assert '<td>model</td><td class="num">—</td><td class="num">0.5</td>' in page
    shown = [s for s in img_sources(page) if s.endswith(("a_in.png", "a_out.png"))]
    assert len(shown) == 2
    for src in shown:
        assert (page_path.parent / src).resolve() == (tmp_path / "sec" / Path(src).name)


@pytest.mark.parametrize("changes, message", [
    ({"rows": [["bicubic", 27.0]]}, "'rows' row 0: expected a name and 2 numbers"),
    ({"rows": [["bicubic", "27", 0.7]]}, "'rows' row 0"),
    ({"images": [["a", "a_in.png", "gone.png"]]}, "image 'gone.png' not found"),
    ({"colour": 1}, "unknown key 'colour'"),
    ({"title": ""}, "'title' must be a non-empty string"),
    ({"image_columns": []}, "'images' row 0: expected a name and 0 image paths"),
])
def test_a_bad_section_is_one_line_and_no_report(gan_run: Path, tmp_path: Path,
                                                 changes: dict, message: str) -> None:
    section = _section_file(tmp_path / "sec", **changes)
    out = tmp_path / "r.html"
    line = error_line(invoke("report", gan_run, "--section", section, "--out", out))
    assert message in line and "section.json" in line
    assert not out.exists() and not list(tmp_path.glob("r_*.png"))


def test_read_section_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TranslateError, match="no such file"):
        read_section(tmp_path / "section.json")


def test_format_number() -> None:
    assert [format_number(v) for v in (28.2, 12.277, 0.75651, 5.0, math.inf)] == [
        "28.20", "12.28", "0.7565", "5", "inf"]
