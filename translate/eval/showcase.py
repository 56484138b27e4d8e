"""``translate showcase``: a model beside its baseline on a few images, scored, as a report section.

What each task is shown beside (images 8-bit RGB, metrics ``translate.eval.image_metrics``):

* **sr** — each image is the HR reference: mod-cropped to the scale and shrunk by MATLAB-style
  bicubic (``translate.data.resize.imresize``, as ``translate eval`` makes LR inputs), then
  upscaled by bicubic and by the model. PSNR/SSIM on Y with the border = scale cropped, as
  ``translate eval`` scores SR (RUN/eval_sr.json).
* **inpaint** — a ``medium`` free-form hole (``translate.data.masks.generate_mask``, seeded per
  image as ``translate eval --mask-preset`` seeds it) is filled by the model and by
  ``cv2.inpaint`` (Telea, radius 3), both composited over the known pixels; PSNR over the hole
  pixels and SSIM of the hole's box, as ``translate eval`` scores inpainting.
* **cyclegan** with ``truth="winter"`` — ``G_AB(x)`` against ``winter(x)``
  (``translate.data.demo.winter``, its snow flakes drawn from ``default_rng(0)`` for every
  image): the demo's domain B is rendered by a known transform, so an unpaired model can be
  scored against ground truth. The input as is is scored beside it. PSNR and SSIM on RGB (the
  mean over channels), no border cropped.

The section is written as ``OUT/section.json`` (``translate report --section``; the format is
in ``translate.report``) with the images it shows beside it, ``section.json`` last, so a folder
without it was not finished. Scores are means over the images shown.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from translate.errors import TranslateError
from translate.infer.folder import refuse_overlaps
from translate.io.atomic import atomic_write_text
from translate.io.images import ImageReadError, read_image, scan_images, to_rgb8, write_image
from translate.io.oserrors import check_writable, destination_errors, writing
from translate.signals import check as check_stop

SECTION_FILE = "section.json"
TRUTHS = ("winter",)
INPAINT_PRESET = "medium"
WINTER_SEED = 0  # the flakes of every ground-truth image come from default_rng(WINTER_SEED)


def _images(folder: Path, limit: int) -> list[tuple[str, np.ndarray]]:
    """(stem, (H, W, 3) uint8) of the first ``limit`` images under ``folder``, sorted."""
    if not folder.exists():
        raise TranslateError(f"images not found: {folder}")
    files = scan_images(folder)[:limit]
    if not files:
        raise TranslateError(f"{folder} holds no images")
    out = []
    for f in files:
        try:
            out.append((f.relative_to(folder).with_suffix("").as_posix().replace("/", "_")
                        if folder.is_dir() else f.stem, to_rgb8(read_image(f))))
        except ImageReadError as e:
            raise TranslateError(str(e)) from None
    return out


def _section(title: str, note: str, metrics: list[str], scores: dict[str, list[list[float]]],
             image_columns: list[str], images: list[list[str]]) -> dict[str, Any]:
    """The section dict: one row per method with the mean of each metric over the images."""
    rows = [[name, *(float(np.mean(column)) for column in zip(*per_image, strict=True))]
            for name, per_image in scores.items()]
    return {"title": title, "note": note, "columns": metrics, "rows": rows,
            "image_columns": image_columns, "images": images}


def winter_truth(pipe: Callable[[np.ndarray], np.ndarray],
                 images: list[tuple[str, np.ndarray]], out: Path,
                 model_name: str = "G_AB(x)") -> dict[str, Any]:
    """G_AB(x) and x as is, each against ``winter(x)``: PSNR (dB) and SSIM on RGB."""
    from translate.data.demo import winter
    from translate.eval.image_metrics import psnr, ssim

    scores: dict[str, list[list[float]]] = {model_name: [], "input as is": []}
    shown = []
    for stem, x in images:
        check_stop()  # a stop signal, between images (and SR tiles, in the pipeline)
        truth = winter(x, np.random.default_rng(WINTER_SEED))
        y = pipe(x)
        for name, img in ((model_name, y), ("input as is", x)):
            scores[name].append([psnr(img, truth), ssim(img, truth)])
        files = [f"{stem}_input.png", f"{stem}_translated.png", f"{stem}_winter.png"]
        for name, img in zip(files, (x, y, truth), strict=True):
            write_image(out / name, img)
        shown.append([stem, *files])
    note = ("The demo's domain B is rendered by a known transform (translate.data.demo.winter), "
            "so G_AB can be scored against ground truth although it was trained unpaired: "
            "PSNR and SSIM (11×11 Gaussian, mean over R, G, B) of each image against "
            f"winter(x), snow flakes drawn from default_rng({WINTER_SEED}); means over "
            f"{len(images)} images. Above 'input as is' on both is the goal.")
    return _section("Ground truth: G_AB(testA) against winter(testA)", note,
                    ["PSNR (dB)", "SSIM"], scores,
                    ["input x", "G_AB(x)", "winter(x) (ground truth)"], shown)


def sr_beside_bicubic(pipe: Callable[[np.ndarray], np.ndarray],
                      images: list[tuple[str, np.ndarray]], out: Path, scale: int,
                      model_name: str) -> dict[str, Any]:
    """Bicubic ×scale and the model on MATLAB-bicubic-shrunk images: PSNR/SSIM on Y."""
    from translate.data.resize import imresize, modcrop
    from translate.eval.image_metrics import psnr, ssim

    scores: dict[str, list[list[float]]] = {"bicubic": [], model_name: []}
    shown = []
    for stem, image in images:
        check_stop()  # a stop signal, between images (and SR tiles, in the pipeline)
        hr = modcrop(image, scale)
        if min(hr.shape[:2]) < 2 * scale:
            raise TranslateError(f"{stem}: {hr.shape[1]}x{hr.shape[0]} is too small for ×{scale}")
        lr = imresize(hr, scale=1.0 / scale)
        bicubic, sr = imresize(lr, scale=scale), pipe(lr)
        for name, img in (("bicubic", bicubic), (model_name, sr)):
            scores[name].append([psnr(img, hr, crop_border=scale, y_channel=True),
                                 ssim(img, hr, crop_border=scale, y_channel=True)])
        files = [f"{stem}_lr.png", f"{stem}_bicubic.png", f"{stem}_sr.png", f"{stem}_hr.png"]
        for name, img in zip(files, (lr, bicubic, sr, hr), strict=True):
            write_image(out / name, img)
        shown.append([stem, *files])
    note = (f"Each image is shrunk ×{scale} by MATLAB-style bicubic and upscaled back; PSNR and "
            f"SSIM on Y (BT.601), {scale} border pixels cropped, as `translate eval` scores SR; "
            f"means over {len(images)} images.")
    return _section(f"Super-resolution ×{scale}: {model_name} beside bicubic", note,
                    ["PSNR (dB)", "SSIM"], scores,
                    [f"LR input (÷{scale})", f"bicubic ×{scale}", model_name, "original"], shown)


def inpaint_beside_cv2(pipe: Callable[[np.ndarray, np.ndarray], np.ndarray],
                       images: list[tuple[str, np.ndarray]], out: Path, seed: int,
                       model_name: str) -> dict[str, Any]:
    """cv2 Telea and the model on seeded ``medium`` holes: PSNR (hole) and SSIM (hole box)."""
    import cv2

    from translate.data.masks import PRESETS, generate_mask
    from translate.eval.inpaint import _score

    scores: dict[str, list[list[float]]] = {"cv2 Telea": [], model_name: []}
    shown = []
    for i, (stem, gt) in enumerate(images):
        check_stop()  # a stop signal, between images
        rng = np.random.default_rng(np.random.SeedSequence(
            [seed, list(PRESETS).index(INPAINT_PRESET), i]))  # as `translate eval` seeds them
        hole = generate_mask(gt.shape[0], gt.shape[1], INPAINT_PRESET, rng).astype(bool)
        keep = ~hole[..., None]
        holed = np.where(keep, gt, np.uint8(255))  # shown with white holes
        telea = cv2.inpaint(np.ascontiguousarray((gt * keep)[..., ::-1]), hole.astype(np.uint8),
                            3, cv2.INPAINT_TELEA)[..., ::-1]  # BGR, as `translate eval` calls it
        telea = np.where(keep, gt, telea)
        model = np.where(keep, gt, pipe(gt, hole.astype(np.uint8)))
        for name, img in (("cv2 Telea", telea), (model_name, model)):
            s = _score(img, gt, hole)
            scores[name].append([s.psnr, s.ssim])
        files = [f"{stem}_holes.png", f"{stem}_telea.png", f"{stem}_model.png",
                 f"{stem}_original.png"]
        for name, img in zip(files, (holed, telea, model, gt), strict=True):
            write_image(out / name, img)
        shown.append([stem, *files])
    note = (f"Seeded '{INPAINT_PRESET}' free-form holes (translate.data.masks, seed {seed}); "
            "both completions keep the known pixels. PSNR over the hole pixels, SSIM of the "
            "hole's bounding box, as `translate eval` scores inpainting; means over "
            f"{len(images)} images.")
    return _section(f"Inpainting: {model_name} beside cv2 Telea", note,
                    ["PSNR hole (dB)", "SSIM hole box"], scores,
                    ["holes (white)", "cv2 Telea", model_name, "original"], shown)


def showcase(model: str | Path, images: str | Path, out: str | Path, *, limit: int = 4,
             seed: int = 0, truth: str | None = None, device: str = "auto") -> Path:
    """Show ``model`` beside its baseline on the first ``limit`` images of ``images``; write
    ``out/section.json`` and the images it links; returns the section file's path.

    Args:
        model: a bundled model's name, a run or model folder (``translate.load``).
        images: a folder (recursive, sorted) or one image file.
        out: folder for the section and its images (created; files of the same names replaced).
        limit: how many images.
        seed: the inpainting holes.
        truth: cyclegan only, and required there: ``winter`` (the demo's known transform).
        device: where the network runs (fp32 everywhere, so scores do not move with it).

    Raises:
        TranslateError: a task with nothing to be shown beside, a missing ``truth`` (or one
            given to another task), missing or unreadable images.
    """
    from translate.api import load

    pipe = load(model, device=device, precision="fp32")
    if truth is not None and (pipe.task != "cyclegan" or truth not in TRUTHS):
        raise TranslateError(f"--truth {truth}: only 'winter', and only for cyclegan models "
                             f"({model} holds a '{pipe.task}' model)")
    if pipe.task == "cyclegan" and truth is None:
        raise TranslateError("a cyclegan model is shown against ground truth: --truth winter "
                             "(for the demo's winter domain)")
    if pipe.task not in ("sr", "inpaint", "cyclegan"):
        raise TranslateError(f"{model} holds a '{pipe.task}' model; showcase shows sr, inpaint "
                             "and cyclegan (--truth winter) models")
    shown = _images(Path(images), limit)
    out = Path(out)
    # Never beside what it reads (compared by identity: bind mounts, symlinks, spellings).
    source = Path(images) if Path(images).is_dir() else Path(images).parent
    refuse_overlaps(out, {"image folder": source, "model folder": Path(pipe.path)})
    made = not out.exists()
    with writing(out, "create"):
        out.mkdir(parents=True, exist_ok=True)
    try:
        check_writable(out)  # a read-only folder: refused before the work, not after
        before = set(os.listdir(out))
        path = out / SECTION_FILE
        try:
            with destination_errors(out):
                _show(pipe, shown, out, Path(str(model)).name, seed)
        except BaseException:  # what this run wrote goes; nothing is left half-made
            for entry in set(os.listdir(out)) - before:
                with contextlib.suppress(OSError):
                    (out / entry).unlink()
            raise
    except BaseException:
        if made:
            with contextlib.suppress(OSError):
                out.rmdir()  # only if empty
        raise
    return path


def _show(pipe: Any, shown: list[tuple[str, np.ndarray]], out: Path, name: str,
          seed: int) -> None:
    """Write the images of the task's showcase into ``out``, then ``section.json`` (last)."""
    if pipe.task == "sr":
        from translate.modelfile import load_model

        scale = int(load_model(pipe.path, task="sr").meta["scale"])
        section = sr_beside_bicubic(pipe, shown, out, scale, name)
    elif pipe.task == "inpaint":
        section = inpaint_beside_cv2(pipe, shown, out, seed, name)
    else:
        section = winter_truth(lambda x: pipe(x, direction="a2b"), shown, out)
    atomic_write_text(out / SECTION_FILE, json.dumps(section, indent=2) + "\n")
