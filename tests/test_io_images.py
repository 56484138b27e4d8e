"""translate.io.images on a hostile folder built here: odd modes, bad files, hidden files."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import jpeg_bytes
from PIL import Image, ImageOps

from translate.errors import TranslateError
from translate.io.images import (
    IMAGE_EXTENSIONS,
    ImageReadError,
    from_float,
    read_image,
    rgb_to_gray,
    scan_images,
    to_float,
    to_rgb,
    write_image,
)

RNG = np.random.default_rng(0)
RGB8 = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
RGBA8 = RNG.integers(0, 256, (4, 6, 4), dtype=np.uint8)
GRAY16 = np.array([[0, 300, 40000, 65535, 12345], [1, 2, 3, 4, 5], [65535, 0, 256, 255, 40000]],
                  dtype=np.uint16)
RGB16 = RNG.integers(0, 65536, (3, 4, 3), dtype=np.uint16)
RGBA16 = RNG.integers(0, 65536, (3, 4, 4), dtype=np.uint16)
PALETTE = [255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9)
INDICES = np.array([[0, 1, 2, 0], [2, 1, 0, 1], [1, 1, 2, 2]], dtype=np.uint8)


def _png_with_orientation(png: bytes, orientation: int) -> bytes:
    """Insert an eXIf chunk (EXIF Orientation) right after IHDR of a PNG byte string."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()[6:]  # PNG stores the TIFF structure without "Exif\0\0"
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + payload))
    return png[:33] + chunk + png[33:]  # 8-byte signature + 25-byte IHDR chunk


