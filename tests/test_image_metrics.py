"""PSNR/SSIM: hand-worked values, an independent SSIM, and the published Set5 bicubic figures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from translate.data.resize import imresize, modcrop
from translate.errors import TranslateError
from translate.eval.image_metrics import psnr, rgb_to_y, ssim, to_255

SET5 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sr" / "Set5_modcrop"


def test_to_255_scales_each_dtype():
    assert to_255(np.array([[0, 255]], np.uint8)).tolist() == [[0.0, 255.0]]
    assert to_255(np.array([[0, 65535]], np.uint16)).tolist() == [[0.0, 255.0]]
    assert to_255(np.array([[0.0, 0.5]], np.float32)).tolist() == [[0.0, 127.5]]
    with pytest.raises(TranslateError, match="int32"):
        to_255(np.zeros((2, 2), np.int32))


def test_rgb_to_y_matches_matlab_studio_range():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    y = rgb_to_y(img)
    assert y[0, 0] == pytest.approx(16.0)
    assert y[0, 1] == pytest.approx(235.0)
    assert y[0, 2] == pytest.approx(16.0 + 65.481)


def test_psnr_of_constant_offset():
    rng = np.random.default_rng(0)
    a = rng.integers(20, 200, (16, 16, 3)).astype(np.uint8)
    b = a + np.uint8(5)
    # MSE = 25 on every pixel: 10 log10(255² / 25) = 20 log10(51).
    assert psnr(a, b) == pytest.approx(20 * math.log10(51))
    # On Y, an offset of 5 in R, G, B shifts Y by 5 · 219 / 255.
    assert psnr(a, b, y_channel=True) == pytest.approx(20 * math.log10(255 / (5 * 219 / 255)))
    # The same images as floats in [0, 1] and as 16-bit give the same value.
    assert psnr(a / 255.0, b / 255.0) == pytest.approx(20 * math.log10(51))
    assert psnr(a.astype(np.uint16) * 257, b.astype(np.uint16) * 257) == pytest.approx(
        20 * math.log10(51)
    )


def test_psnr_crop_border_ignores_the_border():
    a = np.full((10, 10), 100, np.uint8)
    b = a.copy()
    b[0, :] = 0  # differs only in the top row
    assert math.isfinite(psnr(a, b))
    assert psnr(a, b, crop_border=1) == math.inf


def test_identical_images_give_inf_and_one():
    img = np.random.default_rng(1).integers(0, 256, (24, 20, 3)).astype(np.uint8)
    assert psnr(img, img) == math.inf
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(img, img, crop_border=2, y_channel=True) == pytest.approx(1.0)


def test_ssim_of_two_constant_images_is_the_luminance_term():
    # σ = 0 everywhere, so SSIM = (2 μx μy + C1) / (μx² + μy² + C1) with C1 = (0.01 · 255)².
    a = np.full((16, 16), 100, np.uint8)
    b = np.full((16, 16), 110, np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    assert ssim(a, b) == pytest.approx(expected, rel=1e-12)


def test_ssim_of_inverted_contrast_is_negative():
    # y = 255 - x around the mid level: σxy = -σx² so the structure term is ~ -1.
    rng = np.random.default_rng(2)
    x = rng.integers(100, 156, (32, 32)).astype(np.uint8)
    assert ssim(x, (255 - x).astype(np.uint8)) < -0.5


def test_ssim_matches_scikit_image_gaussian_ssim():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (40, 36, 3)).astype(np.uint8)
    noise = rng.normal(0, 20, a.shape)
    b = np.clip(a + noise, 0, 255).astype(np.uint8)
    ref = structural_similarity(
        a, b, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=255,
    )
    assert ssim(a, b) == pytest.approx(ref, abs=1e-9)


def test_mismatched_shapes_and_tiny_images_fail_clearly():
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(TranslateError, match="differ in shape"):
        psnr(a, np.zeros((16, 15, 3), np.uint8))
    with pytest.raises(TranslateError, match="at least 11x11"):
        ssim(a, a, crop_border=4)
    with pytest.raises(TranslateError, match="leaves nothing"):
        psnr(a, a, crop_border=8)


def test_imresize_matches_matlab_on_a_hand_case():
    # Upscaling a linear ramp by 2 with a = -0.5 reproduces the ramp inside (cubic kernels
    # interpolate linear functions exactly); the first sample is a mirror-padded blend.
    ramp = np.arange(8, dtype=np.float64)[None, :].repeat(4, 0)
    up = imresize(ramp, scale=2)
    assert up.shape == (8, 16)
    # Output x maps to u = x/2 + 0.25 (1-based), i.e. 0-based input position x/2 - 0.25.
    np.testing.assert_allclose(up[0, 4:12], np.arange(4, 12) / 2 - 0.25, atol=1e-12)
    # Shrinking a constant keeps it (weights are normalised).
    assert np.allclose(imresize(np.full((12, 12), 7.0), scale=0.25), 7.0)
    with pytest.raises(TranslateError, match="exactly one"):
        imresize(ramp)


def _set5_bicubic(scale: int) -> tuple[float, float]:
    ps, ss = [], []
    for hr_path in sorted((SET5 / "hr" / f"x{scale}").glob("*.png")):
        name = hr_path.name.split("_HR_")[0]
        lr_path = SET5 / "lr_bicubic" / f"x{scale}" / f"{name}_LRBI_x{scale}.png"
        hr = modcrop(np.asarray(Image.open(hr_path).convert("RGB")), scale)
        lr = np.asarray(Image.open(lr_path).convert("RGB"))
        up = imresize(lr, scale=scale)
        ps.append(psnr(up, hr, crop_border=scale, y_channel=True))
        ss.append(ssim(up, hr, crop_border=scale, y_channel=True))
    assert len(ps) == 5
    return float(np.mean(ps)), float(np.mean(ss))


@pytest.mark.skipif(not SET5.is_dir(), reason=f"reference data not found at {SET5}")
def test_set5_bicubic_matches_published_tables():
    # Published bicubic baselines (e.g. SRCNN, EDSR, RCAN tables): ×4 28.42 dB / 0.8104,
    # ×2 33.66 dB / 0.9299.
    p4, s4 = _set5_bicubic(4)
    assert p4 == pytest.approx(28.42, abs=0.05)
    assert s4 == pytest.approx(0.8104, abs=0.002)
    p2, s2 = _set5_bicubic(2)
    assert p2 == pytest.approx(33.66, abs=0.05)
    assert s2 == pytest.approx(0.9299, abs=0.002)
