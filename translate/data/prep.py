"""``translate data prep``: two folders of user photos → a clean unpaired dataset.

    out/trainA/  out/testA/  out/trainB/  out/testB/  out/prep.json

Choices, so the output is predictable:

* **Bad files never stop the run.** Anything ``read_image`` rejects (corrupt, truncated,
  zero-byte, not an image, over ``max_pixels``) is listed in ``prep.json`` with its reason and
  skipped. Only a domain left with no usable image at all is an error.
* **8-bit RGB out.** Grayscale is repeated to three channels; palette, CMYK and other modes come
  out of ``read_image`` as RGB already; 16-bit is scaled by round(v / 257), so 65535 → 255 and
  nothing saturates; EXIF orientation is applied by ``read_image``.
* **Transparency is composited onto white**, in linear proportion to alpha, as image viewers
  show a transparent PNG on a white page. Models get no alpha channel.
* **Exact duplicates** (same decoded pixels after the conversion above, before resizing) within
  a domain are dropped: the first in sorted path order is kept, the others recorded as its
  duplicates.
* **The short side is resized to ``size``**, aspect kept, with Pillow's Lanczos filter (which
  anti-aliases when shrinking). Smaller images are **upscaled** too, so every sample can be
  cropped at training size; the count of upscaled images is reported.
* **Split** per domain: the unique files in sorted order are shuffled by a generator seeded
  with ``(seed, domain)``; the first round(test_fraction · n) go to test, at least one when
  n ≥ 2 and test_fraction > 0, and never all of them.
* **Names** keep the path relative to the input folder, subfolders joined by ``__``, as
  ``.png`` (lossless); clashes (``a.jpg`` and ``a.png``) get the old extension added. A name
  longer than a file name may be (255 bytes) is cut and given a hash of the full name.
  ``prep.json`` records names that are not UTF-8 with their raw bytes too
  (``translate.io.paths.path_record``: ``file`` + ``file_bytes_b64``, ``source`` + …).
* **Bounded output.** ``size``² pixels (the least a written image has) must be within
  ``max_pixels`` — the budget a read image gets holds for a written one — checked before any
  work; an image whose resized output would pass ``max_pixels`` (a long panorama) is skipped.
* **Nothing half-written.** Everything is built in a hidden folder beside ``out``
  (``translate.io.atomic.make_temp_dir``) and moved into place only when complete; on any
  failure it is removed. What a killed prep left (the hidden folder; split folders it was
  moving into a non-empty ``out``, listed in a journal) is removed when prep next starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rich.table import Table
from rich.text import Text

from translate.console import console, printable, progress_bar
from translate.errors import TranslateError
from translate.io.atomic import (
    atomic_write_text,
    is_stale_temp,
    make_temp_dir,
    remove_stale_temp_dirs,
    temp_path_for,
)
from translate.io.images import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    read_image,
    scan_images,
    to_rgb8,
    write_image,
)
from translate.io.oserrors import destination_errors, writing
from translate.io.paths import display, is_within, json_safe, overlap, path_record
from translate.signals import check as check_stop

SPLITS = ("trainA", "trainB", "testA", "testB")
REPORT_NAME = "prep.json"
_SUMMARY_SKIPPED_LINES = 20  # skipped files listed on the terminal; prep.json has them all


# --------------------------------------------------------------------------------------------
# Pixels


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(H, W) after ``resize_short_side`` to ``size``."""
    scale = size / min(height, width)
    if height <= width:
        return size, max(size, round(width * scale))
    return max(size, round(height * scale)), size


