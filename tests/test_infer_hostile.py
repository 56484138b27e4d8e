"""`translate infer` once over a hostile folder: every odd-but-valid image comes out where, how
and with the pixels the pipeline gives; every bad file is listed with its reason; a rerun writes
nothing and reports the same failures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import invoke
from helpers import assert_no_temp_files, file_mtimes, jpeg_bytes, save_cyclegan, smooth_image
from PIL import Image

from translate.infer import FAILURES, TranslationPipeline
from translate.io.images import (
    from_float,
    read_image,
    rgb_to_gray,
    to_float,
    to_rgb,
    write_image,
)
from translate.modelfile import load_model
from translate.nets.resnet import ResnetGenerator

MAX_PIXELS = 48 * 48  # every valid input is at most 48 × 48; "huge.png" is 60 × 60
OLD_NS = 1_000_000_000 * 1_000_000_000  # an mtime (2001) no run could give a file it writes

# Relative path → (H, W, C, bit depth) of the upright input, which the output must keep.
VALID = {
    "deep/rgb16.png": (20, 28, 3, 16),
    "deep/gray16 ü.png": (24, 20, 1, 16),
    "cmyk.jpg": (24, 32, 3, 8),
    "rgba.png": (28, 36, 3, 8),
    "palette.gif": (24, 32, 3, 8),
    "photos 2024/été ñ/rotated.jpg": (40, 24, 3, 8),  # stored 24 high × 40 wide, EXIF 6
    "photos 2024/png saved as.jpg": (32, 20, 3, 8),
    "photos 2024/gray.jpg": (16, 24, 1, 8),
    "anim.gif": (20, 28, 3, 8),
}
# Relative path → the words its failure reason must contain.
BAD = {
    "日本 語/truncated.jpg": "truncated or corrupt image data",
    "empty.png": "empty file",
    "photos 2024/notes.png": "not an image file",
    "huge.png": f"image has 3600 pixels, over the limit of {MAX_PIXELS}",
}


def _build_hostile(root: Path) -> None:
    rng = np.random.default_rng(0)
    for folder in ("deep", "photos 2024/été ñ", "日本 語"):
        (root / folder).mkdir(parents=True)

    # 16-bit colour and 16-bit gray, with values 8 bits cannot hold.
    deep = rng.integers(0, 65536, (20, 28, 3), dtype=np.uint16)
    ok, data = cv2.imencode(".png", np.ascontiguousarray(deep[..., ::-1]))  # OpenCV is BGR
    assert ok
    (root / "deep/rgb16.png").write_bytes(data.tobytes())
    Image.fromarray(rng.integers(0, 65536, (24, 20), dtype=np.uint16)).save(
        root / "deep/gray16 ü.png")

    cmyk = np.dstack([smooth_image(rng, 24, 32, 3), np.full((24, 32), 40, np.uint8)])
    Image.fromarray(cmyk, mode="CMYK").save(root / "cmyk.jpg", quality=95)

    alpha = rng.integers(0, 256, (28, 36), dtype=np.uint8)
    alpha[0, :4] = [0, 1, 254, 255]
    Image.fromarray(np.dstack([smooth_image(rng, 28, 36), alpha])).save(root / "rgba.png")

    palette = rng.integers(0, 256, 256 * 3, dtype=np.uint8).tolist()
    indices = rng.integers(0, 16, (24, 32), dtype=np.uint8)
    pal = Image.fromarray(indices, mode="P")
    pal.putpalette(palette)
    pal.save(root / "palette.gif")

    frames = [Image.fromarray(smooth_image(rng, 20, 28)) for _ in range(2)]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:], duration=100)

    # Stored 40 wide × 24 high; EXIF orientation 6 says "turn 90° clockwise to view".
    exif = Image.Exif()
    exif[0x0112] = 6
    (root / "photos 2024/été ñ/rotated.jpg").write_bytes(
        jpeg_bytes(Image.fromarray(smooth_image(rng, 24, 40)), exif=exif))

    Image.fromarray(smooth_image(rng, 32, 20)).save(root / "photos 2024/png saved as.jpg", "PNG")
    gray = smooth_image(rng, 16, 24, 1)[..., 0]
    (root / "photos 2024/gray.jpg").write_bytes(jpeg_bytes(Image.fromarray(gray)))

    # Bad files.
    whole = jpeg_bytes(Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)))
    (root / "日本 語/truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "photos 2024/notes.png").write_text("this is not a picture\n")
    Image.fromarray(smooth_image(rng, 60, 60)).save(root / "huge.png")


def _expected(pipeline: TranslationPipeline, src: Path) -> tuple[np.ndarray, np.ndarray | None,
                                                                 int]:
    """What infer must write for ``src``: decoded as it decodes, through the pipeline, back to
    the input's channels (gray → RGB → gray) and bit depth, alpha carried unchanged."""
    image = read_image(src)
    x = torch.from_numpy(np.ascontiguousarray(to_float(to_rgb(image.array))))
    y = pipeline(x.permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()  # (H, W, 3)
    pixels = from_float(y, image.bit_depth)
    if image.array.shape[-1] == 1:
        pixels = rgb_to_gray(pixels)
    return pixels, image.alpha, image.bit_depth


def _failures(out: Path, folder: Path) -> dict[str, str]:
    lines = (out / FAILURES).read_text("utf-8").splitlines()
    failures = [json.loads(line) for line in lines]
    reasons = {Path(f["path"]).relative_to(folder).as_posix(): f["reason"] for f in failures}
    assert len(reasons) == len(failures), f"a file listed twice: {lines}"
    return reasons


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CycleGAN model folder, saved as training exports it (random weights: the test is
    about files, and training one costs ~30 s on 2 cores)."""
    folder = tmp_path_factory.mktemp("hostile-model")
    torch.manual_seed(0)
    return save_cyclegan(folder, ResnetGenerator(ngf=8, n_blocks=2),
                         ResnetGenerator(ngf=8, n_blocks=2), ema=False)


@pytest.mark.slow
def test_infer_on_a_hostile_folder(run: Path, tmp_path: Path) -> None:
    folder, out, reference = tmp_path / "in", tmp_path / "out", tmp_path / "reference"
    _build_hostile(folder)
    inputs_before = file_mtimes(folder)
    command = ("infer", run, folder, out, "--max-pixels", MAX_PIXELS, "-q")

    result = invoke(*command)
    assert result.exit_code == 1, result.output
    assert f"{len(VALID)} written, 0 already there, {len(BAD)} failed, of {len(VALID) + len(BAD)}" \
        in result.output
    assert "2 frames; only the first is used" in result.output  # the animated GIF's warning

    # Exactly one output per valid input, under the mirrored path, plus the failure list.
    assert set(file_mtimes(out)) == {*VALID, FAILURES}
    assert_no_temp_files(out)
    assert file_mtimes(folder) == inputs_before  # the inputs untouched, nothing written beside them

    pipeline = TranslationPipeline(load_model(run, task="cyclegan"), "a2b", "cpu", "auto")
    for name, (h, w, c, depth) in VALID.items():
        got = read_image(out / name)
        assert (*got.array.shape, got.bit_depth) == (h, w, c, depth), name
        pixels, alpha, bit_depth = _expected(pipeline, folder / name)
        assert pixels.shape == (h, w, c) and bit_depth == depth, name  # the fixture is right
        # JPEG and GIF outputs are lossy: compare with the expected result in the same format.
        write_image(reference / name, pixels, alpha=alpha, bit_depth=bit_depth)
        want = read_image(reference / name)
        tolerance = 257 if depth == 16 else 1  # 1/255 of full scale
        diff = np.abs(got.array.astype(np.int64) - want.array.astype(np.int64)).max()
        assert diff <= tolerance, f"{name}: off by {diff}"
        if name.endswith(".png"):  # lossless: the file holds exactly the pipeline's result
            assert np.abs(got.array.astype(np.int64) - pixels.astype(np.int64)).max() <= tolerance
        if alpha is None:
            assert got.alpha is None, name
        else:
            np.testing.assert_array_equal(got.alpha, alpha, err_msg=name)  # alpha exactly
        assert float(np.abs(to_float(got.array) - to_float(read_image(folder / name).array))
                     .mean()) > 0.01, f"{name}: the model did not run"

    # The rotated photo was translated upright, and its output carries no orientation that
    # would make a viewer turn it a second time.
    rotated = "photos 2024/été ñ/rotated.jpg"
    with Image.open(out / rotated) as im:
        assert im.size == (24, 40)
        assert im.getexif().get(0x0112, 1) == 1
    # The pixel check above can tell upright from "translated as stored, then turned":
    with Image.open(folder / rotated) as im:
        stored = torch.from_numpy(to_float(np.asarray(im))).permute(2, 0, 1)[None]
    turned_after = np.rot90(pipeline(stored)[0].permute(1, 2, 0).numpy(), -1)
    assert np.abs(to_float(read_image(out / rotated).array) - turned_after).mean() > 0.02
    with Image.open(out / "anim.gif") as im:
        assert getattr(im, "n_frames", 1) == 1

    failures = _failures(out, folder)
    assert set(failures) == set(BAD)
    for name, words in BAD.items():
        assert words in failures[name], (name, failures[name])

    # The same command again: nothing written, the same failures, still non-zero.
    for p in out.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(OLD_NS, OLD_NS))
    again = invoke(*command)
    assert again.exit_code == 1, again.output
    assert f"0 written, {len(VALID)} already there, {len(BAD)} failed" in again.output
    mtimes = file_mtimes(out)
    assert set(mtimes) == {*VALID, FAILURES}
    assert {name: mtimes[name] for name in VALID} == dict.fromkeys(VALID, OLD_NS)
    assert _failures(out, folder) == failures
    assert_no_temp_files(out)
