"""Reading and writing image files: the one place data prep, datasets and inference touch pixels.

Users point us at folders of their own photos, so reading is defensive:

* Files are identified by content, not extension (a PNG named ``.jpg`` reads fine), and only
  through the decoders for the formats in ``IMAGE_EXTENSIONS`` (Pillow's EPS/PDF plugins, which
  shell out to Ghostscript, are never tried).
* Every failure for a bad file is an ``ImageReadError`` naming the file and a one-line reason.
* The pixel count is checked from the header before anything is decoded, and the whole image is
  decoded up front so truncation is caught here rather than mid-training.
* EXIF orientation is applied, so arrays are upright as a photo viewer shows them.
* 16-bit data stays 16-bit (``uint16``). Pillow reads 16-bit colour PNG/TIFF/PPM as 8-bit, so
  those are decoded again with OpenCV.
* Animated or multi-page files give their first frame and a ``warning``.
* Colour profiles (ICC) are ignored: pixel values are used as stored.

Writing goes through ``translate.io.atomic``: a crash or a failing encoder never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from translate.errors import TranslateError
from translate.io.atomic import atomic_open, atomic_write

log = logging.getLogger(__name__)

# Lower-case, with the dot, as ``Path.suffix.lower()`` gives them.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
)

# 150 MP: above the largest camera sensors (~100 MP), below sizes that exhaust memory once
# converted to float32 (150e6 * 3 channels * 4 bytes = 1.8 GB).
DEFAULT_MAX_PIXELS = 150_000_000
# Outputs may be larger than inputs (super-resolution): 400 MP holds a ×4 of a 25 MP photo, and
# the SR memory budget (translate.infer.memory) bounds what making it costs. A --max-pixels the
# user gives bounds inputs and outputs alike.
DEFAULT_MAX_OUTPUT_PIXELS = 400_000_000

# Decoders Pillow may try ("JPEG" also opens multi-picture camera JPEGs as MPO).
_PIL_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF", "PPM")

# Output format (Pillow's name) for each extension we write.
_WRITE_FORMATS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF",
    ".tiff": "TIFF", ".webp": "WEBP", ".gif": "GIF", ".ppm": "PPM", ".pgm": "PPM",
}
_SIXTEEN_BIT_FORMATS = {"PNG", "TIFF"}
_ALPHA_FORMATS = {"PNG", "TIFF", "WEBP"}

_ORIENTATION_TAG = ExifTags.Base.Orientation
_pillow_limit_lock = threading.Lock()


class ImageReadError(TranslateError):
    """An image file that cannot be used; ``str()`` is ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class LoadedImage:
    """Pixels of one image file, upright, at the file's bit depth.

    Attributes:
        array: (H, W, C) with C in {1, 3}; ``uint8`` (bit_depth 8) or ``uint16`` (bit_depth 16).
        alpha: (H, W) of the same dtype, or None when the file has no transparency.
        bit_depth: 8 or 16.
        mode: Pillow's mode for the file as opened (e.g. ``"P"``, ``"CMYK"``, ``"I;16"``).
        frames: frames or pages in the file; only the first is read.
        source: the file read.
        warning: something the caller may want to tell the user (e.g. an animated file), or None.
    """

    array: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    mode: str
    frames: int
    source: Path
    warning: str | None = None


# --------------------------------------------------------------------------------------------
# Scanning