def _cv2_bytes(ext: str, rgb: np.ndarray) -> bytes:
    bgr = rgb[..., [2, 1, 0, 3][: rgb.shape[2]]]
    ok, data = cv2.imencode(ext, np.ascontiguousarray(bgr))
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    (root / "sub dir" / "ñested").mkdir(parents=True)
    (root / "out").mkdir()
    (root / ".cache").mkdir()

    Image.fromarray(np.arange(24, dtype=np.uint8).reshape(4, 6) * 10).save(root / "gray8.png")
    Image.fromarray(RGB8).save(root / "sub dir" / "ñested" / "été photo.png")
    Image.fromarray(GRAY16).save(root / "gray16.png")
    (root / "rgb16.png").write_bytes(_cv2_bytes(".png", RGB16))
    (root / "rgba16.png").write_bytes(_cv2_bytes(".png", RGBA16))
    (root / "rgb16.tif").write_bytes(_cv2_bytes(".tiff", RGB16))
    (root / "rgb16_rot6.png").write_bytes(_png_with_orientation(_cv2_bytes(".png", RGB16), 6))
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(root / "cmyk.jpg")  # pure red in CMYK
    Image.fromarray(RGBA8).save(root / "rgba.png")
    Image.fromarray(np.array([[0, 255, 0], [255, 0, 255]], np.uint8)).convert("1").save(
        root / "bilevel.png")
    Image.fromarray(RGBA8[..., [0, 3]]).save(root / "gray_alpha.png")  # mode LA

    pal = Image.fromarray(INDICES, mode="P")
    pal.putpalette(PALETTE)
    pal.save(root / "palette.gif")
    pal.save(root / "palette_transparent.png", transparency=2)
    red = Image.new("P", (6, 4), 0)
    red.putpalette(PALETTE)
    blue = Image.new("P", (6, 4), 2)
    blue.putpalette(PALETTE)
    red.save(root / "anim.gif", save_all=True, append_images=[blue], duration=100)

    # 40 wide x 20 high, white marker block at the stored top-left, EXIF says "rotate 90 CW".
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:6, :6] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    (root / "rotated.jpg").write_bytes(jpeg_bytes(Image.fromarray(stored), exif=exif))

    Image.fromarray(RGB8).save(root / "png_named.jpg", format="PNG")
    (root / "UPPER.JPG").write_bytes(jpeg_bytes(Image.fromarray(RGB8)))
    Image.new("RGB", (50, 50), (10, 20, 30)).save(root / "big.png")

    # Broken files.
    noise = Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    full_jpeg = jpeg_bytes(noise)
    (root / "truncated.jpg").write_bytes(full_jpeg[: len(full_jpeg) // 2])
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    (root / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_text("this is not a picture\n")
    (root / "a folder.png").mkdir()

    # Things the scan must ignore.
    Image.new("L", (2, 2)).save(root / ".hidden.png")
    Image.new("L", (2, 2)).save(root / ".cache" / "inside.png")
    (root / ".result.png.abc123.tmp").write_bytes(b"partial")
    (root / "readme.txt").write_text("hello")
    Image.new("L", (2, 2)).save(root / "out" / "result.png")
    os.symlink(root, root / "loop", target_is_directory=True)
    os.symlink(root / "missing.png", root / "dangling.png")
    return root


# ---------------------------------------------------------------------------------- scanning


def test_scan_images_finds_images_only(hostile: Path):
    found = scan_images(hostile, exclude=hostile / "out")
    names = [p.relative_to(hostile).as_posix() for p in found]
    assert names == [
        "UPPER.JPG", "anim.gif", "big.png", "bilevel.png", "cmyk.jpg", "empty.png", "gray16.png",
        "gray8.png", "gray_alpha.png", "notes.png", "palette.gif", "palette_transparent.png",
        "png_named.jpg", "rgb16.png", "rgb16.tif", "rgb16_rot6.png", "rgba.png", "rgba16.png",
        "rotated.jpg", "sub dir/ñested/été photo.png", "truncated.jpg", "truncated.png",
    ]
    assert all(p.is_file() for p in found)


def test_scan_images_without_exclude_includes_output_folder(hostile: Path):
    names = {p.relative_to(hostile).as_posix() for p in scan_images(hostile)}
    assert "out/result.png" in names
    assert not any(n.startswith("loop/") for n in names)  # symlinked folder not followed


def test_scan_images_single_file_and_missing(hostile: Path):
    assert scan_images(hostile / "readme.txt") == [hostile / "readme.txt"]
    assert scan_images(hostile / "gray8.png") == [hostile / "gray8.png"]
    assert scan_images(hostile, exclude=hostile) == []
    with pytest.raises(TranslateError, match="no such file or folder"):
        scan_images(hostile / "nope")


def test_image_extensions():
    expected = {"jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "gif", "ppm", "pgm"}
    assert {e.lstrip(".") for e in IMAGE_EXTENSIONS} == expected


# ---------------------------------------------------------------------------------- reading


def test_read_8bit_gray_and_non_ascii_path(hostile: Path):
    img = read_image(hostile / "gray8.png")
    assert img.array.shape == (4, 6, 1) and img.array.dtype == np.uint8
    np.testing.assert_array_equal(img.array[..., 0], np.arange(24).reshape(4, 6) * 10)
    assert (img.alpha, img.bit_depth, img.mode, img.frames, img.warning) == (None, 8, "L", 1, None)

    img = read_image(hostile / "sub dir" / "ñested" / "été photo.png")
    np.testing.assert_array_equal(img.array, RGB8)
    assert img.source == hostile / "sub dir" / "ñested" / "été photo.png"


def test_read_16bit_gray_keeps_values(hostile: Path):
    img = read_image(hostile / "gray16.png")
    assert img.array.dtype == np.uint16 and img.array.shape == (3, 5, 1)
    assert img.bit_depth == 16 and img.array.max() == 65535
    np.testing.assert_array_equal(img.array[..., 0], GRAY16)  # 40000 stays 40000


@pytest.mark.parametrize("name", ["rgb16.png", "rgb16.tif"])
def test_read_16bit_colour(hostile: Path, name: str):
    img = read_image(hostile / name)
    assert img.array.dtype == np.uint16 and img.bit_depth == 16 and img.alpha is None
    np.testing.assert_array_equal(img.array, RGB16)  # RGB order, not OpenCV's BGR


def test_read_16bit_rgba(hostile: Path):
    img = read_image(hostile / "rgba16.png")
    np.testing.assert_array_equal(img.array, RGBA16[..., :3])
    assert img.alpha is not None and img.alpha.dtype == np.uint16
    np.testing.assert_array_equal(img.alpha, RGBA16[..., 3])


def test_read_16bit_colour_applies_exif_orientation(hostile: Path):
    img = read_image(hostile / "rgb16_rot6.png")
    assert img.array.shape == (4, 3, 3)
    np.testing.assert_array_equal(img.array, np.rot90(RGB16, -1))


def test_read_cmyk_jpeg_gives_rgb(hostile: Path):
    img = read_image(hostile / "cmyk.jpg")
    assert img.mode == "CMYK" and img.array.shape == (8, 8, 3)
    assert np.abs(img.array.astype(int) - [255, 0, 0]).max() <= 8


def test_read_rgba_keeps_alpha_exactly(hostile: Path):
    img = read_image(hostile / "rgba.png")
    np.testing.assert_array_equal(img.array, RGBA8[..., :3])
    np.testing.assert_array_equal(img.alpha, RGBA8[..., 3])


def test_read_bilevel_and_gray_alpha(hostile: Path):
    img = read_image(hostile / "bilevel.png")
    assert img.mode == "1" and img.array.dtype == np.uint8
    np.testing.assert_array_equal(img.array[..., 0], [[0, 255, 0], [255, 0, 255]])
    img = read_image(hostile / "gray_alpha.png")
    assert img.mode == "LA" and img.array.shape == (4, 6, 1)
    np.testing.assert_array_equal(img.array[..., 0], RGBA8[..., 0])
    np.testing.assert_array_equal(img.alpha, RGBA8[..., 3])


def test_read_palette(hostile: Path):
    rgb = np.array(PALETTE[:9], np.uint8).reshape(3, 3)[INDICES]
    img = read_image(hostile / "palette.gif")
    assert img.mode == "P" and img.alpha is None and img.frames == 1
    np.testing.assert_array_equal(img.array, rgb)
    img = read_image(hostile / "palette_transparent.png")
    np.testing.assert_array_equal(img.array, rgb)
    np.testing.assert_array_equal(img.alpha, np.where(INDICES == 2, 0, 255))


def test_read_animated_gif_uses_first_frame(hostile: Path):
    img = read_image(hostile / "anim.gif")
    assert img.frames == 2
    assert img.warning is not None and "2 frames" in img.warning
    assert img.array.shape == (4, 6, 3)
    assert (img.array == [255, 0, 0]).all()  # red first frame, not the blue second


def test_read_applies_exif_orientation(hostile: Path):
    img = read_image(hostile / "rotated.jpg")
    assert img.array.shape == (40, 20, 3)  # stored 20 high x 40 wide
    assert img.array[:5, -5:].min() > 200  # stored top-left marker is now top-right
    assert img.array[:5, :5].max() < 50
    assert img.array[-5:, -5:].max() < 50


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_matches_pillow_exif_transpose(tmp_path: Path, orientation: int):
    stored = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4))
    exif = stored.getexif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").array[..., 0], expected)


def test_read_by_content_not_extension(hostile: Path):
    img = read_image(hostile / "png_named.jpg")
    np.testing.assert_array_equal(img.array, RGB8)  # lossless: really read as PNG
    assert read_image(hostile / "UPPER.JPG").array.shape == (5, 7, 3)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("truncated.jpg", "truncated or corrupt image data"),
        ("truncated.png", "truncated or corrupt image data"),
        ("empty.png", "empty file"),
        ("notes.png", "not an image file"),
        ("missing.png", "file not found"),
        ("dangling.png", "file not found"),
        ("a folder.png", "is a folder"),
    ],
)
def test_bad_files_raise_image_read_error(hostile: Path, name: str, reason: str):
    with pytest.raises(ImageReadError) as caught:
        read_image(hostile / name)
    err = caught.value
    assert isinstance(err, TranslateError)
    assert err.path == hostile / name and reason in err.reason
    assert str(err).startswith(f"{hostile / name}: {reason}")
    assert "\n" not in str(err)


