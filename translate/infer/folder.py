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
same command again completes exactly what is missing. A signal is acted on between images, and
within a large image between its tiles (a pipeline that runs tiles checks
``translate.signals.check``; the image is then dropped, not half-written); a pipeline with an
``on_tile`` attribute (SR) gets a callback that moves the bar within an image, tile by tile.
Temp files a killed run left behind are removed when the next run starts. Under torchrun each
rank takes every world-th input.

On a GPU the runner feeds the device: plain JPEGs are decoded there (nvJPEG through
``torchvision.io.decode_jpeg``; workers only read the bytes and the header), other files are
decoded in workers and batched in pinned memory, copies to and from the device are
asynchronous, and results are copied back into pinned memory while the next batch computes;
the writer threads wait for each copy. 16-bit inputs run at fp32 when the precision was chosen
by ``auto`` (bf16 keeps 8 bits of mantissa: a 16-bit output would get 8-bit accuracy). On the
CPU none of this changes anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import signal
import time
import weakref
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
    probe_plain_jpeg,
    read_image,
    rgb_to_gray,
    scan_images,
    to_float,
    to_rgb,
    write_image,
)
from translate.io.oserrors import check_writable, os_error_in, reason, writing
from translate.io.paths import display, json_safe, overlap, path_record, same_file
from translate.runtime import Precision, World
from translate.signals import Stopped, StopSignals

FAILURES = "failures.jsonl"
RANK_FAILURES = "failures.rank{rank}.jsonl"  # each torchrun rank's list, merged into FAILURES
# Write errors that every later write into the output folder would meet too: they end the run
# (one error line) instead of failing each remaining file alike.
DESTINATION_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


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
    write_error: str | None = None  # the output folder took no more files (full, read-only)

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


JPEG_SUFFIXES = (".jpg", ".jpeg")


class _Decode(Dataset):
    """Reads one image per item in a worker; errors come back as data, never as exceptions.

    With ``device_jpeg``, a plain JPEG (``probe_plain_jpeg``) comes back undecoded, as its bytes
    (``"jpeg"``) and its ``"shape"``, for :func:`_inputs` to decode on the device.
    """

    def __init__(self, jobs: list[_Job], max_pixels: int | None, masks: Any = None,
                 device_jpeg: bool = False):
        self.jobs, self.max_pixels = jobs, max_pixels
        self.masks = masks  # reads job.mask files (translate.infer.inpaint.MaskFolder)
        self.device_jpeg = device_jpeg

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        job = self.jobs[i]
        if self.device_jpeg and job.mask is None and job.src.suffix.lower() in JPEG_SUFFIXES:
            plain = probe_plain_jpeg(job.src, self.max_pixels)
            if plain is not None:
                data = torch.frombuffer(bytearray(plain.data), dtype=torch.uint8)
                return {"job": job, "jpeg": data, "shape": (3, plain.height, plain.width),
                        "alpha": None, "gray": plain.gray, "bit_depth": 8, "warning": None,
                        "error": None}
        return decode_item(job, self.max_pixels, self.masks)


def image_item(array: np.ndarray, alpha: np.ndarray | None, bit_depth: int) -> dict[str, Any]:
    """What the runner keeps of one decoded image: its pixels as (3, H, W) float in [0, 1] for
    the model, and what :func:`finish_pixels` needs to write the result like the input
    (channels, alpha, bit depth). ``translate.load`` makes its items here too."""
    pixels = torch.from_numpy(np.ascontiguousarray(to_float(to_rgb(array)))).permute(2, 0, 1)
    return {"pixels": pixels, "shape": tuple(pixels.shape), "alpha": alpha,
            "gray": array.shape[-1] == 1, "bit_depth": bit_depth}