def scan_images(
    root: str | os.PathLike, exclude: str | os.PathLike | None = None,
    problems: list[tuple[Path, str]] | None = None,
) -> list[Path]:
    """All image files under ``root``, recursively, in a stable sorted order.

    Hidden files and folders (name starting with ``.``, which includes our own atomic-write temp
    files) and files whose extension is not in ``IMAGE_EXTENSIONS`` are skipped. Symlinked files
    are listed; symlinked folders are never entered, so links cannot lead out of ``root`` or loop.
    A subfolder that cannot be listed is skipped with a logged warning.

    Args:
        root: a folder to scan, or a single file, which is returned as ``[root]`` whatever its
            extension (the user named it explicitly).
        exclude: a folder to leave out, e.g. an output folder inside the input folder.
        problems: if given, gets (path, reason) for what was passed over as unreadable: a
            subfolder that cannot be listed, an image name that is a broken symlink or no
            regular file, an entry that cannot be examined.

    Raises:
        TranslateError: ``root`` does not exist or cannot be listed.
    """
    root = Path(root)
    try:
        root_stat = root.stat()
    except FileNotFoundError:
        raise TranslateError(f"{root}: no such file or folder") from None
    except OSError as e:
        raise TranslateError(f"{root}: cannot access ({e.strerror or e})") from None
    if not stat.S_ISDIR(root_stat.st_mode):
        return [root]

    skip: os.stat_result | None = None
    if exclude is not None:
        try:
            skip = os.stat(exclude)
        except OSError:
            skip = None  # an output folder that does not exist yet holds nothing to skip
        if skip is not None and os.path.samestat(skip, root_stat):
            return []

    found: list[Path] = []
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            if folder == root:
                raise TranslateError(f"{root}: cannot list folder ({e.strerror or e})") from None
            log.warning("skipping folder %s: %s", folder, e.strerror or e)
            if problems is not None:
                problems.append((folder, f"cannot list folder ({e.strerror or e})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if skip is None or not os.path.samestat(entry.stat(), skip):
                        pending.append(Path(entry.path))
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS:
                    if entry.is_file():  # follows file symlinks; drops broken ones
                        found.append(Path(entry.path))
                    elif problems is not None:
                        problems.append((Path(entry.path), "a broken symlink"
                                         if entry.is_symlink() else "not a regular file"))
            except OSError as e:  # vanished or unreadable entry: nothing we can list
                if problems is not None:
                    problems.append((Path(entry.path), f"cannot read ({e.strerror or e})"))
                continue
    return sorted(found, key=lambda p: p.parts)


# --------------------------------------------------------------------------------------------
# Reading


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read one image file by its content.

    Args:
        path: the file.
        max_pixels: refuse images with more pixels than this (checked from the header, before
            decoding); None for no limit.

    Returns:
        The first frame, EXIF orientation applied, as a ``LoadedImage``. Grayscale ('1', 'L',
        16-bit 'I;16'/'I') gives one channel; palette images give RGB, or RGB + alpha when the
        palette has transparency; CMYK and other colour modes are converted to RGB.

    Raises:
        ImageReadError: missing, unreadable, empty, not an image, truncated or corrupt, or over
            ``max_pixels``. No other exception escapes for a bad file.
    """
    path = Path(path)
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"max_pixels must be positive or None, got {max_pixels}")
    _check_regular_file(path)
    _allow_pillow_up_to(max_pixels)
    try:
        with open(path, "rb") as f:
            return _decode(f, path, max_pixels)
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageReadError(path, _bomb_reason(e, max_pixels)) from e
    except UnidentifiedImageError as e:
        raise ImageReadError(path, "not an image file (or not a supported format)") from e
    except FileNotFoundError as e:
        raise ImageReadError(path, "file not found") from e
    except PermissionError as e:
        raise ImageReadError(path, "permission denied") from e
    except MemoryError as e:
        raise ImageReadError(path, "not enough memory to decode the image") from e
    except Exception as e:  # decoders raise all sorts on hostile data; none may escape
        raise ImageReadError(path, f"truncated or corrupt image data ({_one_line(e)})") from e


def _check_regular_file(path: Path) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageReadError(path, "file not found") from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as e:
        raise ImageReadError(path, f"cannot read file ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError(path, "is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        # A FIFO or device would block or never end.
        raise ImageReadError(path, "not a regular file")
    if st.st_size == 0:
        raise ImageReadError(path, "empty file")


def _allow_pillow_up_to(max_pixels: int | None) -> None:
    """Keep Pillow's own bomb limit no lower than ours, so ``max_pixels`` is the one that rules.

    Pillow's limit is a process-wide global; we only ever raise it, so concurrent readers with
    different limits cannot undercut each other.
    """
    current = Image.MAX_IMAGE_PIXELS
    if current is None or (max_pixels is not None and max_pixels <= current):
        return
    with _pillow_limit_lock:
        current = Image.MAX_IMAGE_PIXELS
        if current is not None and (max_pixels is None or max_pixels > current):
            Image.MAX_IMAGE_PIXELS = max_pixels


def _limit_reason(pixels: int | str, max_pixels: int | None) -> str:
    return f"image has {pixels} pixels, over the limit of {max_pixels} (--max-pixels)"


def _bomb_reason(exc: Exception, max_pixels: int | None) -> str:
    # Pillow only fires above its global limit, which _allow_pillow_up_to keeps >= max_pixels.
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = found.group(1) if found else "too many"
    return _limit_reason(pixels, max_pixels if max_pixels is not None else Image.MAX_IMAGE_PIXELS)


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _decode(f: IO[bytes], path: Path, max_pixels: int | None) -> LoadedImage:
    notes: list[str] = []
    with warnings.catch_warnings():
        # Pillow warns (rather than raises) between 1x and 2x its limit; both mean "too big".
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(f, formats=_PIL_FORMATS) as im:
            width, height = im.size  # from the header: nothing decoded yet
            if width < 1 or height < 1:
                raise ImageReadError(path, f"image has no pixels ({width}x{height})")
            if max_pixels is not None and width * height > max_pixels:
                raise ImageReadError(path, _limit_reason(width * height, max_pixels))
            mode = im.mode
            frames = int(getattr(im, "n_frames", 1))
            if frames > 1:
                notes.append(f"image has {frames} frames; only the first is used")
            sixteen_bit_colour = _is_16bit_colour(im)
            im.load()  # full decode of frame 0: truncation raises here
            orientation = _orientation(im, notes)
            array = alpha = None
            if sixteen_bit_colour:
                decoded = _decode_16bit_colour(f, im)
                if decoded is None:
                    notes.append("16-bit colour data could not be decoded; read as 8-bit")
                else:
                    array, alpha = decoded
            if array is None:
                array, alpha = _pil_arrays(im, path)

    array = _orient(array, orientation)
    if alpha is not None:
        alpha = np.require(_orient(alpha, orientation), requirements=["C", "W"])
    array = np.require(array, requirements=["C", "W"])
    return LoadedImage(
        array=array,
        alpha=alpha,
        bit_depth=16 if array.dtype == np.uint16 else 8,
        mode=mode,
        frames=frames,
        source=path,
        warning="; ".join(notes) or None,
    )


def _rawmode(im: Image.Image) -> str:
    """How the file stores pixels according to the decoder, e.g. ``'RGB;16B'``."""
    if not im.tile:
        return ""
    args = im.tile[0].args
    if isinstance(args, tuple):
        args = args[0] if args else ""
    return args if isinstance(args, str) else ""


def _is_16bit_colour(im: Image.Image) -> bool:
    """Colour (or gray + alpha) stored at 16 bits, which Pillow would reduce to 8 bits."""
    if im.mode not in ("RGB", "RGBA", "RGBX", "LA"):
        return False
    if ";16" in _rawmode(im):  # PNG 'RGB;16B', 'LA;16B'; TIFF 'RGB;16N'
        return True
    if im.format == "PPM":  # tile args are (rawmode, maxval)
        args = im.tile[0].args if im.tile else ()
        maxval = args[1] if isinstance(args, tuple) and len(args) > 1 else 255
        return isinstance(maxval, int) and maxval > 255
    if im.format == "TIFF":
        bits = getattr(im, "tag_v2", {}).get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        return any(b > 8 for b in bits)
    return False


def _decode_16bit_colour(
    f: IO[bytes], im: Image.Image
) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Decode with OpenCV, which keeps 16-bit colour. None if it cannot (caller falls back)."""
    import cv2  # lazy: only 16-bit colour files need it, and it is slow to import

    f.seek(0)
    # imdecode on bytes rather than imread on the path: no trouble with non-ASCII names.
    decoded = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16 or decoded.shape[:2] != im.size[::-1]:
        return None
    if decoded.ndim == 2:
        return decoded[..., None], None
    channels = decoded.shape[2]
    if channels == 1:
        return decoded, None
    if channels == 2:
        return decoded[..., :1], decoded[..., 1]
    rgb = decoded[..., 2::-1]  # OpenCV is BGR(A)
    alpha = decoded[..., 3] if channels == 4 else None
    if _rawmode(im).startswith("LA"):
        rgb = rgb[..., :1]  # OpenCV expands gray + alpha to BGRA; keep it gray
    return rgb, alpha


def _pil_arrays(im: Image.Image, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, C) pixels and (H, W) alpha from a loaded Pillow image, as stored (not oriented)."""
    mode = im.mode
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"))[..., None], None
    if mode == "I" or mode.startswith("I;16"):
        values = np.asarray(im)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageReadError(path, f"unsupported image mode {mode!r} (values beyond 16 bits)")
        return values.astype(np.uint16)[..., None], None
    if mode in ("LA", "La"):
        la = np.asarray(im.convert("LA"))
        return la[..., :1], la[..., 1]
    if mode in ("RGB", "RGBA"):
        rgb = np.asarray(im)
    elif mode in ("P", "PA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        # Pillow reads Adobe (inverted) CMYK JPEGs already un-inverted, so convert() is right.
        keep_alpha = mode in ("PA", "RGBa") or (mode == "P" and im.has_transparency_data)
        try:
            rgb = np.asarray(im.convert("RGBA" if keep_alpha else "RGB"))
        except ValueError as e:
            raise ImageReadError(path, f"unsupported image mode {mode!r}") from e
    else:
        raise ImageReadError(path, f"unsupported image mode {mode!r}")
    if rgb.shape[2] == 4:
        return rgb[..., :3], rgb[..., 3]
    return rgb, None


def _orientation(im: Image.Image, notes: list[str]) -> int:
    """EXIF orientation (1-8), or 1 when absent or unreadable."""
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # broken EXIF should not cost the user the image
        notes.append("could not read EXIF orientation; image left as stored")
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


# What ImageOps.exif_transpose does for each EXIF orientation, on (H, W, ...) arrays, so the
# OpenCV path (which ignores EXIF here) and the Pillow path are oriented the same way.
_ORIENT = {
    2: lambda a: a[:, ::-1],  # mirrored
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1],  # flipped vertically
    5: lambda a: a.swapaxes(0, 1),  # transposed
    6: lambda a: np.rot90(a, -1),  # stored rotated 90 counter-clockwise: turn it clockwise
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transverse
    8: lambda a: np.rot90(a, 1),  # stored rotated 90 clockwise: turn it counter-clockwise
}


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    turn = _ORIENT.get(orientation)
    return array if turn is None else turn(array)


# --------------------------------------------------------------------------------------------
# Conversions


def _max_value(dtype: np.dtype) -> int:
    if dtype == np.uint8:
        return 255
    if dtype == np.uint16:
        return 65535
    raise ValueError(f"expected uint8 or uint16 pixels, got {dtype}")


def to_float(image: LoadedImage | np.ndarray) -> np.ndarray:
    """Pixels as float32 in [0, 1] (uint8 / 255, uint16 / 65535). Alpha is not included."""
    array = image.array if isinstance(image, LoadedImage) else np.asarray(image)
    return array.astype(np.float32) / np.float32(_max_value(array.dtype))


def from_float(array: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Float pixels in [0, 1] to rounded ``uint8`` (bit_depth 8) or ``uint16`` (16).

    Values outside [0, 1] are clipped and NaN becomes 0.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    peak = 255 if bit_depth == 8 else 65535
    clipped = np.clip(np.nan_to_num(np.asarray(array, dtype=np.float32), nan=0.0), 0.0, 1.0)
    return np.rint(clipped * peak).astype(np.uint8 if bit_depth == 8 else np.uint16)


def to_rgb(image: LoadedImage | np.ndarray) -> np.ndarray:
    """(H, W, 3) pixels for models that need colour: one channel is repeated three times."""
    array = image.array if isinstance(image, LoadedImage) else np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape[-1] == 3:
        return array
    if array.shape[-1] != 1:
        raise ValueError(f"expected 1 or 3 channels, got shape {array.shape}")
    return np.repeat(array, 3, axis=-1)


def to_rgb8(image: LoadedImage | np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) ``uint8`` RGB from what ``read_image`` gives, for models that want 8-bit colour.

    One channel is repeated three times; 16-bit is scaled by round(v / 257) (65535 → 255);
    transparency is composited onto white: out = c·α + max·(1 − α), rounded.

    Args:
        image: a ``LoadedImage`` (its alpha is used), or an (H, W[, C]) ``uint8``/``uint16``
            array with C in {1, 3}.
        alpha: (H, W) transparency for an array ``image`` (ignored for a ``LoadedImage``).
    """
    if isinstance(image, LoadedImage):
        array, alpha = image.array, image.alpha
    else:
        array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(f"expected (H, W), (H, W, 1) or (H, W, 3) pixels, got {array.shape}")
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 pixels, got {array.dtype}")
    peak = 255.0 if array.dtype == np.uint8 else 65535.0

    if alpha is not None:
        alpha = np.asarray(alpha)
        alpha = alpha[..., 0] if alpha.ndim == 3 else alpha
        if alpha.shape != array.shape[:2]:
            raise ValueError(f"alpha shape {alpha.shape} does not match pixels {array.shape}")
        a = alpha.astype(np.float64)[..., None] / (255.0 if alpha.dtype == np.uint8 else 65535.0)
        # Composite in [0, 1] at the file's precision, then one rounding to 8 bits.
        blended = array.astype(np.float64) / peak * a + (1.0 - a)
        rgb = np.rint(np.clip(blended, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif array.dtype == np.uint16:
        # round(v / 257) in integers: 257 is odd, so v / 257 never lands on .5.
        rgb = ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    else:
        rgb = array
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return np.ascontiguousarray(rgb)


# ITU-R BT.601 luma weights: Y' = 0.299 R' + 0.587 G' + 0.114 B'.
BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def rgb_to_gray(array: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB to (H, W, 1) BT.601 luma, same dtype (integers are rounded)."""
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) RGB, got shape {array.shape}")
    luma = array.astype(np.float32) @ BT601
    if np.issubdtype(array.dtype, np.integer):
        luma = np.clip(np.rint(luma), 0, _max_value(array.dtype))
    return luma.astype(array.dtype)[..., None]


# --------------------------------------------------------------------------------------------
# Writing


def write_image(
    path: str | os.PathLike,
    array: np.ndarray,
    alpha: np.ndarray | None = None,
    bit_depth: int = 8,
    quality: int = 95,
) -> None:
    """Write an image atomically; the format comes from the extension.

    Args:
        path: destination; parent folders are created. The file appears complete or not at all.
        array: (H, W), (H, W, 1) or (H, W, 3) pixels. ``uint8``/``uint16`` are used as they are
            (rescaled exactly when their depth differs from the file's: x * 257, or
            round(x / 257)); floats are taken as [0, 1] and converted with ``from_float``.
            One channel is written as grayscale.
        alpha: (H, W) or (H, W, 1) transparency, same conventions as ``array``.
        bit_depth: 8 or 16. 16 is honoured for PNG and TIFF only.
        quality: JPEG / WebP quality.

    Formats that cannot hold what is given degrade without error:

    * 16-bit to JPEG, WebP, BMP, GIF, PPM/PGM: written at 8 bits, round(v / 257).
    * alpha to JPEG, BMP, GIF, PPM/PGM: dropped (colour kept as is, not blended onto a
      background). PNG, TIFF and WebP keep it.
    * ``.pgm`` is always gray (BT.601 luma of colour input), ``.ppm`` always RGB; WebP and GIF
      store gray as RGB, and GIF quantises to a 256-colour palette.
    * 16-bit gray + alpha (PNG/TIFF) is written as 16-bit RGBA with the gray repeated, since
      neither Pillow nor OpenCV writes 16-bit gray + alpha.

    Raises:
        TranslateError: unknown extension, or the file system refused the write.
        ValueError: the arrays have the wrong shape or dtype (a programming error).
    """
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(_WRITE_FORMATS))
        raise TranslateError(f"{path}: cannot write '{path.suffix}' images (use one of {known})")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")

    pixels = np.asarray(array)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
        raise ValueError(f"expected (H, W), (H, W, 1) or (H, W, 3) pixels, got {pixels.shape}")
    if alpha is not None and fmt in _ALPHA_FORMATS:
        alpha = np.asarray(alpha)
        alpha = alpha[..., 0] if alpha.ndim == 3 and alpha.shape[2] == 1 else alpha
        if alpha.shape != pixels.shape[:2]:
            raise ValueError(f"alpha shape {alpha.shape} does not match pixels {pixels.shape}")
    else:
        alpha = None

    depth = bit_depth if fmt in _SIXTEEN_BIT_FORMATS else 8
    pixels = _at_depth(pixels, bit_depth, depth)
    alpha = None if alpha is None else _at_depth(alpha, bit_depth, depth)
    if path.suffix.lower() == ".pgm" and pixels.shape[2] == 3:
        pixels = rgb_to_gray(pixels)
    elif path.suffix.lower() == ".ppm":
        pixels = to_rgb(pixels)

    try:
        if depth == 16 and (pixels.shape[2] == 3 or alpha is not None):
            _write_16bit_colour(path, fmt, pixels, alpha)
        else:
            _write_pil(path, fmt, pixels, alpha, quality)
    except OSError as e:
        raise TranslateError(f"{path}: cannot write image ({_one_line(e)})") from e


def _at_depth(array: np.ndarray, bit_depth: int, depth: int) -> np.ndarray:
    """Integer pixels at ``depth`` bits; floats go through ``from_float(array, bit_depth)``."""
    if np.issubdtype(array.dtype, np.floating):
        array = from_float(array, bit_depth)
    _max_value(array.dtype)  # reject other dtypes
    if depth == 8 and array.dtype == np.uint16:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(x / 257)
    if depth == 16 and array.dtype == np.uint8:
        return array.astype(np.uint16) * np.uint16(257)  # 255 -> 65535 exactly
    return array


def _write_16bit_colour(
    path: Path, fmt: str, pixels: np.ndarray, alpha: np.ndarray | None
) -> None:
    import cv2  # lazy, as in _decode_16bit_colour

    bgr = to_rgb(pixels)[..., ::-1]
    if alpha is not None:
        bgr = np.dstack([bgr, alpha])
    ok, encoded = cv2.imencode(".png" if fmt == "PNG" else ".tiff", np.ascontiguousarray(bgr))
    if not ok:
        raise TranslateError(f"{path}: OpenCV could not encode a 16-bit {fmt} image")
    data = encoded.tobytes()
    atomic_write(path, lambda f: f.write(data))


def _write_pil(
    path: Path, fmt: str, pixels: np.ndarray, alpha: np.ndarray | None, quality: int
) -> None:
    if pixels.dtype == np.uint16:  # 16-bit gray, no alpha
        image = Image.fromarray(pixels[..., 0])  # mode 'I;16'
    elif alpha is not None:
        image = Image.fromarray(np.dstack([pixels, alpha]))  # 'LA' or 'RGBA'
    else:
        image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    with atomic_open(path) as f:
        image.save(f, format=fmt, **options)


@dataclass(frozen=True)
class PlainJpeg:
    """A JPEG file's bytes and header facts, for decoders outside Pillow (nvJPEG on a GPU)."""

    data: bytes
    height: int
    width: int
    gray: bool  # one channel: read_image gives (H, W, 1), written back as grayscale


def probe_plain_jpeg(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS
                     ) -> PlainJpeg | None:
    """The file's bytes when it is a JPEG that a plain decoder reads as :func:`read_image`
    does: a regular file, one frame, 8-bit YCbCr/RGB or grayscale, no EXIF rotation, within
    ``max_pixels``. None for anything else (CMYK, an MPO, a rotated photo, a damaged header):
    those go through :func:`read_image`, which decodes or explains them. Reads the header only
    besides the bytes; a cut-off scan is found by the decoder."""
    path = Path(path)
    try:
        if not path.is_file():
            return None
        data = path.read_bytes()
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as im:
            width, height = im.size
            if (im.mode not in ("RGB", "L") or int(getattr(im, "n_frames", 1)) != 1
                    or width < 1 or height < 1
                    or (max_pixels is not None and width * height > max_pixels)
                    or im.getexif().get(_ORIENTATION_TAG, 1) != 1):
                return None
            return PlainJpeg(data, height, width, im.mode == "L")
    except Exception:  # not a JPEG, unreadable, broken EXIF: read_image's business
        return None