def resize_short_side(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, 3) ``uint8`` so min(H, W) == ``size``, aspect kept (Lanczos, up or down)."""
    height, width = rgb.shape[:2]
    new_h, new_w = resized_shape(height, width, size)
    if (new_h, new_w) == (height, width):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.LANCZOS))


def pixel_hash(rgb: np.ndarray) -> str:
    """SHA-256 of shape and pixels: equal for, and only for, identical decoded images."""
    digest = hashlib.sha256(f"{rgb.shape}|{rgb.dtype}|".encode())
    digest.update(np.ascontiguousarray(rgb).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Report


@dataclass
class DomainReport:
    """What prep did with one input folder. Paths are relative to ``folder``, POSIX style."""

    name: str  # "A" or "B"
    folder: str
    found: int = 0
    train: int = 0
    test: int = 0
    upscaled: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"file", "reason"}
    duplicates: list[dict[str, str]] = field(default_factory=list)  # {"file", "duplicate_of"}
    warnings: list[dict[str, str]] = field(default_factory=list)  # {"file", "warning"}
    files: list[dict[str, str]] = field(default_factory=list)  # {"source", "output"}

    def as_dict(self) -> dict[str, Any]:
        return {
            **path_record(self.folder, "folder"),
            "found": self.found,
            "written": {"train": self.train, "test": self.test},
            "skipped_count": len(self.skipped),
            "duplicate_count": len(self.duplicates),
            "upscaled": self.upscaled,
            "skipped": self.skipped,
            "duplicates": self.duplicates,
            "warnings": self.warnings,
            "files": self.files,
        }


@dataclass
class PrepReport:
    """The result of ``prep_dataset`` (or ``build_demo``); ``as_dict()`` is ``prep.json``."""

    out: Path
    size: int
    test_fraction: float
    seed: int
    domains: dict[str, DomainReport]
    source: str | None = None  # free text, e.g. where the demo photos come from
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            **path_record(self.out, "out"),
            "size": self.size,
            "test_fraction": self.test_fraction,
            "seed": self.seed,
        }
        if self.source is not None:
            data["source"] = self.source
        data["domains"] = {name: d.as_dict() for name, d in self.domains.items()}
        data.update(self.extra)
        return data


# --------------------------------------------------------------------------------------------
# Output folder handling (shared with the demo builder)


def check_out_free(out: Path) -> None:
    """Refuse an ``out`` that already holds a dataset (or is a file).

    What a killed prep of ``out`` left is removed first (``remove_killed_prep_leftovers``), so
    a rerun after a kill is not refused.
    """
    remove_killed_prep_leftovers(out)
    if out.exists() and not out.is_dir():
        raise TranslateError(f"{out} exists and is not a folder; choose another --out")
    for name in (*SPLITS, REPORT_NAME):
        if (out / name).exists():
            raise TranslateError(f"{out / name} already exists; choose another --out")


def _make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; returns the folders created, deepest last."""
    missing = []
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        missing.append(parent)
    folder.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def remove_killed_prep_leftovers(out: Path) -> None:
    """Remove what a killed prep (or demo build) left: hidden staging folders beside ``out``
    whose process is gone, and in ``out`` a stale move journal with the split folders it lists,
    unless ``prep.json`` arrived (moved last: the dataset is complete) — they are then this
    program's, half moved in."""
    out = out.resolve()
    remove_stale_temp_dirs(out.parent)
    if not out.is_dir():
        return
    for journal in [p for p in out.iterdir() if is_stale_temp(p.name) and p.is_file()]:
        try:
            moved = json.loads(journal.read_text("utf-8"))
        except (OSError, ValueError):  # killed while writing it: nothing was moved yet
            moved = []
        if not (out / REPORT_NAME).exists():
            for name in moved:
                if name in SPLITS and (out / name).is_dir() and not (out / name).is_symlink():
                    shutil.rmtree(out / name)
        with contextlib.suppress(FileNotFoundError):
            journal.unlink()


@contextlib.contextmanager
def staging_folder(out: Path):
    """A hidden temp folder beside ``out``; moved to ``out`` on success, removed on failure.

    If ``out`` is missing or empty the temp folder is renamed to it in one step; if ``out``
    holds other things (say, the raw photos), the split folders are moved in one by one and
    ``prep.json`` last, so its presence marks a complete dataset; a journal in ``out`` (a
    hidden temp file) lists them meanwhile, so a kill halfway can be undone on the next start.
    """
    shown = out
    out = out.resolve()  # so that "." or "datasets/.." still has a real parent to stage in
    missing = [p for p in out.parents if not p.exists()][::-1]
    try:
        with writing(shown):  # read-only, full, a file where a folder belongs: one line
            created = _make_parents(out.parent)
            tmp = make_temp_dir(out.parent)
    except TranslateError:
        for folder in reversed(missing):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty
        raise
    with destination_errors(shown):
        yield from _staged(out, tmp, created)