def decode_item(job: _Job, max_pixels: int | None, masks: Any = None) -> dict[str, Any]:
    """One input decoded on the CPU: pixels (3, H, W) float in [0, 1] and what writing needs;
    a failure as ``{"job", "error"}``."""
    try:
        image = read_image(job.src, max_pixels=max_pixels)
        item = {"job": job, **image_item(image.array, image.alpha, image.bit_depth),
                "warning": image.warning, "error": None}
        if job.mask is not None:
            item |= masks.decode(job.mask, image)  # "mask", "hole", "original"
        return item
    except ImageReadError as e:
        return {"job": job, "error": e.reason}
    except Exception as e:  # a decoder bug must not end a run over thousands of files
        return {"job": job, "error": f"cannot read: {type(e).__name__}: {e}"}


def device_jpeg_decoding(device: torch.device) -> bool:
    """Whether ``torchvision.io.decode_jpeg`` decodes on ``device``: GPUs whose torchvision was
    built with nvJPEG (checked once per device by decoding a tiny JPEG). Never on the CPU,
    where the workers decode."""
    if device.type != "cuda":
        return False
    key = str(device)
    if key not in _DEVICE_JPEG:
        try:
            import io

            from PIL import Image
            from torchvision.io import decode_jpeg

            buffer = io.BytesIO()
            Image.new("RGB", (16, 16), (200, 30, 60)).save(buffer, "JPEG")
            data = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
            _DEVICE_JPEG[key] = decode_jpeg([data], device=device)[0].shape == (3, 16, 16)
        except Exception:
            _DEVICE_JPEG[key] = False
    return _DEVICE_JPEG[key]


_DEVICE_JPEG: dict[str, bool] = {}


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


def refuse_overlaps(output_dir: Path, reads: dict[str, Path | None]) -> None:
    """Refuse an output folder that is, lies inside, or holds a folder the run reads.

    Writing into such a folder would take the files read for finished outputs (and skip
    them), or replace them with ``--overwrite``. Folders are compared by what they are
    (device and inode, :func:`translate.io.paths.overlap`), not by spelling: symlinks,
    relative paths, bind mounts and volumes mounted under two paths are all seen through.

    Args:
        reads: what the message calls each folder (``input folder``, ``mask folder``, ``model
            folder``) → its path; files and paths that are None are passed over.

    Raises:
        TranslateError: naming both folders.
    """
    for what, path in reads.items():
        if path is None or not Path(path).is_dir():
            continue
        shown, out_shown = display(path), display(output_dir)
        how = overlap(output_dir, path)
        if how == "same":
            where = f"output folder {out_shown} is the {what} {shown}"
        elif how == "inside":
            where = f"output folder {out_shown} is inside the {what} {shown}"
        elif how == "holds":
            where = f"the {what} {shown} is inside the output folder {out_shown}"
        else:
            continue
        raise TranslateError(f"{where}; choose an output folder outside it")


def plan_jobs(input_path: Path, output_dir: Path, ext: str | None = None,
              overwrite: bool = False, rank: int = 0, world_size: int = 1,
              reads: dict[str, Path | None] | None = None) -> Plan:
    """Map every input image to its output path.

    Rank ``rank`` of ``world_size`` takes every world_size-th input of the sorted list. The split
    is made before looking at which outputs exist (which other ranks change as they write), so
    every rank computes the same split.

    An input whose output path another input already claims (``a.png`` and ``a.jpg`` with
    ``--ext png``), or would lie outside ``output_dir`` (through a symlinked subfolder), or is
    the input itself, is a failure of that input, not of the run. ``reads`` names the other
    folders the run reads (masks, the model's), which the output folder must keep clear of as
    of the input folder.

    Raises:
        TranslateError: missing input, an unknown ``ext``, an output that is a file, or an
            output folder that is, lies inside or holds the input folder or one of ``reads``
            (:func:`refuse_overlaps`).
    """
    if not input_path.exists():
        raise TranslateError(f"input not found: {input_path}")
    if ext is not None:
        ext = ext if ext.startswith(".") else f".{ext}"
        if ext.lower() not in IMAGE_EXTENSIONS:
            raise TranslateError(f"--ext {ext}: not an image format this tool writes")
    if output_dir.exists() and not output_dir.is_dir():
        raise TranslateError(f"output {display(output_dir)} is a file, not a folder; "
                             "choose a folder for OUTPUT")
    refuse_overlaps(output_dir, {"input folder": input_path, **(reads or {})})
    out_root = output_dir.resolve()
    if input_path.is_dir():
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
        elif same_file(dst, src):  # src exists (scanned): equal resolved paths are this too
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


