"""``translate data demo``: a small summer → winter dataset from photos that install with the
project's packages, so CycleGAN can be tried with no download and no data of one's own.

Sources (all read offline; ``skimage.data`` entries that need ``pooch`` downloads are not used):

* domain A, "summer" — photos as they are: ``sklearn.datasets.load_sample_image`` china.jpg and
  flower.jpg; ``skimage.data`` chelsea, coffee and grass (grayscale, repeated to RGB).
* domain B, "winter" — *other* photos, so no B image shows the scene of any A image and training
  is genuinely unpaired: ``skimage.data`` rocket, astronaut, stereo_motorcycle (left view),
  camera and gravel (the last two grayscale), each rendered by ``winter``.

Each photo's short side is resized to 1.5 × ``size``; ``CROPS_PER_PHOTO`` random ``size`` ×
``size`` crops are cut from it, each mirrored left-right with probability ½. That gives
5 × 12 = 60 crops per domain, of which ``TEST_PER_DOMAIN`` = 10 (chosen by the seed) go to
``testX`` and 50 to ``trainX``. Test crops come from the same photos as training crops (there
are only five per domain), so the test split shows held-out framings, not unseen scenes.

The ``winter`` transform (on [0, 1] floats, in this order):

1. desaturate: keep 45 % of the chroma, c ← Y + 0.45 (c − Y), Y the BT.601 luma;
2. cool the white balance: R × 0.90, G × 0.98, B × 1.10 + 0.04;
3. snow-light tone: lift the blacks and lower contrast, c ← 0.30 + 0.70 c, then gamma 0.9;
4. snow cover: bright regions, more so near the top of the frame, blend towards bluish white
   (0.94, 0.97, 1.00) with weight 0.7 · smoothstep(Y; 0.45, 0.85) · (0.6 + 0.4 · t), t going
   1 → 0 from the top row to the bottom row;
5. falling snow: 0.4 % of pixels, drawn from the given generator, become near-white flakes,
   about a third of them 2 × 2.

Together these give a cold cast, B − R near +20 on the 0–255 scale, and a brighter, flatter
image: warm and neutral photos turn bluer; an already sky-blue one (the rocket, B − R ≈ 30) loses
a little of its blue to the desaturation but still reads as winter.

Everything is a function of ``seed``: two builds with the same seed are byte-identical.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from translate.data.prep import (
    DomainReport,
    PrepReport,
    check_out_free,
    resize_short_side,
    split_order,
    staging_folder,
    write_report,
)
from translate.errors import TranslateError
from translate.io.images import to_rgb8, write_image
from translate.signals import check as check_stop

CROPS_PER_PHOTO = 12
TEST_PER_DOMAIN = 10
CONTEXT = 1.5  # photos are resized to CONTEXT × size on the short side before cropping


def _sklearn(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)

    return load


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        image = getattr(data, name)()
        return image[0] if isinstance(image, tuple) else image  # stereo pair: left view

    return load


# name → (description, loader); names are unique across both domains.
PHOTOS_A: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
    "china": ("sklearn.datasets.load_sample_image('china.jpg')", _sklearn("china.jpg")),
    "flower": ("sklearn.datasets.load_sample_image('flower.jpg')", _sklearn("flower.jpg")),
    "chelsea": ("skimage.data.chelsea()", _skimage("chelsea")),
    "coffee": ("skimage.data.coffee()", _skimage("coffee")),
    "grass": ("skimage.data.grass() (grayscale)", _skimage("grass")),
}
PHOTOS_B: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
    "rocket": ("skimage.data.rocket()", _skimage("rocket")),
    "astronaut": ("skimage.data.astronaut()", _skimage("astronaut")),
    "motorcycle": ("skimage.data.stereo_motorcycle()[0] (left view)",
                   _skimage("stereo_motorcycle")),
    "camera": ("skimage.data.camera() (grayscale)", _skimage("camera")),
    "gravel": ("skimage.data.gravel() (grayscale)", _skimage("gravel")),
}

SOURCE = (
    "translate data demo: domain A ('summer') = random crops of sklearn sample images china, "
    "flower and skimage.data chelsea, coffee, grass, as they are; domain B ('winter') = random "
    "crops of other photos (skimage.data rocket, astronaut, stereo_motorcycle left, camera, "
    "gravel) rendered by translate.data.demo.winter (desaturate, cool white balance, lifted "
    "low-contrast tone, snow cover on bright/upper regions, seeded snow flakes)"
)

_BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_COOL_GAIN = np.array([0.90, 0.98, 1.10], dtype=np.float32)
_COOL_OFFSET = np.array([0.0, 0.0, 0.04], dtype=np.float32)
_SNOW = np.array([0.94, 0.97, 1.00], dtype=np.float32)
_FLAKE = np.array([0.97, 0.98, 1.00], dtype=np.float32)
_FLAKE_DENSITY = 0.004


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def winter(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A "winter" rendering of an (H, W, 3) ``uint8`` RGB image; see the module docstring.

    Pure: ``rgb`` is not modified, and the result depends only on ``rgb`` and the draws from
    ``rng`` (used for the snow flakes).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    x = rgb.astype(np.float32) / 255.0

    luma = x @ _BT601
    x = luma[..., None] + 0.45 * (x - luma[..., None])  # 1. desaturate
    x = x * _COOL_GAIN + _COOL_OFFSET  # 2. cool
    x = np.clip(0.30 + 0.70 * x, 0.0, 1.0) ** 0.9  # 3. lifted, low-contrast tone

    top = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None]  # 1 at the top row
    cover = 0.7 * _smoothstep(luma, 0.45, 0.85) * (0.6 + 0.4 * top)  # 4. snow cover
    x = x * (1.0 - cover[..., None]) + _SNOW * cover[..., None]

    n_flakes = round(_FLAKE_DENSITY * height * width)  # 5. falling snow
    ys = rng.integers(0, height, n_flakes)
    xs = rng.integers(0, width, n_flakes)
    strength = rng.uniform(0.6, 1.0, n_flakes).astype(np.float32)[:, None]
    big = rng.random(n_flakes) < 1 / 3
    for dy, dx, which in ((0, 0, slice(None)), (0, 1, big), (1, 0, big), (1, 1, big)):
        yy, xx = np.minimum(ys[which] + dy, height - 1), np.minimum(xs[which] + dx, width - 1)
        s = strength[which]
        x[yy, xx] = x[yy, xx] * (1.0 - s) + _FLAKE * s

    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def _crops(
    photo: np.ndarray, size: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, str]]:
    """``CROPS_PER_PHOTO`` random ``size`` × ``size`` crops (maybe mirrored), with descriptions."""
    scaled = resize_short_side(to_rgb8(photo), round(CONTEXT * size))
    height, width = scaled.shape[:2]
    out = []
    for _ in range(CROPS_PER_PHOTO):
        top = int(rng.integers(0, height - size + 1))
        left = int(rng.integers(0, width - size + 1))
        flip = bool(rng.random() < 0.5)
        crop = scaled[top : top + size, left : left + size]
        out.append((crop[:, ::-1] if flip else crop, f"top={top} left={left} flip={flip}"))
    return out


def build_demo(out: str | os.PathLike, size: int = 128, seed: int = 0) -> PrepReport:
    """Write the demo dataset: ``out/{trainA,trainB,testA,testB}`` and ``out/prep.json``.

    Args:
        out: the dataset folder to create (refused if it already holds one).
        size: side of the square crops.
        seed: seed for crop positions, flips, snow flakes and the train/test split.

    Returns:
        The report also written to ``prep.json`` (with ``source`` and, under ``photos``, which
        package photos each domain was cut from).

    Raises:
        TranslateError: ``out`` already holds a dataset, or ``size`` is below 16.
    """
    out = Path(out)
    if size < 16:
        raise TranslateError(f"--size must be at least 16 for the demo, got {size}")
    check_out_free(out)

    domains: dict[str, DomainReport] = {}
    with staging_folder(out) as staging:
        for domain, photos in (("A", PHOTOS_A), ("B", PHOTOS_B)):
            report = DomainReport(name=domain, folder="package sample photos")
            items: list[tuple[str, np.ndarray, str]] = []  # (file name, pixels, source)
            for p, (photo, (description, load)) in enumerate(photos.items()):
                check_stop()  # a stop signal, between photos: the staging folder is removed
                rng = np.random.default_rng(np.random.SeedSequence([seed, ord(domain), p]))
                for k, (crop, where) in enumerate(_crops(load(), size, rng)):
                    if domain == "B":
                        crop = winter(crop, rng)
                    items.append((f"{photo}_{k:02d}.png", crop, f"{description} {where}"))
            test = set(split_order(len(items), seed, domain)[:TEST_PER_DOMAIN])
            for i, (name, crop, source) in enumerate(items):
                split = f"test{domain}" if i in test else f"train{domain}"
                write_image(staging / split / name, crop)
                report.files.append({"source": source, "output": f"{split}/{name}"})
            report.found = len(items)
            report.test = len(test)
            report.train = len(items) - len(test)
            domains[domain] = report
        report_all = PrepReport(
            out=out, size=size, test_fraction=TEST_PER_DOMAIN / (len(PHOTOS_A) * CROPS_PER_PHOTO),
            seed=seed, domains=domains, source=SOURCE,
            extra={"photos": {"A": sorted(PHOTOS_A), "B": sorted(PHOTOS_B)}},
        )
        write_report(staging, report_all)
    return report_all