def _staged(out: Path, tmp: Path, created: list[Path]) -> Iterator[Path]:
    """:func:`staging_folder`'s work once its temp folder is made."""
    moved: list[str] = []
    journal: Path | None = None
    try:
        yield tmp
        check_out_free(out)  # someone may have written there meanwhile
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        if not out.exists():
            os.replace(tmp, out)
        else:
            names = sorted(os.listdir(tmp), key=lambda n: n == REPORT_NAME)
            journal = temp_path_for(out / REPORT_NAME)
            with open(journal, "w", encoding="utf-8") as f:
                f.write(json.dumps(names))
                f.flush()
                os.fsync(f.fileno())
            for name in names:
                os.replace(tmp / name, out / name)
                moved.append(name)
            tmp.rmdir()
            journal.unlink()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if REPORT_NAME not in moved:  # a dataset without prep.json is not one: take it back
            for name in moved:
                shutil.rmtree(out / name, ignore_errors=True)
        if journal is not None:
            with contextlib.suppress(FileNotFoundError):
                journal.unlink()
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty
        raise


def split_counts(n: int, test_fraction: float) -> int:
    """How many of ``n`` go to test: round(f·n), ≥ 1 when n ≥ 2 and f > 0, ≤ n − 1."""
    if n < 2 or test_fraction <= 0:
        return 0
    return min(max(1, round(test_fraction * n)), n - 1)