def _batch_key(item: dict[str, Any], split_deep: bool) -> tuple:
    """Items batch together when their shapes (and, with ``split_deep``, their bit depths' being
    over 8) are equal."""
    return (item["shape"], item["bit_depth"] > 8) if split_deep else (item["shape"],)


def _batches(loader: DataLoader, batch_size: int, report: InferReport,
             halt: Callable[[], bool], split_deep: bool = False
             ) -> Iterator[list[dict[str, Any]]]:
    """Group decoded images of equal size, in order, into batches of up to ``batch_size``
    (``split_deep``: 16-bit images apart from 8-bit ones, as they run at another precision).

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
        if pending and _batch_key(pending[0], split_deep) != _batch_key(item, split_deep):
            yield pending
            pending = []
        pending.append(item)
        if len(pending) == batch_size:
            yield pending
            pending = []
    if pending:
        yield pending


def _inputs(batch: list[dict[str, Any]], device: torch.device, report: InferReport,
            max_pixels: int | None, masks: Any) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """The batch's items that could be read, and their pixels (B, 3, H, W) in [0, 1]: on the
    device when some were decoded there (JPEG bytes from :class:`_Decode`), in pinned host
    memory for a GPU, else as the workers made them. A JPEG the device cannot decode is
    decoded on the CPU instead, which records what is wrong with it."""
    jpegs = [item for item in batch if "jpeg" in item]
    if jpegs:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            decoded = decode_jpeg([item.pop("jpeg") for item in jpegs],
                                  mode=ImageReadMode.RGB, device=device)
        except Exception:  # e.g. a cut-off scan (the header was fine)
            decoded = [None] * len(jpegs)
        by_id = {id(item): pixels for item, pixels in zip(jpegs, decoded, strict=True)}
        kept = []
        for item in batch:
            if id(item) in by_id:
                pixels = by_id[id(item)]
                if pixels is not None and tuple(pixels.shape) == item["shape"]:
                    item["pixels"] = pixels.float().div_(255)  # as to_float: uint8 / 255
                else:
                    item = decode_item(item["job"], max_pixels, masks)
                    if item["error"] is not None:
                        report.failures.append({**path_record(item["job"].src),
                                                "reason": item["error"]})
                        continue
            kept.append(item)
        batch = kept
    pixels = [item["pixels"] for item in batch]
    if not pixels:
        return batch, torch.empty(0)
    if any(p.device != pixels[0].device for p in pixels) or pixels[0].device.type != "cpu":
        return batch, torch.stack([p.to(device, non_blocking=True) for p in pixels])
    if device.type == "cuda":  # pinned: the pipeline's copy to the device is asynchronous
        x = torch.empty((len(pixels), *pixels[0].shape), pin_memory=True)
        return batch, torch.stack(pixels, out=x)
    return batch, torch.stack(pixels)


def _deep_at_fp32(pipeline: Any) -> bool:
    """Whether 16-bit inputs run at fp32 while others do not: the pipeline's precision was
    chosen by ``auto`` and is not fp32 (bf16 has 8 bits of mantissa; fp16 11)."""
    precision = getattr(pipeline, "precision", None)
    return isinstance(precision, Precision) and precision.chosen and precision.name != "fp32"


@contextlib.contextmanager
def precision_for(pipeline: Any, batch: list[dict[str, Any]]) -> Iterator[None]:
    """fp32 for a batch of 16-bit images where :func:`_deep_at_fp32`; the pipeline's own
    precision otherwise."""
    if not (_deep_at_fp32(pipeline) and batch[0]["bit_depth"] > 8):
        yield
        return
    own = pipeline.precision
    pipeline.precision = Precision("fp32", own.device)
    try:
        yield
    finally:
        pipeline.precision = own


class _DeviceCopy:
    """One result being copied from the device into pinned host memory; :meth:`wait` gives it
    as (H, W, 3) float32 once the copy is done (in a writer thread)."""

    def __init__(self, host: torch.Tensor, event: torch.cuda.Event):
        self.host, self.event = host, event

    def wait(self) -> np.ndarray:
        self.event.synchronize()
        return self.host.numpy()


def _to_host(y: torch.Tensor) -> list[Any]:
    """(B, 3, H, W) results → per image (H, W, 3): numpy arrays from the CPU; from a GPU,
    :class:`_DeviceCopy` handles whose copies run while the next batch computes."""
    if y.device.type != "cuda":
        return list(y.permute(0, 2, 3, 1).cpu().numpy())
    b, c, h, w = y.shape
    host = torch.empty((b, h, w, c), dtype=torch.float32, pin_memory=True)
    host.copy_(y.permute(0, 2, 3, 1), non_blocking=True)
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(y.device))
    return [_DeviceCopy(host[i], event) for i in range(b)]


def apply_pipeline(pipeline: Any, batch: list[dict[str, Any]], x: torch.Tensor) -> list[Any]:
    """The pipeline's result for each item of ``batch`` (``x``: their stacked pixels), in the
    form :func:`finish_pixels` takes: inpainting gets the masks as its second input, SR makes
    integer pixels within its memory budget, 16-bit batches run at fp32 where ``auto`` chose
    lower (:func:`precision_for`). A pipeline whose ``keeps_gray`` is False (pix2pix: edges or
    grey → colour) has its results written as RGB for grey inputs too."""
    if not getattr(pipeline, "keeps_gray", True):
        for item in batch:
            item["gray"] = False
    with precision_for(pipeline, batch):
        if "mask" in batch[0]:  # inpainting: (B, 1, H, W) holes as the second input
            y = pipeline(x, torch.stack([item["mask"] for item in batch]))
        elif hasattr(pipeline, "pixels"):  # SR: integer pixels, within its memory budget
            return list(pipeline.pixels(x, max(item["bit_depth"] for item in batch)))
        else:
            y = pipeline(x)
    return _to_host(y)


def _run_model(pipeline: Any, batch: list[dict[str, Any]], report: InferReport,
               max_pixels: int | None = DEFAULT_MAX_PIXELS, masks: Any = None
               ) -> list[tuple[dict[str, Any], Any]]:
    """Results (H, W, 3) (or :class:`_DeviceCopy`) for a batch. If the model fails on it (e.g.
    an image too small for its downsampling), each image is retried alone and the ones that
    still fail are recorded."""
    device = getattr(pipeline, "device", torch.device("cpu"))
    batch, x = _inputs(batch, device, report, max_pixels, masks)
    if not batch:
        return []
    try:
        return list(zip(batch, apply_pipeline(pipeline, batch, x), strict=True))
    except (RuntimeError, ValueError) as e:
        if len(batch) > 1:
            return [r for item in batch
                    for r in _run_model(pipeline, [item], report, max_pixels, masks)]
        h, w = batch[0]["pixels"].shape[-2:]
        report.failures.append({**path_record(batch[0]["job"].src),
                                "reason": cannot_process(pipeline, h, w, e)})
        return []


PROBE_SIDES = (2, 4, 8, 16, 32, 64)  # square sizes tried to find the smallest a model takes
_SMALLEST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def smallest_side(pipeline: Any) -> int | None:
    """The smallest side (of :data:`PROBE_SIDES`) of a square image ``pipeline`` processes,
    found by running it on black images once (cached per pipeline); None if none of them.

    Networks with reflect padding or instance norm fail on images a few pixels wide (torch says
    "Expected more than 1 spatial element when training", which misleads: nothing trains).
    """
    try:
        return _SMALLEST[pipeline]
    except (KeyError, TypeError):
        pass
    found = None
    for side in PROBE_SIDES:
        x = torch.zeros(1, 3, side, side)
        try:
            with torch.no_grad():
                if getattr(pipeline, "task", None) == "inpaint" or getattr(pipeline, "needs_mask",
                                                                          False):
                    pipeline(x, torch.zeros(1, 1, side, side))
                else:
                    pipeline(x)
        except (RuntimeError, ValueError, TypeError):
            continue
        found = side
        break
    with contextlib.suppress(TypeError):
        _SMALLEST[pipeline] = found
    return found


def _raised_in_torch(error: BaseException) -> bool:
    """Whether ``error`` came from inside torch (a network meeting a size it cannot take),
    not from a pipeline's own check, whose message already says what is wrong."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and f"{os.sep}torch{os.sep}" in tb.tb_frame.f_code.co_filename