def test_fifo_is_refused_without_hanging(tmp_path: Path):
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(tmp_path / "pipe.png")


def test_pixel_limit_checked(hostile: Path):
    with pytest.raises(ImageReadError) as caught:
        read_image(hostile / "big.png", max_pixels=1000)
    assert caught.value.reason == "image has 2500 pixels, over the limit of 1000 (--max-pixels)"
    assert read_image(hostile / "big.png", max_pixels=2500).array.shape == (50, 50, 3)


@pytest.mark.parametrize("kind", ["warning", "error"])
def test_pillow_decompression_bomb_becomes_pixel_limit_error(hostile, monkeypatch, kind):
    def bomb(size, *, error_only=False):
        msg = f"Image size ({size[0] * size[1]} pixels) exceeds limit of 9 pixels, could be ..."
        if kind == "error":
            raise Image.DecompressionBombError(msg)
        import warnings

        warnings.warn(msg, Image.DecompressionBombWarning, stacklevel=2)

    monkeypatch.setattr(Image, "_decompression_bomb_check", bomb)
    with pytest.raises(ImageReadError) as caught:
        read_image(hostile / "big.png", max_pixels=1000)
    assert caught.value.reason == "image has 2500 pixels, over the limit of 1000 (--max-pixels)"


# ------------------------------------------------------------------------------ conversions


