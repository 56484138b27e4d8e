"""Super-resolution evaluation as the published tables measure it: PSNR/SSIM on Y, border = scale.

For each HR image (sorted by name):

* **LR input**: with ``lr_dir``, the LR file of the same name (tags such as ``_HR``/``_LRBI``
  and ``x4`` are ignored in the pairing, so ``baby_HR_x4.png`` pairs with
  ``baby_LRBI_x4.png`` and DIV2K's ``0001.png`` with ``0001x4.png``); without it, the HR image
  mod-cropped to a multiple of the scale and shrunk by MATLAB-style bicubic
  (``translate.data.resize.imresize``), rounded to 8 bits — how the benchmark LR sets were made.
* **HR reference**: the HR image mod-cropped to the scale (its LR is ``HR / scale`` exactly).
* **Model**: the SR pipeline's output rounded to 8 bits, as a saved result would be.
* **Bicubic**: MATLAB-style bicubic upscaling of the same LR input (the tables' baseline;
  reproduces Set5 ×4 28.42 dB / 0.8104 — tests/test_image_metrics.py).

Metrics: ``translate.eval.image_metrics`` with ``y_channel=True`` and ``crop_border=scale``. All
images are taken as 8-bit RGB (``to_rgb8``: grayscale replicated, 16-bit scaled), so a grayscale
image's Y is ``16 + 219/255 · v`` like any gray RGB pixel.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translate.data.resize import imresize, modcrop
from translate.errors import TranslateError
from translate.eval.image_metrics import psnr, ssim
from translate.infer import SRPipeline
from translate.io.atomic import atomic_write_text
from translate.io.images import read_image, scan_images, to_rgb8
from translate.modelfile import Model

RESULT_FILE = "eval_sr.json"
# Name parts that mark a file as the HR or LR member of a pair, not part of the image's name.
_TAGS = re.compile(r"^(hr|lr|lrbi|lrbd|lrdn|bicubic|x\d+)$")


def pair_key(stem: str) -> str:
    """The name an HR/LR pair shares: ``baby_HR_x4`` and ``baby_LRBI_x4`` → ``baby``,
    ``0001x4`` → ``0001``. Case-insensitive; parts split on ``_``, ``-``, ``.`` and spaces."""
    parts = [p for p in re.split(r"[_\-. ]+", stem.lower()) if p]
    kept = [p for p in parts if not _TAGS.match(p)]
    if kept:
        kept[-1] = re.sub(r"(?<=\w)x\d+$", "", kept[-1]) or kept[-1]
    return "_".join(kept) or stem.lower()


@dataclass
class ImageScore:
    name: str
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float
    baseline_psnr: float | None = None
    baseline_ssim: float | None = None


@dataclass
class SrEvalResult:
    """Per-image and mean scores of a model and of bicubic on one HR set."""

    hr_dir: str
    lr_dir: str | None
    scale: int
    images: list[ImageScore] = field(default_factory=list)
    seconds: float = 0.0
    baseline: str | None = None  # the baseline model's path, when one was scored beside

    def mean(self, key: str) -> float:
        return float(np.mean([getattr(s, key) for s in self.images]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "hr": self.hr_dir,
            "lr": self.lr_dir or "bicubic-downsampled HR (MATLAB imresize)",
            "scale": self.scale,
            "convention": f"Y channel (BT.601, MATLAB rgb2ycbcr), border {self.scale} px cropped, "
                          "8-bit outputs; SSIM 11x11 Gaussian sigma 1.5",
            "n_images": len(self.images),
            "model": {"psnr": self.mean("psnr"), "ssim": self.mean("ssim")},
            "bicubic": {"psnr": self.mean("bicubic_psnr"), "ssim": self.mean("bicubic_ssim")},
            **({"baseline": {"model": self.baseline, "psnr": self.mean("baseline_psnr"),
                             "ssim": self.mean("baseline_ssim")}} if self.baseline else {}),
            "per_image": [asdict(s) for s in self.images],
            "seconds": self.seconds,
        }


def _rgb8(path: Path) -> np.ndarray:
    return to_rgb8(read_image(path))  # (H, W, 3) uint8; ImageReadError names a bad file


def _pairs(hr_dir: Path, lr_dir: Path | None) -> list[tuple[Path, Path | None]]:
    if not hr_dir.is_dir():
        raise TranslateError(f"--hr folder not found: {hr_dir}")
    hr_files = scan_images(hr_dir)
    if not hr_files:
        raise TranslateError(f"--hr {hr_dir} holds no images")
    if lr_dir is None:
        return [(p, None) for p in hr_files]
    if not lr_dir.is_dir():
        raise TranslateError(f"--lr folder not found: {lr_dir}")
    lr_by_key: dict[str, Path] = {}
    for p in scan_images(lr_dir):
        key = pair_key(p.stem)
        if key in lr_by_key:
            raise TranslateError(f"--lr: {lr_by_key[key].name} and {p.name} both pair with "
                                 f"the name {key!r}")
        lr_by_key[key] = p
    pairs = []
    for p in hr_files:
        lr = lr_by_key.pop(pair_key(p.stem), None)
        if lr is None:
            raise TranslateError(f"no LR image in {lr_dir} pairs with {p.name}")
        pairs.append((p, lr))
    if lr_by_key:
        extra = ", ".join(sorted(q.name for q in lr_by_key.values())[:5])
        raise TranslateError(f"LR images without an HR image in {hr_dir}: {extra}")
    return pairs


def evaluate_sr(model: Model, hr_dir: str | Path, lr_dir: str | Path | None = None,
                scale: int | None = None, device: str | torch.device = "cpu",
                tile: int = 0, tile_overlap: int | None = None,
                baseline: Model | None = None) -> SrEvalResult:
    """Score an SR model and bicubic on the HR images in ``hr_dir`` (see the module docstring).

    Args:
        model: a loaded ``sr`` model.
        hr_dir: folder of HR images (searched recursively).
        lr_dir: folder of matching LR inputs; None makes them from HR by MATLAB bicubic.
        scale: the scale to evaluate; must be the model's (default: the model's).
        device: where the network runs.
        tile, tile_overlap: tiled inference for large images (see ``SRPipeline``).
        baseline: another ``sr`` model of the same scale, scored beside on the same inputs
            (e.g. an imported Real-ESRGAN file beside ``sr-x4``).

    Raises:
        TranslateError: not an SR model, a scale the model does not have, missing folders,
            unpaired or wrongly sized LR images, unreadable images, a baseline of another task
            or scale.
    """
    for m, what in ((model, "--hr/--lr evaluation"), (baseline, "--baseline")):
        if m is not None and m.task != "sr":
            raise TranslateError(f"{m.path} holds a '{m.task}' model; {what} needs a "
                                 "super-resolution (sr) model")
    model_scale = int(model.meta["scale"])
    if baseline is not None and int(baseline.meta["scale"]) != model_scale:
        raise TranslateError(f"--baseline {baseline.path} upscales ×{baseline.meta['scale']}; "
                             f"the model upscales ×{model_scale}")
    if scale is None:
        scale = model_scale
    if scale != model_scale:
        raise TranslateError(f"--scale {scale}: the model in {model.path} upscales "
                             f"×{model_scale} only")
    if scale == 1 and lr_dir is None:
        raise TranslateError(f"{model.path} is a ×1 (restoration) model: score it with --lr DIR "
                             "of degraded inputs beside --hr (a ×1 bicubic 'LR' is the HR)")
    started = time.perf_counter()
    hr_dir = Path(hr_dir)
    lr_path = Path(lr_dir) if lr_dir is not None else None
    pipeline = SRPipeline(model, device, "fp32", tile=tile, tile_overlap=tile_overlap)
    other = (SRPipeline(baseline, device, "fp32", tile=tile, tile_overlap=tile_overlap)
             if baseline is not None else None)
    result = SrEvalResult(str(hr_dir), str(lr_path) if lr_path else None, scale,
                          baseline=str(baseline.path) if baseline is not None else None)
    for hr_file, lr_file in _pairs(hr_dir, lr_path):
        hr = modcrop(_rgb8(hr_file), scale)
        if lr_file is None:
            lr = imresize(hr, scale=1.0 / scale)
        else:
            lr = _rgb8(lr_file)
            want = (hr.shape[0] // scale, hr.shape[1] // scale)
            if lr.shape[:2] != want:
                raise TranslateError(
                    f"{lr_file}: {lr.shape[1]}x{lr.shape[0]} is not the ×{scale} LR of "
                    f"{hr_file.name} (expected {want[1]}x{want[0]})"
                )
        if min(lr.shape[:2]) < 2:
            raise TranslateError(f"{hr_file}: too small for ×{scale} evaluation")
        x = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255.0
        sr8 = _upscaled(pipeline, x)
        bic = imresize(lr, scale=scale)
        base = _upscaled(other, x) if other is not None else None
        result.images.append(ImageScore(
            name=hr_file.relative_to(hr_dir).as_posix(),
            psnr=psnr(sr8, hr, crop_border=scale, y_channel=True),
            ssim=ssim(sr8, hr, crop_border=scale, y_channel=True),
            bicubic_psnr=psnr(bic, hr, crop_border=scale, y_channel=True),
            bicubic_ssim=ssim(bic, hr, crop_border=scale, y_channel=True),
            baseline_psnr=None if base is None else psnr(base, hr, crop_border=scale,
                                                         y_channel=True),
            baseline_ssim=None if base is None else ssim(base, hr, crop_border=scale,
                                                         y_channel=True),
        ))
    result.seconds = time.perf_counter() - started
    return result


def _upscaled(pipeline: SRPipeline, x: torch.Tensor) -> np.ndarray:
    """(1, 3, h, w) in [0, 1] → the pipeline's (sH, sW, 3) uint8 result."""
    sr = pipeline(x)[0].permute(1, 2, 0).numpy()
    return np.clip(np.round(sr * 255.0), 0, 255).astype(np.uint8)