def cannot_process(pipeline: Any, h: int, w: int, error: BaseException) -> str:
    """Why ``pipeline`` failed on an h × w image, in one line: "the model cannot process this
    W×H image: " and either the smallest size it takes (when the image is below it) or the
    error's first line."""
    small = min(h, w) < max(PROBE_SIDES) and _raised_in_torch(error)
    side = smallest_side(pipeline) if small else None
    if side is not None and min(h, w) < side:
        return (f"the model cannot process this {w}×{h} image: it is smaller than the network "
                f"takes (at least {side}×{side} pixels)")
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"the model cannot process this {w}×{h} image: {reason}"


def finish_pixels(item: dict[str, Any], result: np.ndarray | _DeviceCopy
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """A model's result for ``item`` as the pixels and alpha written for it.

    ``result``: (H, W, 3) float in [0, 1], or uint8/uint16 pixels (``pixels`` of an SR
    pipeline; kept as they are) → the input's channels and bit depth, alpha resized to the
    output where the size changed. ``translate.load`` makes its results here too.
    """
    if isinstance(result, _DeviceCopy):
        result = result.wait()
    pixels = result if result.dtype.kind == "u" else from_float(result, item["bit_depth"])
    if item["gray"]:
        pixels = rgb_to_gray(pixels)
    if "hole" in item:  # inpainting: known pixels are the input's own, not a float round trip
        pixels = np.where(item["hole"][..., None], pixels, item["original"])
    alpha = item["alpha"]
    if alpha is not None and alpha.shape[:2] != pixels.shape[:2]:
        alpha = _resize_alpha(alpha, pixels.shape[:2])
    return pixels, alpha


def _write(item: dict[str, Any], result: np.ndarray | _DeviceCopy) -> None:
    pixels, alpha = finish_pixels(item, result)
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
               masks: Any = None, reads: dict[str, Path | None] | None = None) -> InferReport:
    """Apply ``pipeline`` to every image under ``input_path``, mirroring it into ``output_dir``.

    Args:
        fail_fast: stop at the first failed input (the writes already queued still finish).
        masks: inpainting: pairs every input with its mask file and reads masks
            (``translate.infer.inpaint.MaskFolder``); the pipeline is then called as
            ``pipeline(images, masks)``.
        reads: other folders the run reads (the model's: what the message calls it → its
            path); the output folder may not be, lie inside or hold one, nor the input or
            mask folder.

    A full or read-only output folder ends the run: the writes already queued finish, and
    the error names the file that could not be written and why (no space left, read-only).
    SIGINT/SIGTERM stop the run the same way; the report names the signal and its
    ``exit_code`` is 128 + its number. Under torchrun (``runtime.init_from_env`` called
    first) each rank runs its share and the report holds the totals of all ranks; ``fail_fast``
    and signals stop only the ranks that see them.
    """
    input_path, output_dir = Path(input_path), Path(output_dir)
    if batch_size < 1:
        raise TranslateError(f"--batch-size must be at least 1, got {batch_size}")
    world = runtime.WORLD
    if masks is not None:
        reads = {"mask folder": masks.root, **(reads or {})}
    plan = plan_jobs(input_path, output_dir, ext, overwrite, world.rank, world.size, reads)
    if masks is not None:
        plan = masks.pair(plan, input_path, world.rank, world.size)
    jobs = plan.jobs
    report = InferReport(total=plan.total, skipped_existing=plan.existing,
                         failures=list(plan.failures))
    if world.main:
        _prepare_output(output_dir)
    runtime.barrier()
    device = getattr(pipeline, "device", None)
    gpu = device is not None and device.type == "cuda"
    loader = _loader(jobs, max_pixels, masks, device, num_workers)
    started = time.perf_counter()
    progress = ui.progress_bar()
    bar = progress.add_task("infer", total=len(jobs), rate="", info="")
    shown = progress if show_progress and world.main else contextlib.nullcontext()

    def attempted() -> int:
        return report.written + len(report.failures) - len(plan.failures)

    # Encoders release the GIL; a GPU's results come faster than two threads encode them.
    n_writers = min(8, os.cpu_count() or 1) if gpu else 2
    with StopSignals() as stop, ThreadPoolExecutor(max_workers=n_writers) as writers, shown:
        def halt() -> bool:
            return (stop.received is not None or report.write_error is not None
                    or (fail_fast and len(report.failures) > 0))

        queue = _WriteQueue(writers, report, 4 * batch_size,
                            getattr(pipeline, "max_pending_bytes", float("inf")))
        batches = _batches(loader, batch_size, report, halt, split_deep=_deep_at_fp32(pipeline))

        def tile_done(done: int, total: int) -> None:  # progress within a large image
            progress.update(bar, completed=attempted() + done / total * len(batch),
                            info=f"tile {done}/{total}")

        own_callback = getattr(pipeline, "on_tile", None)
        if hasattr(pipeline, "on_tile"):
            pipeline.on_tile = tile_done
        try:
            for batch in batches:
                try:
                    results = _run_model(pipeline, batch, report, max_pixels, masks)
                except Stopped:  # between two tiles of a large image: it is dropped whole
                    break
                for item, result in results:
                    queue.put(item, result)
                queue.drain()
                rate = attempted() / max(time.perf_counter() - started, 1e-9)
                progress.update(bar, completed=attempted(), rate=f"{rate:5.1f} img/s", info="")
        finally:
            if hasattr(pipeline, "on_tile"):
                pipeline.on_tile = own_callback
        batches.close()  # stops the decoding workers now, not when garbage-collected
        queue.drain(everything=True)
        progress.update(bar, completed=attempted(), info="")
    report.seconds = time.perf_counter() - started
    if attempted() < len(jobs):
        report.not_attempted = len(jobs) - attempted()
        report.signal = stop.received
        report.stopped = (signal.Signals(stop.received).name if stop.received
                          else "write error" if report.write_error else "--fail-fast")
    if world.active:
        report = _combine_ranks(report, output_dir, world)
    else:
        _save_failures(output_dir / FAILURES, report)
    if report.write_error is not None:
        done = report.written + report.skipped_existing
        raise TranslateError(f"{report.write_error} ({done} of {report.total} outputs done; the "
                             "same command finishes the rest once it can write)")
    return report


