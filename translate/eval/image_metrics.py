"""PSNR and SSIM as super-resolution and inpainting papers report them — the project's one copy.

Conventions (those of the MATLAB evaluation code behind the published SR tables, as ported by
BasicSR):

* Inputs are numpy arrays, (H, W) or (H, W, C), of dtype ``uint8`` (0–255), ``uint16``
  (0–65535, scaled by 255/65535) or floating point in [0, 1] (scaled by 255). Everything is
  converted to float64 on the 0–255 scale, so the data range is always 255.
* ``crop_border=s`` drops ``s`` pixels on every side before measuring (SR papers crop the
  scale factor, since the borders of an upscaled image depend on the padding convention).
* ``y_channel=True`` measures the luma Y of ITU-R BT.601 in MATLAB's ``rgb2ycbcr`` form (the
  16–235 "studio" range) for 3-channel images; 1-channel and (H, W) images are used as they are.
  Y is not rounded to integers (BasicSR's choice; MATLAB's uint8 path rounds, which moves
  Set5 figures by ~0.01 dB).
* SSIM is Wang et al. 2004 ("Image quality assessment: from error visibility to structural
  similarity", Eq. 13) with an 11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, and
  'valid' filtering: only windows that lie wholly inside the image count, as in the authors'
  ``ssim_index.m``. Multi-channel SSIM is the mean over channels.

Only numpy and scipy are needed (no torch), so any module can use these.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d

from translate.errors import TranslateError

__all__ = ["psnr", "rgb_to_y", "ssim", "to_255"]

# Wang et al. 2004, Sec. III-C: window and stabilising constants.
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03
_DATA_RANGE = 255.0


def to_255(img: np.ndarray) -> np.ndarray:
    """Converts an image to float64 on the 0–255 scale.

    Args:
        img: (H, W) or (H, W, C); ``uint8``, ``uint16`` or float in [0, 1].

    Returns:
        float64 array of the same shape, 0–255.

    Raises:
        TranslateError: for another dtype or number of dimensions.
    """
    a = np.asarray(img)
    if a.ndim not in (2, 3):
        raise TranslateError(f"image metrics need (H, W) or (H, W, C) arrays, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float64)
    if a.dtype == np.uint16:
        return a.astype(np.float64) * (255.0 / 65535.0)
    if np.issubdtype(a.dtype, np.floating):
        return a.astype(np.float64) * 255.0
    raise TranslateError(f"image metrics take uint8, uint16 or float images, got {a.dtype}")


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma as MATLAB's ``rgb2ycbcr`` computes it (studio range 16–235).

    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B on the 0–255 scale
    (equivalently ``16 + 65.481 R + …`` for R, G, B in [0, 1]).

    Args:
        img: (H, W, 3) RGB; any dtype ``to_255`` accepts.

    Returns:
        (H, W) float64 Y on the 0–255 scale (values 16–235 for in-range inputs).
    """
    a = to_255(img)
    if a.ndim != 3 or a.shape[2] != 3:
        raise TranslateError(f"rgb_to_y needs an (H, W, 3) RGB image, got shape {a.shape}")
    return 16.0 + (65.481 * a[..., 0] + 128.553 * a[..., 1] + 24.966 * a[..., 2]) / 255.0


def _prepare(a: np.ndarray, b: np.ndarray, crop_border: int, y_channel: bool) -> tuple:
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.shape != b_arr.shape:
        raise TranslateError(
            f"images to compare differ in shape: {a_arr.shape} vs {b_arr.shape}"
        )
    if crop_border < 0:
        raise TranslateError(f"crop_border must be >= 0, got {crop_border}")
    if y_channel and a_arr.ndim == 3 and a_arr.shape[2] == 3:
        x, y = rgb_to_y(a_arr), rgb_to_y(b_arr)
    else:
        x, y = to_255(a_arr), to_255(b_arr)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    if crop_border:
        if min(x.shape[0], x.shape[1]) <= 2 * crop_border:
            raise TranslateError(
                f"crop_border {crop_border} leaves nothing of a {x.shape[0]}x{x.shape[1]} image"
            )
        x = x[crop_border:-crop_border, crop_border:-crop_border]
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    return x, y


def psnr(a: np.ndarray, b: np.ndarray, crop_border: int = 0, y_channel: bool = False) -> float:
    """Peak signal-to-noise ratio, ``10 log10(255² / MSE)`` over all pixels and channels.

    Args:
        a: (H, W) or (H, W, C) image (see the module docstring for dtypes).
        b: image of the same shape.
        crop_border: pixels dropped on every side first.
        y_channel: measure MATLAB-style Y of RGB images.

    Returns:
        PSNR in dB; ``inf`` for identical images.
    """
    x, y = _prepare(a, b, crop_border, y_channel)
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(_DATA_RANGE**2 / mse)


def _gaussian_window(size: int = _SSIM_WINDOW, sigma: float = _SSIM_SIGMA) -> np.ndarray:
    # 1-D factor of MATLAB's fspecial('gaussian', 11, 1.5) (the 2-D window is its outer product).
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(r**2) / (2.0 * sigma**2))
    return g / g.sum()


def _valid_filter(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    # Separable Gaussian, then keep only outputs whose window lies inside the image ('valid').
    half = len(g) // 2
    out = correlate1d(correlate1d(img, g, axis=0, mode="constant"), g, axis=1, mode="constant")
    return out[half:-half, half:-half]


def _ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    g = _gaussian_window()
    c1 = (_K1 * _DATA_RANGE) ** 2
    c2 = (_K2 * _DATA_RANGE) ** 2
    mu_x, mu_y = _valid_filter(x, g), _valid_filter(y, g)
    sxx = _valid_filter(x * x, g) - mu_x**2
    syy = _valid_filter(y * y, g) - mu_y**2
    sxy = _valid_filter(x * y, g) - mu_x * mu_y
    # Wang et al. 2004, Eq. 13.
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    )


def ssim(a: np.ndarray, b: np.ndarray, crop_border: int = 0, y_channel: bool = False) -> float:
    """Structural similarity (Wang et al. 2004), mean of the SSIM map, mean over channels.

    Args:
        a: (H, W) or (H, W, C) image (see the module docstring for dtypes).
        b: image of the same shape.
        crop_border: pixels dropped on every side first.
        y_channel: measure MATLAB-style Y of RGB images.

    Returns:
        SSIM in [-1, 1]; 1.0 for identical images.

    Raises:
        TranslateError: if (after cropping) the image is smaller than the 11×11 window.
    """
    x, y = _prepare(a, b, crop_border, y_channel)
    if min(x.shape[0], x.shape[1]) < _SSIM_WINDOW:
        raise TranslateError(
            f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after cropping, "
            f"got {x.shape[0]}x{x.shape[1]}"
        )
    return float(np.mean([_ssim_map(x[..., c], y[..., c]).mean() for c in range(x.shape[2])]))
