"""Batch inference over image folders: stream → batch → model → write.

A DataLoader's workers decode files (EXIF orientation applied, odd modes handled by
``translate.io.images``); images of equal size are batched; the model runs under autocast at each
image's own resolution (reflect-padded to the size multiple it needs, cropped back); a thread pool
encodes and writes results while the next batch computes. Every output goes to a temp name in its
final folder and is renamed into place, existing outputs are skipped unless ``overwrite``, and a
file that fails is recorded (path + reason, in ``failures.jsonl``) while the run goes on.

A run can end early (``fail_fast`` at the first failure; SIGINT/SIGTERM): no new input is started,
the writes already queued finish, and the failures and counts are still recorded, so running the
same command again completes exactly what is missing. Temp files a killed run left behind are
removed when the next run starts. Under torchrun each rank takes every world-th input.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from translate import console as ui
from translate.errors import TranslateError, refuse_foreign_options
from translate.io.atomic import atomic_write_text, remove_stale_temp_files
from translate.io.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageReadError,
    from_float,
    read_image,
    rgb_to_gray,
    scan_images,
    to_float,
    to_rgb,
    write_image,
)
from translate.modelfile import Model, load_model
from translate.nets.layers import crop_to, pad_to_multiple
from translate.nets.winograd import fast_inference
from translate.signals import StopSignals
from translate.train import distributed
from translate.train.adversarial import Precision

FAILURES = "failures.jsonl"
RANK_FAILURES = "failures.rank{rank}.jsonl"  # each torchrun rank's list, merged into FAILURES


class TranslationPipeline:
    """A translation generator (CycleGAN) applied at the image's own resolution.

    ``pipeline(x)`` takes (B, 3, H, W) floats in [0, 1] and returns the same shape in [0, 1].
    ``fast_conv`` (default: on for CPU at fp32) runs the generator's 3x3 stride-1 convs with
    Winograd's algorithm (``translate.nets.winograd.fast_inference``).
    """

    def __init__(self, model: Model, direction: str = "a2b", device: str | torch.device = "cpu",
                 precision: str = "auto", channels_last: bool | None = None,
                 compile: bool = False, fast_conv: bool | None = None):
        directions: dict[str, str] = model.meta.get("directions", {})
        if direction not in directions:
            have = ", ".join(directions) or "none"
            raise TranslateError(f"the model has no direction {direction!r} (it has: {have})")
        self.device = torch.device(device)
        self.net = model.networks[directions[direction]].to(self.device).eval()
        self.multiple = int(model.meta.get("size_multiple", 4))
        self.precision = Precision(precision, self.device)
        if channels_last is None:
            channels_last = self.device.type == "cuda"
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)
        if fast_conv is None:  # on where measured faster: CPU at fp32 (docs/BENCHMARKS.md)
            fast_conv = self.device.type == "cpu" and self.precision.name == "fp32"
        self.fast_conv = fast_conv
        if fast_conv:
            # Winograd F(4x4, 3x3) for the 3x3 stride-1 convs: ~4x fewer multiplications, same
            # outputs within fp32 rounding (translate/nets/winograd.py). Converts the loaded
            # network in place (no second copy of the weights).
            self.net = fast_inference(self.net, inplace=True)
        if compile:
            # dynamic=True: one compiled graph serves every image size (each image is run at its
            # own resolution), instead of a recompilation per new size. The first image pays the
            # compilation (tens of seconds on a CPU), so it pays off on large folders only.
            self.net = torch.compile(self.net, dynamic=True)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True) * 2 - 1  # (B, 3, H, W) in [-1, 1]
        padded, size = pad_to_multiple(x, self.multiple)
        with self.precision.autocast():
            y = self.net(padded.contiguous(memory_format=self.memory_format))
        return ((crop_to(y.float(), size) + 1) / 2).clamp_(0, 1)


def build_pipeline(model_path: str | Path, *, device: str = "auto", direction: str | None = None,
                   precision: str = "auto", compile: bool = False, fast_conv: bool | None = None,
                   masks: str | Path | None = None, hole: str = "white",
                   max_pixels: int | None = DEFAULT_MAX_PIXELS, outscale: float | None = None,
                   tile: int | None = None, tile_overlap: int | None = None
                   ) -> tuple[Any, Any | None]:
    """The pipeline ``translate infer`` runs for a model, and its mask folder (inpainting).

    ``model_path`` is a run directory or model folder (PyTorch: a ``TranslationPipeline``,
    ``InpaintPipeline`` or ``SRPipeline`` by the model's task) or an exported ``.onnx`` file
    (``translate.infer_onnx.OnnxPipeline``). Options for another kind of model are refused by
    name, never ignored. Under torchrun (``distributed.init_from_env`` called first) a PyTorch
    model goes on this rank's GPU.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        direction: translation models: ``a2b`` (default) or ``b2a``.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        compile: ``torch.compile`` the network (translation and inpainting models).
        fast_conv: translation models: Winograd 3x3 convs (default: on for CPU at fp32).
        masks: inpainting models (required there): the folder of hole masks.
        hole: how ``masks`` mark holes: ``white`` (nonzero = hole) or ``black`` (0 = hole).
        max_pixels: masks larger than this are refused (as the images by ``run_folder``).
        outscale, tile, tile_overlap: super-resolution models (``SRPipeline``).

    Returns:
        ``(pipeline, mask_folder)``; ``mask_folder`` (``translate.infer_inpaint.MaskFolder``)
        is None except for inpainting models, and goes to ``run_folder(masks=...)``.

    Raises:
        TranslateError: a missing or unreadable model, a model that is not image-to-image, an
            option for another kind of model, or an inpainting model without ``masks``.
    """
    model_path = Path(model_path)
    if model_path.suffix.lower() == ".onnx":  # an exported model: onnxruntime runs it
        from translate.infer_onnx import onnx_pipeline

        return onnx_pipeline(model_path, device, direction, precision, compile, masks, hole,
                             max_pixels,
                             pytorch_only={"--outscale": outscale, "--tile": tile,
                                           "--tile-overlap": tile_overlap,
                                           "--fast-conv": fast_conv or None})
    from translate.train.loop import resolve_device  # the training stack: import on use

    dev = resolve_device(distributed.device_for(distributed.WORLD, device))
    loaded = load_model(model_path, device=dev, task=("cyclegan", "inpaint", "sr"))
    task = loaded.task
    refuse_foreign_options(task, model_path, [
        ("--outscale and --tile", outscale is not None or tile is not None, ("sr",),
         "super-resolution"),
        ("--fast-conv", bool(fast_conv), ("cyclegan",), "translation"),
        ("--masks", masks is not None, ("inpaint",), "inpainting"),
        ("--tile-overlap", tile_overlap is not None, ("sr",), "super-resolution"),
        ("--direction", direction is not None, ("cyclegan",), "translation"),
        ("--compile", compile, ("cyclegan", "inpaint"), "translation and inpainting"),
    ])
    if task == "inpaint":
        from translate.infer_inpaint import InpaintPipeline, MaskFolder

        if masks is None:
            raise TranslateError(f"{model_path} holds an inpainting model: give the holes "
                                 "with --masks MASK_DIR")
        mask_folder = MaskFolder(masks, hole, max_pixels)
        return InpaintPipeline(loaded, dev, precision, compile=compile), mask_folder
    if task == "sr":
        from translate.infer_sr import SRPipeline

        return SRPipeline(loaded, dev, precision, tile=tile or 0, tile_overlap=tile_overlap,
                          outscale=outscale), None
    return TranslationPipeline(loaded, direction or "a2b", dev, precision, compile=compile,
                               fast_conv=fast_conv), None


@dataclass
class InferReport:
    """What a run did. Under torchrun every rank's report holds the totals of all ranks."""

    total: int = 0
    written: int = 0
    skipped_existing: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    not_attempted: int = 0  # inputs never started because the run stopped early
    stopped: str | None = None  # why it stopped early: "--fail-fast", "SIGTERM" or "SIGINT"
    signal: int | None = None  # the signal that stopped it
    written_per_rank: list[int] = field(default_factory=list)  # under torchrun

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def exit_code(self) -> int:
        """128 + signal number when a signal stopped the run (as a shell reports it), else 1 when
        any file failed, else 0."""
        if self.signal is not None:
            return 128 + self.signal
        return 0 if self.ok else 1


@dataclass(frozen=True)
class _Job:
    index: int
    src: Path
    dst: Path
    mask: Path | None = None  # inpainting: the mask file paired with src


class _Decode(Dataset):
    """Reads one image per item in a worker; errors come back as data, never as exceptions."""

    def __init__(self, jobs: list[_Job], max_pixels: int | None, masks: Any = None):
        self.jobs, self.max_pixels = jobs, max_pixels
        self.masks = masks  # reads job.mask files (translate.infer_inpaint.MaskFolder)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        job = self.jobs[i]
        try:
            image = read_image(job.src, max_pixels=self.max_pixels)
            pixels = torch.from_numpy(np.ascontiguousarray(to_float(to_rgb(image.array))))
            item = {"job": job, "pixels": pixels.permute(2, 0, 1), "alpha": image.alpha,
                    "gray": image.array.shape[-1] == 1, "bit_depth": image.bit_depth,
                    "warning": image.warning, "error": None}
            if job.mask is not None:
                item |= self.masks.decode(job.mask, image)  # "mask", "hole", "original"
            return item
        except ImageReadError as e:
            return {"job": job, "error": e.reason}
        except Exception as e:  # a decoder bug must not end a run over thousands of files
            return {"job": job, "error": f"cannot read: {type(e).__name__}: {e}"}


def _as_is(item: dict[str, Any]) -> dict[str, Any]:
    return item


@dataclass
class Plan:
    jobs: list[_Job]  # inputs to translate
    existing: int  # inputs whose output is already there
    failures: list[dict[str, str]]  # inputs refused before decoding (output collision or escape)

    @property
    def total(self) -> int:
        return len(self.jobs) + self.existing + len(self.failures)


def plan_jobs(input_path: Path, output_dir: Path, ext: str | None = None,
              overwrite: bool = False, rank: int = 0, world_size: int = 1) -> Plan:
    """Map every input image to its output path.

    Rank ``rank`` of ``world_size`` takes every world_size-th input of the sorted list. The split
    is made before looking at which outputs exist (which other ranks change as they write), so
    every rank computes the same split.

    An input whose output path another input already claims (``a.png`` and ``a.jpg`` with
    ``--ext png``), or would lie outside ``output_dir`` (through a symlinked subfolder), or is
    the input itself, is a failure of that input, not of the run.

    Raises:
        TranslateError: missing input, an unknown ``ext``, or the output folder inside the input
            folder or the input folder inside the output folder.
    """
    if not input_path.exists():
        raise TranslateError(f"input not found: {input_path}")
    if ext is not None:
        ext = ext if ext.startswith(".") else f".{ext}"
        if ext.lower() not in IMAGE_EXTENSIONS:
            raise TranslateError(f"--ext {ext}: not an image format this tool writes")
    out_root = output_dir.resolve()
    if input_path.is_dir():
        in_root = input_path.resolve()
        if out_root == in_root or in_root in out_root.parents:
            raise TranslateError(
                f"output folder {output_dir} is inside the input folder {input_path}; "
                "choose an output folder outside it"
            )
        if out_root in in_root.parents:
            raise TranslateError(
                f"input folder {input_path} is inside the output folder {output_dir}; "
                "choose an output folder outside it"
            )
        files = scan_images(input_path)
        relative = [f.relative_to(input_path) for f in files]
    else:
        files, relative = [input_path], [Path(input_path.name)]
    plan = Plan(jobs=[], existing=0, failures=[])
    claimed: dict[Path, Path] = {}  # output path → the first input that maps to it
    for i, (src, rel) in enumerate(zip(files, relative, strict=True)):
        dst = output_dir / (rel.with_suffix(ext) if ext else rel)
        first = claimed.setdefault(dst, src)  # over all inputs: every rank agrees on "first"
        if i % world_size != rank:
            continue
        reason = None
        if first != src:
            reason = (f"its output {dst} is already the output of {first}; "
                      "rename one of them or choose another --ext")
        elif out_root not in dst.resolve().parents:
            reason = f"its output {dst} would be written outside {output_dir} (a symlink?)"
        elif dst.resolve() == src.resolve():
            reason = f"its output {dst} is the input itself"
        if reason is not None:
            plan.failures.append({"path": str(src), "reason": reason})
        elif dst.exists() and not overwrite:
            plan.existing += 1
        else:
            plan.jobs.append(_Job(i, src, dst))
    return plan


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGINT/SIGTERM to the main process (a Ctrl-C reaches the whole
    process group), which stops them when it stops reading."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _batches(loader: DataLoader, batch_size: int, report: InferReport,
             halt: Callable[[], bool]) -> Iterator[list[dict[str, Any]]]:
    """Group decoded images of equal size, in order, into batches of up to ``batch_size``.

    Once ``halt()`` is true no further image is taken; the ones already held (all read before
    whatever made it true) are still given out.
    """
    pending: list[dict[str, Any]] = []
    for item in loader:
        if halt():
            break
        if item["error"] is not None:
            report.failures.append({"path": str(item["job"].src), "reason": item["error"]})
            continue
        if item["warning"]:
            ui.warn(f"{item['job'].src}: {item['warning']}")
        if pending and pending[0]["pixels"].shape != item["pixels"].shape:
            yield pending
            pending = []
        pending.append(item)
        if len(pending) == batch_size:
            yield pending
            pending = []
    if pending:
        yield pending