def _prepare_output(output_dir: Path) -> None:
    """Create OUTPUT, refuse one that cannot be written before any work, and remove what a
    killed run left (its temp files, its ranks' failure lists). Rank 0 only; the other ranks
    wait at a barrier, so none of their temp files exist yet."""
    with writing(output_dir, "create the output folder"):
        output_dir.mkdir(parents=True, exist_ok=True)
    check_writable(output_dir)  # read-only: stop before any work
    with writing(output_dir, "write in"):
        remove_stale_temp_files(output_dir)
        for old in output_dir.glob(RANK_FAILURES.format(rank="*")):
            old.unlink()


def _loader(jobs: list[_Job], max_pixels: int | None, masks: Any,
            device: torch.device | None, num_workers: int | None) -> DataLoader:
    """Decoding of ``jobs``, one item at a time, in worker processes where they pay off
    (:func:`default_decode_workers`); plain JPEGs as bytes for the GPU's decoder on CUDA."""
    if num_workers is None:
        num_workers = default_decode_workers(len(jobs), device)
    gpu = device is not None and device.type == "cuda"
    decode = _Decode(jobs, max_pixels, masks, device_jpeg=gpu and device_jpeg_decoding(device))
    return DataLoader(decode, batch_size=None, num_workers=num_workers, collate_fn=_as_is,
                      pin_memory=False,
                      worker_init_fn=_ignore_stop_signals if num_workers else None)