def split_order(n: int, seed: int, domain: str) -> list[int]:
    """A seeded permutation of range(n) for ``domain`` ("A" or "B")."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, ord(domain)]))
    return rng.permutation(n).tolist()


def write_report(folder: Path, report: PrepReport) -> None:
    data = json_safe(report.as_dict())  # a path not UTF-8 has its bytes in *_bytes_b64
    atomic_write_text(folder / REPORT_NAME, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------
# prep


NAME_MAX = 255  # bytes in one file name (ext4, XFS, btrfs, APFS, NTFS in UTF-16 units)


def _fit_name(stem: str, suffix: str = ".png") -> str:
    """``stem``, cut (at a character) and given 8 hex digits of its hash when ``stem + suffix``
    would be longer than ``NAME_MAX`` bytes; a flattened deep path easily is."""
    if len(os.fsencode(stem + suffix)) <= NAME_MAX:
        return stem
    tag = "__" + hashlib.sha256(os.fsencode(stem)).hexdigest()[:8]
    while len(os.fsencode(stem + tag + suffix)) > NAME_MAX:
        stem = stem[:-1]
    return stem + tag


def output_names(files: list[Path], root: Path) -> list[str]:
    """Flattened ``.png`` names, unique case-insensitively (for case-insensitive disks), each
    at most ``NAME_MAX`` bytes."""
    names: list[str] = []
    used: set[str] = set()
    for path in files:
        rel = path.relative_to(root)
        stem = "__".join((*rel.parts[:-1], rel.stem))
        extension = rel.suffix.lstrip(".").lower()
        candidates = [_fit_name(stem), _fit_name(f"{stem}__{extension}")]
        name = next((c for c in candidates if c.lower() not in used), None)
        counter = 2
        while name is None:
            numbered = _fit_name(f"{stem}__{counter}")
            if numbered.lower() not in used:
                name = numbered
            counter += 1
        used.add(name.lower())
        names.append(name + ".png")
    return names


def _prep_domain(
    name: str,
    root: Path,
    staging: Path,
    size: int,
    test_fraction: float,
    seed: int,
    max_pixels: int | None,
    show_progress: bool,
) -> DomainReport:
    report = DomainReport(name=name, folder=str(root))
    files = scan_images(root)
    report.found = len(files)
    names = output_names(files, root)
    train_dir, test_dir = staging / f"train{name}", staging / f"test{name}"
    train_dir.mkdir()
    test_dir.mkdir()

    seen: dict[str, str] = {}  # pixel hash -> first file with it
    kept: list[tuple[str, str]] = []  # (relative source, output name)
    bar = progress_bar(transient=True)
    task = bar.add_task(f"prep {name}", total=len(files), rate="", info="")
    with bar if show_progress else contextlib.nullcontext():
        for path, out_name in zip(files, names, strict=True):
            check_stop()  # a stop signal, between images: the staging folder is removed
            bar.advance(task)
            rel = path.relative_to(root).as_posix()
            try:
                image = read_image(path, max_pixels=max_pixels)
            except ImageReadError as e:
                report.skipped.append({**path_record(rel, "file"), "reason": e.reason})
                continue
            if image.warning:
                report.warnings.append({**path_record(rel, "file"), "warning": image.warning})
            new_h, new_w = resized_shape(*image.array.shape[:2], size)
            if max_pixels is not None and new_h * new_w > max_pixels:
                report.skipped.append({**path_record(rel, "file"), "reason": (
                    f"its output at --size {size} would have {new_w}×{new_h} = {new_h * new_w} "
                    f"pixels, over the limit of {max_pixels}")})
                continue
            rgb = to_rgb8(image)
            digest = pixel_hash(rgb)
            if digest in seen:
                report.duplicates.append({**path_record(rel, "file"),
                                          **path_record(seen[digest], "duplicate_of")})
                continue
            seen[digest] = rel
            if min(rgb.shape[:2]) < size:
                report.upscaled += 1
            write_image(train_dir / out_name, resize_short_side(rgb, size))
            kept.append((rel, out_name))

    if not kept:
        raise TranslateError(
            f"domain {name} has no usable images in {root} "
            f"({len(files)} image files found, {len(report.skipped)} unreadable)"
        )
    n_test = split_counts(len(kept), test_fraction)
    order = split_order(len(kept), seed, name)
    in_test = set(order[:n_test])
    for i, (rel, out_name) in enumerate(kept):
        split = f"test{name}" if i in in_test else f"train{name}"
        if i in in_test:
            os.replace(train_dir / out_name, test_dir / out_name)
        report.files.append({**path_record(rel, "source"),
                             **path_record(f"{split}/{out_name}", "output")})
    report.test = n_test
    report.train = len(kept) - n_test
    return report


def check_prep_args(size: int, test_fraction: float, max_pixels: int | None) -> None:
    """Refuse a ``size`` / ``test_fraction`` a dataset maker cannot use, before any work. The
    budget a read image gets holds for a written one: ``size``² must fit ``max_pixels``."""
    if size < 1:
        raise TranslateError(f"--size must be at least 1, got {size}")
    if not 0 <= test_fraction < 1:
        raise TranslateError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    if max_pixels is not None and size * size > max_pixels:
        raise TranslateError(
            f"--size {size}: every written image would have at least {size}×{size} = "
            f"{size * size} pixels, over --max-pixels {max_pixels}; the largest --size it "
            f"allows is {math.isqrt(max_pixels)}")


def prep_dataset(
    dir_a: str | os.PathLike,
    dir_b: str | os.PathLike,
    out: str | os.PathLike,
    size: int = 256,
    test_fraction: float = 0.1,
    seed: int = 0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    show_progress: bool = True,
) -> PrepReport:
    """Build ``out/{trainA,trainB,testA,testB}`` and ``out/prep.json`` from two photo folders.

    See the module docstring for every conversion and naming choice.

    Args:
        dir_a: folder of domain A images, scanned recursively.
        dir_b: folder of domain B images.
        out: the dataset folder to create. It may exist if it holds none of the split folders
            or ``prep.json``.
        size: the short side of every written image, in pixels.
        test_fraction: share of each domain's unique images put in the test split, in [0, 1).
        seed: seed of the train/test split.
        max_pixels: images larger than this are skipped (checked before decoding); None for
            no limit.
        show_progress: show a (transient) progress bar on the console.

    Returns:
        The report that was also written to ``out/prep.json``.

    Raises:
        TranslateError: a missing input folder, ``out`` already holding a dataset or lying
            inside an input folder, bad ``size``/``test_fraction``, or a domain with no usable
            image. Nothing is left in or beside ``out`` then.
    """
    dirs = {"A": Path(dir_a), "B": Path(dir_b)}
    out = Path(out)
    check_prep_args(size, test_fraction, max_pixels)
    for name, folder in dirs.items():
        if not folder.exists():
            raise TranslateError(f"domain {name} folder {folder} does not exist")
        if not folder.is_dir():
            raise TranslateError(f"domain {name} path {folder} is not a folder")
    # By what the folders are (device, inode), not their spelling: a bind mount or a volume
    # mounted twice shows one folder under two paths.
    how = overlap(dirs["A"], dirs["B"])  # one walk of both trees answers all three cases
    if how == "same":
        raise TranslateError(f"--a and --b are the same folder ({dirs['A']}); give each domain "
                             "its own folder")
    if how is not None:
        (inner, inner_dir), (outer, outer_dir) = (
            (("a", dirs["A"]), ("b", dirs["B"])) if how == "inside"
            else (("b", dirs["B"]), ("a", dirs["A"])))
        raise TranslateError(f"--{inner} {inner_dir} is inside --{outer} "
                             f"{outer_dir}; the domains' folders must not overlap")
    for name, folder in dirs.items():
        if is_within(out, folder):
            raise TranslateError(
                f"--out {out} is inside the domain {name} folder {folder}; choose another --out"
            )
    check_out_free(out)

    with staging_folder(out) as staging:
        domains = {
            name: _prep_domain(
                name, folder, staging, size, test_fraction, seed, max_pixels, show_progress
            )
            for name, folder in dirs.items()
        }
        report = PrepReport(
            out=out, size=size, test_fraction=test_fraction, seed=seed, domains=domains
        )
        write_report(staging, report)
    return report


# --------------------------------------------------------------------------------------------
# Summary


def print_prep_summary(report: PrepReport) -> None:
    """A table of counts per domain, then the skipped files (first few; all in prep.json)."""
    table = Table(title=Text(f"dataset {display(report.out)} (short side {report.size}px)"))
    for column in ("domain", "folder", "found", "skipped", "duplicates", "train", "test"):
        table.add_column(column, justify="left" if column in ("domain", "folder") else "right")
    for name, d in report.domains.items():
        table.add_row(
            name, Text(display(d.folder)), str(d.found), str(len(d.skipped)),
            str(len(d.duplicates)),
            str(d.train), str(d.test),
        )
    console.print(table)

    skipped = [(name, s) for name, d in report.domains.items() for s in d.skipped]
    if skipped:
        console.print(f"[yellow]skipped {len(skipped)} file(s):[/]", soft_wrap=True)
        for name, s in skipped[:_SUMMARY_SKIPPED_LINES]:
            console.print(f"  {name}: {display(s['file'])}: {printable(s['reason'])}",
                          soft_wrap=True, markup=False)
        if len(skipped) > _SUMMARY_SKIPPED_LINES:
            rest = len(skipped) - _SUMMARY_SKIPPED_LINES
            console.print(f"  … and {rest} more (see {REPORT_NAME})", soft_wrap=True)
    upscaled = sum(d.upscaled for d in report.domains.values())
    if upscaled:
        console.print(
            f"{upscaled} image(s) were smaller than {report.size}px on the short side and were "
            "upscaled", soft_wrap=True,
        )
    warned = sum(len(d.warnings) for d in report.domains.values())
    if warned:
        console.print(f"{warned} file(s) had warnings (see {REPORT_NAME})", soft_wrap=True)