def print_sr_result(result: SrEvalResult, title: str, per_image: bool = False) -> None:
    """A rich table: per image (optional) and the mean, model beside bicubic (and the
    baseline model, when one was scored)."""
    from rich.table import Table

    from translate import console as ui

    table = Table(title=title, caption=f"×{result.scale}, Y channel, border {result.scale} px "
                  f"cropped; LR: {result.lr_dir or 'MATLAB-bicubic ↓ of HR'}")
    table.add_column("image")
    keys = ["psnr", "ssim", "bicubic_psnr", "bicubic_ssim"]
    columns = ["model PSNR", "model SSIM", "bicubic PSNR", "bicubic SSIM"]
    if result.baseline:
        keys += ["baseline_psnr", "baseline_ssim"]
        columns += ["baseline PSNR", "baseline SSIM"]
        table.caption += f"; baseline: {result.baseline}"
    for col in columns:
        table.add_column(col, justify="right")

    def cells(values: list[float]) -> list[str]:
        return [f"{v:.4f}" if k.endswith("ssim") else f"{v:.2f}"
                for k, v in zip(keys, values, strict=True)]

    if per_image:
        for s in result.images:
            table.add_row(s.name, *cells([getattr(s, k) for k in keys]))
    table.add_row(f"mean of {len(result.images)}", *cells([result.mean(k) for k in keys]),
                  style="bold")
    ui.console.print(table)


def save_sr_result(folder: Path, result: SrEvalResult) -> Path:
    """Merge into ``folder/eval_sr.json`` under the key "HR | LR | ×scale", so evaluations on
    several sets sit side by side; written atomically."""
    path = Path(folder) / RESULT_FILE
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = {}  # a damaged file is replaced rather than blocking the new result
        if not isinstance(data, dict):
            data = {}
    key = f"{result.hr_dir} | {result.lr_dir or 'bicubic'} | x{result.scale}"
    data[key] = result.as_dict()
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path