class _WriteQueue:
    """Results being encoded by the writer threads, bounded so that memory stays flat: at most
    ``max_items`` waiting, and (a pipeline with a memory budget, SR:
    ``translate.infer.sr.PENDING_SHARE``) at most ``max_bytes`` of results."""

    def __init__(self, writers: ThreadPoolExecutor, report: InferReport, max_items: int,
                 max_bytes: float):
        self.writers, self.report = writers, report
        self.max_items, self.max_bytes = max_items, max_bytes
        self.pending: list[tuple[Future, _Job, int]] = []  # (write, job, bytes held)

    def put(self, item: dict[str, Any], result: Any) -> None:
        future = self.writers.submit(_write, item, result)
        self.pending.append((future, item["job"], getattr(result, "nbytes", 0)))

    def drain(self, everything: bool = False) -> None:
        """Wait for the oldest writes while over a bound (or for all), recording each."""
        while self.pending and (everything or len(self.pending) > self.max_items
                                or self.pending[0][0].done()
                                or sum(n for _, _, n in self.pending) > self.max_bytes):
            future, job, _ = self.pending.pop(0)
            _finish(future, job, self.report)


def _save_failures(path: Path, report: InferReport) -> None:
    """Write (or clear) the failure list; when it cannot be written, that is the run's error,
    unless the run already has one from the same folder."""
    try:
        with writing(path):
            _write_failures(path, report.failures)
    except TranslateError as e:
        if report.write_error is None:
            report.write_error = str(e)


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
    own = output_dir / RANK_FAILURES.format(rank=world.rank)
    try:  # no rank may leave before the barrier, whatever the disk says
        with writing(own):
            atomic_write_text(own, _jsonl(report.failures))
    except TranslateError as e:
        report.write_error = report.write_error or str(e)
    runtime.barrier()
    if world.main:
        merged = []
        for rank in range(world.size):
            part = output_dir / RANK_FAILURES.format(rank=rank)
            if part.is_file():  # else that rank's write error is reported
                merged += [json.loads(line) for line in part.read_text("utf-8").splitlines()]
                part.unlink()
        everyone = dataclasses.replace(report, failures=sorted(merged, key=lambda f: f["path"]))
        _save_failures(output_dir / FAILURES, everyone)
        report.write_error = everyone.write_error
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
        write_error=next((r.write_error for r in ranks if r.write_error), None),
    )


def _finish(future: Future, job: _Job, report: InferReport) -> None:
    try:
        future.result()
        report.written += 1
    except Exception as e:  # an unwritable output is that file's failure, not the run's …
        cause = os_error_in(e)
        why = (reason(cause) if cause is not None
               else str(e).splitlines()[0] if str(e) else type(e).__name__)
        report.failures.append({**path_record(job.src), "reason": f"cannot write output: {why}"})
        if cause is not None and cause.errno in DESTINATION_ERRORS and not report.write_error:
            # … unless the folder takes no more files: then the run ends (run_folder).
            report.write_error = f"cannot write {display(job.dst)}: {why}"

