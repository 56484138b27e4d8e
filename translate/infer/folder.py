"""The folder runner: stream → batch → model → write, for any pipeline.

A DataLoader's workers decode files (EXIF orientation applied, odd modes handled by
``translate.io.images``); images of equal size are batched; the pipeline (one of
``translate.infer``'s, or any object with a ``__call__`` and a ``.device``) runs each batch at
the images' own resolution; a thread pool encodes and writes results while the next batch
computes. Every output goes to a temp name in its final folder and is renamed into place,
existing outputs are skipped unless ``overwrite``, and a file that fails is recorded (path +
reason, in ``failures.jsonl``; a name that is not UTF-8 also as its raw bytes,
``translate.io.paths.path_record``) while the run goes on.

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
from translate import runtime
from translate.errors import TranslateError
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
from translate.io.paths import display, json_safe, path_record
from translate.runtime import World
from translate.signals import StopSignals

FAILURES = "failures.jsonl"
RANK_FAILURES = "failures.rank{rank}.jsonl"  # each torchrun rank's list, merged into FAILURES


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
        self.masks = masks  # reads job.mask files (translate.infer.inpaint.MaskFolder)

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
            plan.failures.append({**path_record(src), "reason": reason})
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
            report.failures.append({**path_record(item["job"].src), "reason": item["error"]})
            continue
        if item["warning"]:
            ui.warn(f"{display(item['job'].src)}: {item['warning']}")
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
        report.failures.append({**path_record(batch[0]["job"].src),
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
            (``translate.infer.inpaint.MaskFolder``); the pipeline is then called as
            ``pipeline(images, masks)``.

    SIGINT/SIGTERM stop the run the same way; the report names the signal and its
    ``exit_code`` is 128 + its number. Under torchrun (``runtime.init_from_env`` called
    first) each rank runs its share and the report holds the totals of all ranks; ``fail_fast``
    and signals stop only the ranks that see them.
    """
    input_path, output_dir = Path(input_path), Path(output_dir)
    if batch_size < 1:
        raise TranslateError(f"--batch-size must be at least 1, got {batch_size}")
    world = runtime.WORLD
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
    runtime.barrier()
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
    return "".join(json.dumps(json_safe(f), ensure_ascii=False) + "\n" for f in failures)


def _write_failures(path: Path, failures: list[dict[str, str]]) -> None:
    if failures:
        atomic_write_text(path, _jsonl(failures))
    elif path.exists():
        path.unlink()  # a clean re-run clears the old list


def _combine_ranks(report: InferReport, output_dir: Path,
                   world: World) -> InferReport:
    """Each rank writes its failures to its own file; after a barrier rank 0 merges them into
    ``failures.jsonl``; every rank returns the totals of all ranks."""
    atomic_write_text(output_dir / RANK_FAILURES.format(rank=world.rank), _jsonl(report.failures))
    runtime.barrier()
    if world.main:
        merged = []
        for rank in range(world.size):
            part = output_dir / RANK_FAILURES.format(rank=rank)
            merged += [json.loads(line) for line in part.read_text("utf-8").splitlines()]
            part.unlink()
        _write_failures(output_dir / FAILURES, sorted(merged, key=lambda f: f["path"]))
    # Every rank gets every rank's counts, so all return the same totals and exit code.
    ranks: list[InferReport] = runtime.gather_objects(report)
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
        report.failures.append({**path_record(job.src),
                                "reason": f"cannot write output: {reason}"})