def test_to_float_and_from_float():
    img = np.array([[[0], [128], [255]]], np.uint8)
    f = to_float(img)
    assert f.dtype == np.float32 and f.shape == (1, 3, 1)
    np.testing.assert_allclose(f[0, :, 0], [0, 128 / 255, 1])
    np.testing.assert_array_equal(from_float(f, 8), img)
    np.testing.assert_array_equal(from_float(to_float(GRAY16), 16), GRAY16)
    out = from_float(np.array([-0.5, 0.5, 1.5, np.nan]), 16)
    assert out.dtype == np.uint16 and out.tolist() == [0, 32768, 65535, 0]
    assert from_float(np.array([0.5]), 8).tolist() == [128]


def test_to_rgb_and_rgb_to_gray(hostile: Path):
    gray = read_image(hostile / "gray16.png")
    rgb = to_rgb(gray)
    assert rgb.shape == (3, 5, 3) and rgb.dtype == np.uint16
    assert (rgb == gray.array).all()
    np.testing.assert_array_equal(rgb_to_gray(rgb), gray.array)  # weights sum to 1
    colours = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)
    luma = rgb_to_gray(colours)
    assert luma.shape == (1, 4, 1) and luma.dtype == np.uint8
    assert luma.ravel().tolist() == [76, 150, 29, 255]  # 0.299, 0.587, 0.114 of 255
    assert to_rgb(RGB8) is RGB8


# ---------------------------------------------------------------------------------- writing


@pytest.mark.parametrize(
    "name, array, alpha, depth",
    [
        ("g8.png", RGBA8[..., 0], None, 8),
        ("rgb8.png", RGB8, None, 8),
        ("la8.png", RGBA8[..., :1], RGBA8[..., 3], 8),
        ("rgba8.png", RGBA8[..., :3], RGBA8[..., 3], 8),
        ("g16.png", GRAY16, None, 16),
        ("rgb16.png", RGB16, None, 16),
        ("rgba16.png", RGBA16[..., :3], RGBA16[..., 3], 16),
        ("g16.tif", GRAY16, None, 16),
        ("rgba16.tif", RGBA16[..., :3], RGBA16[..., 3], 16),
        ("rgba8.tiff", RGBA8[..., :3], RGBA8[..., 3], 8),
        ("rgb8.bmp", RGB8, None, 8),
        ("rgb8.ppm", RGB8, None, 8),
        ("g8.pgm", RGBA8[..., :1], None, 8),
    ],
)
def test_write_read_round_trip_is_exact(tmp_path: Path, name, array, alpha, depth):
    path = tmp_path / "new folder" / "ünï" / name
    write_image(path, array, alpha=alpha, bit_depth=depth)
    img = read_image(path)
    assert img.bit_depth == depth
    np.testing.assert_array_equal(img.array, array.reshape(img.array.shape))
    if alpha is None:
        assert img.alpha is None
    else:
        np.testing.assert_array_equal(img.alpha, alpha)
    assert os.listdir(path.parent) == [name]  # no temp file left behind


