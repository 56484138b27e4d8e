"""Batch inference over image folders: stream → batch → model → write.

A DataLoader's workers decode files (EXIF orientation applied, odd modes handled by
``translate.io.images``); images of equal size are batched; the model runs under autocast at each
image's own resolution (reflect-padded to the size multiple it needs, cropped back); a thread pool
encodes and writes results while the next batch computes. Every output goes to a temp name in its
final folder and is renamed into place, existing outputs are skipped unless ``overwrite``, and a
file that fails is recorded (path + reason, in ``failures.jsonl``) while the run goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from translate import console as ui
from translate.errors import TranslateError
from translate.io.atomic import atomic_write_text
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
from translate.modelfile import Model
from translate.nets.layers import crop_to, pad_to_multiple
from translate.train.adversarial import Precision

FAILURES = "failures.jsonl"


class TranslationPipeline:
    """A translation generator (CycleGAN) applied at the image's own resolution.

    ``pipeline(x)`` takes (B, 3, H, W) floats in [0, 1] and returns the same shape in [0, 1].
    """

    def __init__(self, model: Model, direction: str = "a2b", device: str | torch.device = "cpu",
                 precision: str = "auto", channels_last: bool | None = None):
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

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True) * 2 - 1  # (B, 3, H, W) in [-1, 1]
        padded, size = pad_to_multiple(x, self.multiple)
        with self.precision.autocast():
            y = self.net(padded.contiguous(memory_format=self.memory_format))
        return ((crop_to(y.float(), size) + 1) / 2).clamp_(0, 1)


@dataclass
class InferReport:
    total: int = 0
    written: int = 0
    skipped_existing: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class _Job:
    index: int
    src: Path
    dst: Path


class _Decode(Dataset):
    """Reads one image per item in a worker; errors come back as data, never as exceptions."""

    def __init__(self, jobs: list[_Job], max_pixels: int | None):
        self.jobs, self.max_pixels = jobs, max_pixels

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        job = self.jobs[i]
        try:
            image = read_image(job.src, max_pixels=self.max_pixels)
            pixels = torch.from_numpy(np.ascontiguousarray(to_float(to_rgb(image.array))))
            return {"job": job, "pixels": pixels.permute(2, 0, 1), "alpha": image.alpha,
                    "gray": image.array.shape[-1] == 1, "bit_depth": image.bit_depth,
                    "warning": image.warning, "error": None}
        except ImageReadError as e:
            return {"job": job, "error": e.reason}
        except Exception as e:  # a decoder bug must not end a run over thousands of files
            return {"job": job, "error": f"cannot read: {type(e).__name__}: {e}"}


def _as_is(item: dict[str, Any]) -> dict[str, Any]:
    return item


def plan_jobs(input_path: Path, output_dir: Path, ext: str | None = None,
              overwrite: bool = False) -> tuple[list[_Job], int]:
    """Map every input image to its output path; returns (jobs to run, outputs already there).

    Raises:
        TranslateError: missing input, or an output folder inside the input folder.
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
        files = scan_images(input_path)
        relative = [f.relative_to(input_path) for f in files]
    else:
        files, relative = [input_path], [Path(input_path.name)]
    jobs, existing = [], 0
    for i, (src, rel) in enumerate(zip(files, relative, strict=True)):
        dst = output_dir / (rel.with_suffix(ext) if ext else rel)
        if out_root not in dst.resolve().parents:  # never write outside OUTPUT_DIR
            raise TranslateError(f"{src}: its output path {dst} would leave {output_dir}")
        if dst.exists() and not overwrite:
            existing += 1
            continue
        jobs.append(_Job(i, src, dst))
    return jobs, existing


def _batches(loader: DataLoader, batch_size: int, report: InferReport
             ) -> Iterator[list[dict[str, Any]]]:
    """Group decoded images of equal size, in order, into batches of up to ``batch_size``."""
    pending: list[dict[str, Any]] = []
    for item in loader:
        if item["error"] is not None:
            report.failures.append({"path": str(item["job"].src), "reason": item["error"]})
            continue
        if item["warning"]:
            ui.warn(f"{item['job'].src}: {item['warning']}")
        if pending and (len(pending) == batch_size
                        or pending[0]["pixels"].shape != item["pixels"].shape):
            yield pending
            pending = []
        pending.append(item)
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
        y = pipeline(x).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)
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
    write_image(item["job"].dst, pixels, alpha=item["alpha"], bit_depth=item["bit_depth"])


def run_folder(pipeline: Any, input_path: str | Path, output_dir: str | Path,
               batch_size: int = 1, ext: str | None = None, overwrite: bool = False,
               num_workers: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               show_progress: bool = True) -> InferReport:
    """Apply ``pipeline`` to every image under ``input_path``, mirroring it into ``output_dir``."""
    input_path, output_dir = Path(input_path), Path(output_dir)
    if batch_size < 1:
        raise TranslateError(f"--batch-size must be at least 1, got {batch_size}")
    jobs, existing = plan_jobs(input_path, output_dir, ext, overwrite)
    report = InferReport(total=len(jobs) + existing, skipped_existing=existing)
    output_dir.mkdir(parents=True, exist_ok=True)
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1) if len(jobs) > 8 else 0
    loader = DataLoader(_Decode(jobs, max_pixels), batch_size=None, num_workers=num_workers,
                        collate_fn=_as_is, pin_memory=False)
    started = time.perf_counter()
    progress = ui.progress_bar()
    bar = progress.add_task("infer", total=len(jobs), rate="", info="")
    pending: list[tuple[Future, _Job]] = []
    shown = progress if show_progress else contextlib.nullcontext()
    with ThreadPoolExecutor(max_workers=2) as writers, shown:
        for batch in _batches(loader, batch_size, report):
            for item, result in _run_model(pipeline, batch, report):
                pending.append((writers.submit(_write, item, result), item["job"]))
            # Bound the results waiting to be written, so memory stays flat.
            while len(pending) > 4 * batch_size:
                _finish(*pending.pop(0), report)
            done = report.written + len(report.failures)
            progress.update(bar, completed=done,
                            rate=f"{done / max(time.perf_counter() - started, 1e-9):5.1f} img/s")
        for future, job in pending:
            _finish(future, job, report)
        progress.update(bar, completed=len(jobs))
    report.seconds = time.perf_counter() - started
    failures_file = output_dir / FAILURES
    if report.failures:
        lines = "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in report.failures)
        atomic_write_text(failures_file, lines)
    elif failures_file.exists():
        failures_file.unlink()  # a clean re-run clears the old list
    return report


def _finish(future: Future, job: _Job, report: InferReport) -> None:
    try:
        future.result()
        report.written += 1
    except Exception as e:  # an unwritable output is that file's failure, not the run's
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        report.failures.append({"path": str(job.src), "reason": f"cannot write output: {reason}"})