def _run_model(pipeline: Any, batch: list[dict[str, Any]], report: InferReport
               ) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Results (H, W, 3) for a batch. If the model fails on it (e.g. an image too small for its
    downsampling), each image is retried alone and the ones that still fail are recorded."""
    x = torch.stack([item["pixels"] for item in batch])
    if pipeline.device.type == "cuda":
        x = x.pin_memory()
    try:
        if "mask" in batch[0]:  # inpainting: (B, 1, H, W) holes as the second input
            y = pipeline(x, torch.stack([item["mask"] for item in batch]))
        else:
            y = pipeline(x)
        y = y.permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)
        return list(zip(batch, y, strict=True))
    except (RuntimeError, ValueError) as e:
        if len(batch) > 1:
            return [r for item in batch for r in _run_model(pipeline, [item], report)]
        h, w = batch[0]["pixels"].shape[-2:]
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        report.failures.append({"path": str(batch[0]["job"].src),
                                "reason": f"the model cannot process this {w}×{h} image: {reason}"})
        return []


def _write(item: dict[str, Any], result: np.ndarray) -> None:
    """result: (H, W, 3) float in [0, 1] → the input's channels and bit depth (alpha kept)."""
    pixels = from_float(result, item["bit_depth"])
    if item["gray"]:
        pixels = rgb_to_gray(pixels)
    if "hole" in item:  # inpainting: known pixels are the input's own, not a float round trip
        pixels = np.where(item["hole"][..., None], pixels, item["original"])
    alpha = item["alpha"]
    if alpha is not None and alpha.shape[:2] != pixels.shape[:2]:
        alpha = _resize_alpha(alpha, pixels.shape[:2])
    write_image(item["job"].dst, pixels, alpha=alpha, bit_depth=item["bit_depth"])