def test_write_16bit_gray_with_alpha_becomes_rgba(tmp_path: Path):
    write_image(tmp_path / "ga.png", GRAY16, alpha=GRAY16[::-1], bit_depth=16)
    img = read_image(tmp_path / "ga.png")
    np.testing.assert_array_equal(img.array, np.repeat(GRAY16[..., None], 3, axis=2))
    np.testing.assert_array_equal(img.alpha, GRAY16[::-1])


def test_write_jpeg_drops_alpha_and_reduces_16_bit(tmp_path: Path):
    colour = np.full((8, 8, 3), [40000, 20000, 5000], np.uint16)
    write_image(tmp_path / "x.jpg", colour, alpha=np.zeros((8, 8), np.uint16), bit_depth=16)
    img = read_image(tmp_path / "x.jpg")
    assert img.bit_depth == 8 and img.array.dtype == np.uint8 and img.alpha is None
    expected = np.rint(np.array([40000, 20000, 5000]) / 257)
    assert np.abs(img.array.reshape(-1, 3) - expected).max() <= 3


def test_write_webp_keeps_alpha_and_float_input(tmp_path: Path):
    write_image(tmp_path / "x.webp", RGBA8[..., :3], alpha=RGBA8[..., 3])
    assert read_image(tmp_path / "x.webp").alpha is not None
    values = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    write_image(tmp_path / "f.png", values, bit_depth=16)
    np.testing.assert_array_equal(read_image(tmp_path / "f.png").array[..., 0],
                                  from_float(values, 16))


def test_written_files_get_the_usual_permissions_not_mkstemps_owner_only(tmp_path: Path):
    umask = os.umask(0o022)
    os.umask(umask)
    write_image(tmp_path / "x.png", RGB8)
    assert (tmp_path / "x.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_write_unknown_extension_fails_clearly(tmp_path: Path):
    with pytest.raises(TranslateError, match=r"cannot write '\.xyz' images"):
        write_image(tmp_path / "x.xyz", RGB8)
    assert list(tmp_path.iterdir()) == []


def test_failed_encode_leaves_nothing_behind(tmp_path: Path, monkeypatch):
    target = tmp_path / "result.png"
    target.write_bytes(b"previous result")

    def half_written(im, fp, filename):
        fp.write(b"\x89PNG\r\n\x1a\n partial")
        raise OSError("simulated disk full")

    monkeypatch.setitem(Image.SAVE, "PNG", half_written)
    with pytest.raises(TranslateError, match="simulated disk full"):
        write_image(target, RGB8)
    with pytest.raises(TranslateError, match="simulated disk full"):
        write_image(tmp_path / "fresh.png", RGB8)
    assert target.read_bytes() == b"previous result"  # old file untouched
    assert sorted(os.listdir(tmp_path)) == ["result.png"]  # no temp, no partial "fresh.png"


def test_failed_16bit_encode_leaves_nothing_behind(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(cv2, "imencode", lambda ext, arr: (False, None))
    with pytest.raises(TranslateError, match="could not encode"):
        write_image(tmp_path / "x.png", RGB16, bit_depth=16)
    assert list(tmp_path.iterdir()) == []
