"""Inpainting evaluation: the model against OpenCV's classical inpainting, on the same holes.

For every image (8-bit RGB) and its hole mask, three completions are scored, each composited so
that known pixels are the original ones: the model (``InpaintPipeline``), and ``cv2.inpaint``
with Telea's fast marching method (Telea 2004) and with the Navier–Stokes method (Bertalmio et
al. 2001), both radius 3. Metrics, averaged over images:

* **PSNR (hole)**: ``10 log10(255² / MSE)`` with the MSE over the hole pixels only (all three
  channels). Over the whole image the known pixels (identical for every method) would only add
  a constant that depends on the hole size.
* **L1 (hole)**: mean absolute error over the hole pixels, on the [0, 1] scale.
* **SSIM (hole box)**: SSIM (Wang et al. 2004; 11×11 Gaussian window, ``image_metrics.ssim``)
  of the bounding box of the hole, widened to at least 11×11: structure at the hole and its
  immediate surround, where the methods differ.

Masks come from a folder (paired by name as ``translate infer`` pairs them, or by sorted order
for sets such as PUT's ffhq_256 sample whose mask names do not match the images) or are
generated with the ``thin``/``medium``/``thick`` presets, seeded per image.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translate import console as ui
from translate.data.masks import PRESETS, generate_mask, load_mask
from translate.errors import TranslateError
from translate.eval.image_metrics import psnr, ssim
from translate.infer import InpaintPipeline, MaskFolder
from translate.io.atomic import atomic_write_text
from translate.io.images import ImageReadError, from_float, read_image, scan_images, to_rgb8
from translate.modelfile import Model

METHODS = ("model", "cv2 Telea", "cv2 NS")
PAIRINGS = ("name", "sorted")
RESULT_FILE = "eval_inpaint.json"
SSIM_MIN = 11  # the SSIM window


@dataclass
class Scores:
    psnr: float
    ssim: float
    l1: float


@dataclass
class MaskSetResult:
    """Scores of every method on one set of holes."""

    masks: str  # a preset name or the mask folder's last two path parts
    n_images: int
    hole_fraction: float  # mean over images
    scores: dict[str, Scores] = field(default_factory=dict)


@dataclass
class InpaintEvalResult:
    images: str
    sets: list[MaskSetResult]
    definitions: dict[str, str] = field(default_factory=lambda: {
        "psnr": "dB, MSE over hole pixels (RGB, 0-255), mean over images",
        "ssim": "SSIM (11x11 Gaussian) of the hole's bounding box (at least 11x11), mean",
        "l1": "mean |error| over hole pixels on the [0, 1] scale, mean over images",
        "composite": "every method's known pixels are the original pixels",
    })

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_rgb(path: Path) -> np.ndarray:
    try:
        return to_rgb8(read_image(path))
    except ImageReadError as e:
        raise TranslateError(str(e)) from None


def _mask_files(images: list[Path], image_dir: Path, masks: Path, hole: str, pair: str
                ) -> list[Path]:
    if pair not in PAIRINGS:
        raise TranslateError(f"--pair {pair}: one of {', '.join(PAIRINGS)}")
    folder = MaskFolder(masks, hole)
    if pair == "sorted":
        files = scan_images(masks)
        if len(files) != len(images):
            raise TranslateError(f"--pair sorted: {len(images)} images in {image_dir} but "
                                 f"{len(files)} masks in {masks}")
        return files
    pairing = folder.match(image_dir)
    problems = [f"{src}: {why}" for src, why in pairing.problems.items()]
    problems += [f"{f}: mask without an image" for f in pairing.orphans]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise TranslateError(f"{problems[0]}{more}; every image needs exactly one mask "
                             "(--pair sorted pairs by sorted order instead)")
    return [pairing.masks[f] for f in images if f not in pairing.mask_files]


def _hole_box(hole: np.ndarray) -> tuple[slice, slice]:
    """The hole's bounding box, widened (within the image) to at least SSIM_MIN on each side."""
    rows, cols = np.flatnonzero(hole.any(1)), np.flatnonzero(hole.any(0))
    box = []
    for lo, hi, size in ((rows[0], rows[-1] + 1, hole.shape[0]),
                         (cols[0], cols[-1] + 1, hole.shape[1])):
        need = min(SSIM_MIN, size)
        if hi - lo < need:
            lo = min(max(0, lo - (need - (hi - lo)) // 2), size - need)
            hi = lo + need
        box.append(slice(int(lo), int(hi)))
    return box[0], box[1]


def _score(out: np.ndarray, gt: np.ndarray, hole: np.ndarray) -> Scores:
    """out, gt: (H, W, 3) uint8, equal outside the hole; hole: (H, W) bool with a hole pixel."""
    a, b = out[hole][:, None, :], gt[hole][:, None, :]  # (N, 1, 3): the hole pixels only
    box = _hole_box(hole)
    l1 = float(np.abs(a.astype(np.float64) - b).mean() / 255.0)
    return Scores(psnr=psnr(a, b), ssim=ssim(out[box], gt[box]), l1=l1)


def _run(pipeline: InpaintPipeline, gt: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The pipeline's completion of ``gt`` with ``hole`` emptied: (H, W, 3) uint8."""
    keep = torch.from_numpy((~hole).astype(np.float32))[None, None]
    x = torch.from_numpy(gt.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    m = torch.from_numpy(hole.astype(np.float32))[None, None]
    y = pipeline(x * keep, m)
    return from_float(y[0].permute(1, 2, 0).cpu().numpy(), 8)


def _complete(pipeline: InpaintPipeline, gt: np.ndarray, hole: np.ndarray,
              baseline: tuple[str, InpaintPipeline] | None = None) -> dict[str, np.ndarray]:
    import cv2

    keep = ~hole[..., None]
    outputs = {"model": _run(pipeline, gt, hole)}
    holed = np.ascontiguousarray((gt * keep)[..., ::-1])  # BGR, holes black (unused by cv2)
    hole8 = hole.astype(np.uint8)
    outputs["cv2 Telea"] = cv2.inpaint(holed, hole8, 3, cv2.INPAINT_TELEA)[..., ::-1]
    outputs["cv2 NS"] = cv2.inpaint(holed, hole8, 3, cv2.INPAINT_NS)[..., ::-1]
    if baseline is not None:
        name, other = baseline
        outputs[name] = _run(other, gt, hole)
    return {name: np.where(keep, gt, out) for name, out in outputs.items()}


def _mean(scores: list[Scores]) -> Scores:
    return Scores(*(float(np.mean([getattr(s, k) for s in scores])) for k in ("psnr", "ssim",
                                                                               "l1")))


def evaluate_inpaint(model: Model, images: str | Path, masks: str | Path | None = None,
                     hole: str = "white", presets: tuple[str, ...] = (), seed: int = 0,
                     pair: str = "name", device: str | torch.device = "cpu",
                     precision: str = "fp32", baseline: Model | None = None
                     ) -> InpaintEvalResult:
    """Score the model, cv2 Telea and cv2 Navier–Stokes on every image of ``images``.

    Args:
        model: a loaded inpainting model.
        images: folder of clean images (recursive), or one file.
        masks: folder of hole masks; or None and ``presets``.
        hole: mask file convention, ``white`` (nonzero = hole) or ``black`` (0 = hole).
        presets: generated masks, one set per preset, seeded by ``seed`` and the image index.
        pair: ``name`` (LaMa names or equal names, as ``translate infer``) or ``sorted``.
        precision: fp32 by default, as the SR and translation evaluations: scores do not move
            with the device (bf16 on a GPU would shift them).
        baseline: another inpainting model (e.g. an imported LaMa) scored beside, as the
            method ``baseline NAME``.

    Raises:
        TranslateError: a missing folder, unpaired images or masks, a mask of another size,
            an empty mask, or neither/both of ``masks`` and ``presets``.
    """
    images = Path(images)
    if (masks is None) == (not presets):
        raise TranslateError("give the holes with --masks DIR or --mask-preset NAME (not both)")
    for p in presets:
        if p not in PRESETS:
            raise TranslateError(f"unknown mask preset {p!r}: one of {', '.join(PRESETS)}")
    if not images.exists():
        raise TranslateError(f"images not found: {images}")
    files = scan_images(images)
    if masks is not None:
        mask_paths = _mask_files(files, images, Path(masks), hole, pair)
        files = [f for f in files if f not in set(mask_paths)]
    if not files:
        raise TranslateError(f"{images} holds no images")
    pipeline = InpaintPipeline(model, device, precision)
    other = None
    if baseline is not None:
        other = (f"baseline {Path(baseline.path or 'model').name}",
                 InpaintPipeline(baseline, device, precision))
    methods = [*METHODS, *([other[0]] if other else [])]
    if masks is not None:
        sets: list[tuple[str, list[Path | None]]] = [
            (f"{Path(masks).parent.name}/{Path(masks).name}", mask_paths)]
    else:
        sets = [(p, [None] * len(files)) for p in presets]
    results = []
    for label, mask_list in sets:
        scores: dict[str, list[Scores]] = {m: [] for m in methods}
        fractions = []
        for i, (path, mask_path) in enumerate(zip(files, mask_list, strict=True)):
            gt = _read_rgb(path)
            if mask_path is None:
                rng = np.random.default_rng(np.random.SeedSequence(
                    [seed, list(PRESETS).index(label), i]))
                hole_mask = generate_mask(gt.shape[0], gt.shape[1], label, rng).astype(bool)
            else:
                try:
                    hole_mask = load_mask(mask_path, hole).astype(bool)
                except ImageReadError as e:
                    raise TranslateError(f"mask {e}") from None
                if hole_mask.shape != gt.shape[:2]:
                    raise TranslateError(
                        f"mask {mask_path} is {hole_mask.shape[1]}×{hole_mask.shape[0]}, "
                        f"the image {path} is {gt.shape[1]}×{gt.shape[0]}")
            if not hole_mask.any():
                raise TranslateError(f"the mask of {path} has no hole (check --hole "
                                     f"{'black' if hole == 'white' else 'white'})")
            fractions.append(float(hole_mask.mean()))
            for name, out in _complete(pipeline, gt, hole_mask, other).items():
                scores[name].append(_score(out, gt, hole_mask))
        results.append(MaskSetResult(label, len(files), float(np.mean(fractions)),
                                     {m: _mean(s) for m, s in scores.items()}))
    return InpaintEvalResult(images=str(images), sets=results)


def print_inpaint_result(result: InpaintEvalResult, title: str) -> None:
    """One table: a row per mask set and method."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("masks", "hole %", "method", "PSNR hole (dB)", "SSIM hole box", "L1 hole"):
        table.add_column(column, justify="left" if column in ("masks", "method") else "right",
                         overflow="fold")
    for s in result.sets:
        best = max(s.scores, key=lambda m: s.scores[m].psnr)
        for i, (method, sc) in enumerate(s.scores.items()):
            mark = " *" if method == best else ""
            shown = "inf" if math.isinf(sc.psnr) else f"{sc.psnr:.2f}"
            table.add_row(s.masks if i == 0 else "", f"{100 * s.hole_fraction:.1f}" if i == 0
                          else "", method, shown + mark, f"{sc.ssim:.4f}", f"{sc.l1:.4f}")
    ui.console.print(table)
    ui.info(f"{result.sets[0].n_images} images from {result.images}; * = best PSNR; "
            "PSNR/L1 over hole pixels, SSIM over the hole's bounding box")


def save_inpaint_result(folder: Path, result: InpaintEvalResult, key: str) -> Path:
    """Merge ``result`` under ``key`` into ``folder/eval_inpaint.json`` (atomically)."""
    path = folder / RESULT_FILE
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = {}
        data = data if isinstance(data, dict) else {}
    data[key] = result.as_dict()
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path