def _resize_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Alpha (H, W) resized to the output's ``size`` (super-resolution): bilinear (no overshoot
    past opaque/transparent, unlike bicubic), ``INTER_AREA`` when shrinking; dtype kept."""
    import cv2

    h, w = size
    shrink = h < alpha.shape[0] or w < alpha.shape[1]
    return cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def default_decode_workers(n_jobs: int, device: torch.device | None) -> int:
    """Decoding processes when ``--workers`` is not given.

    None for a handful of files (starting processes costs more than it saves). On a GPU, up to
    4, one per core. On the CPU only the cores the model's compute threads leave free: a decoder
    that preempts one of them stalls every multi-threaded kernel on the slower thread (measured
    on 2 cores: 0.91× a naive loop with 2 decoders, 1.12× with none; docs/BENCHMARKS.md).
    """
    if n_jobs <= 8:
        return 0
    cores = os.cpu_count() or 1
    if device is not None and device.type == "cpu":
        return min(4, max(0, cores - torch.get_num_threads()))
    return min(4, cores)


def run_folder(pipeline: Any, input_path: str | Path, output_dir: str | Path,
               batch_size: int = 1, ext: str | None = None, overwrite: bool = False,
               num_workers: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               show_progress: bool = True, fail_fast: bool = False,
               masks: Any = None) -> InferReport:
    """Apply ``pipeline`` to every image under ``input_path``, mirroring it into ``output_dir``.

    Args:
        fail_fast: stop at the first failed input (the writes already queued still finish).
        masks: inpainting: pairs every input with its mask file and reads masks
            (``translate.infer_inpaint.MaskFolder``); the pipeline is then called as
            ``pipeline(images, masks)``.

    SIGINT/SIGTERM stop the run the same way; the report names the signal and its
    ``exit_code`` is 128 + its number. Under torchrun (``distributed.init_from_env`` called
    first) each rank runs its share and the report holds the totals of all ranks; ``fail_fast``
    and signals stop only the ranks that see them.
    """
    input_path, output_dir = Path(input_path), Path(output_dir)
    if batch_size < 1:
        raise TranslateError(f"--batch-size must be at least 1, got {batch_size}")
    world = distributed.WORLD
    plan = plan_jobs(input_path, output_dir, ext, overwrite, world.rank, world.size)
    if masks is not None:
        plan = masks.pair(plan, input_path, world.rank, world.size)
    jobs = plan.jobs
    report = InferReport(total=plan.total, skipped_existing=plan.existing,
                         failures=list(plan.failures))
    if world.main:
        output_dir.mkdir(parents=True, exist_ok=True)
        # A killed run's temp files (none of ours exist yet: the other ranks wait below).
        remove_stale_temp_files(output_dir)
        for old in output_dir.glob(RANK_FAILURES.format(rank="*")):
            old.unlink()
    distributed.barrier()
    if num_workers is None:
        num_workers = default_decode_workers(len(jobs), getattr(pipeline, "device", None))
    loader = DataLoader(_Decode(jobs, max_pixels, masks), batch_size=None, num_workers=num_workers,
                        collate_fn=_as_is, pin_memory=False,
                        worker_init_fn=_ignore_stop_signals if num_workers else None)
    started = time.perf_counter()
    progress = ui.progress_bar()
    bar = progress.add_task("infer", total=len(jobs), rate="", info="")
    pending: list[tuple[Future, _Job]] = []
    shown = progress if show_progress and world.main else contextlib.nullcontext()
    with StopSignals() as stop, ThreadPoolExecutor(max_workers=2) as writers, shown:
        def halt() -> bool:
            return stop.received is not None or (fail_fast and len(report.failures) > 0)

        batches = _batches(loader, batch_size, report, halt)
        for batch in batches:
            for item, result in _run_model(pipeline, batch, report):
                pending.append((writers.submit(_write, item, result), item["job"]))
            # Bound the results waiting to be written, so memory stays flat.
            while pending and (len(pending) > 4 * batch_size or pending[0][0].done()):
                _finish(*pending.pop(0), report)
            done = report.written + len(report.failures) - len(plan.failures)
            progress.update(bar, completed=done,
                            rate=f"{done / max(time.perf_counter() - started, 1e-9):5.1f} img/s")
        batches.close()  # stops the decoding workers now, not when garbage-collected
        for future, job in pending:
            _finish(future, job, report)
        done = report.written + len(report.failures) - len(plan.failures)
        progress.update(bar, completed=done)
    report.seconds = time.perf_counter() - started
    if done < len(jobs):
        report.not_attempted = len(jobs) - done
        report.signal = stop.received
        report.stopped = signal.Signals(stop.received).name if stop.received else "--fail-fast"
    if world.active:
        return _combine_ranks(report, output_dir, world)
    _write_failures(output_dir / FAILURES, report.failures)
    return report


def _jsonl(failures: list[dict[str, str]]) -> str:
    return "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures)


def _write_failures(path: Path, failures: list[dict[str, str]]) -> None:
    if failures:
        atomic_write_text(path, _jsonl(failures))
    elif path.exists():
        path.unlink()  # a clean re-run clears the old list


def _combine_ranks(report: InferReport, output_dir: Path,
                   world: distributed.World) -> InferReport:
    """Each rank writes its failures to its own file; after a barrier rank 0 merges them into
    ``failures.jsonl``; every rank returns the totals of all ranks."""
    atomic_write_text(output_dir / RANK_FAILURES.format(rank=world.rank), _jsonl(report.failures))
    distributed.barrier()
    if world.main:
        merged = []
        for rank in range(world.size):
            part = output_dir / RANK_FAILURES.format(rank=rank)
            merged += [json.loads(line) for line in part.read_text("utf-8").splitlines()]
            part.unlink()
        _write_failures(output_dir / FAILURES, sorted(merged, key=lambda f: f["path"]))
    # Every rank gets every rank's counts, so all return the same totals and exit code.
    ranks: list[InferReport] = distributed.gather_objects(report)
    failures = [f for r in ranks for f in r.failures]
    stopped = [r for r in ranks if r.stopped]
    return InferReport(
        total=sum(r.total for r in ranks),
        written=sum(r.written for r in ranks),
        skipped_existing=sum(r.skipped_existing for r in ranks),
        failures=sorted(failures, key=lambda f: f["path"]),
        seconds=max(r.seconds for r in ranks),
        not_attempted=sum(r.not_attempted for r in ranks),
        stopped=", ".join(sorted({r.stopped for r in stopped})) or None,
        signal=next((r.signal for r in stopped if r.signal is not None), None),
        written_per_rank=[r.written for r in ranks],
    )


def _finish(future: Future, job: _Job, report: InferReport) -> None:
    try:
        future.result()
        report.written += 1
    except Exception as e:  # an unwritable output is that file's failure, not the run's
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        report.failures.append({"path": str(job.src), "reason": f"cannot write output: {reason}"})

