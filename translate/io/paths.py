"""File paths in logs and on the console, whatever bytes their names hold.

On POSIX a file name is bytes, and Python decodes the bytes that are not UTF-8 with
``surrogateescape``: ``b"caf\\xe9.png"`` becomes ``"caf\\udce9.png"``. Such a string opens the
file, but cannot be written as UTF-8 (a JSON file, most terminals), so every place that logs a
path goes through one of two forms:

* :func:`display` — printable text, for the console and for messages: each undecodable byte as
  ``\\xNN`` (``caf\\xe9.png``), control characters as ``\\xNN`` too, so a name cannot break a
  line or move the cursor. Readable, but not always reversible.
* :func:`path_record` — for JSON, lossless: ``{"path": text}`` where ``text`` is the exact name
  when the path is valid UTF-8; otherwise ``{"path": display text, "path_bytes_b64": base64 of
  the raw bytes}``, and the ``*_bytes_b64`` field is the path (``base64 -d`` gives it).
  :func:`path_from_record` reads either back.

:func:`json_safe` is the net under both: any string still holding undecodable bytes (say, a
reason that quotes a path) becomes its display form, so writing JSON never fails on a name.

Whether two paths are the same folder, or one lies inside the other, is asked of what the
folders *are* — device and inode, :func:`overlap` — never of how they are spelt: a bind mount,
an NFS or container volume shows one folder under two paths that no string comparison (nor
``Path.resolve``) can match.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from translate.console import printable

BYTES_SUFFIX = "_bytes_b64"


def display(path: str | bytes | os.PathLike) -> str:
    """``path`` as printable text: undecodable bytes and control characters as ``\\xNN``."""
    return printable(os.fsdecode(path))


def is_exact_text(path: str | bytes | os.PathLike) -> bool:
    """Whether ``os.fsdecode(path)`` is the name itself (valid UTF-8, no surrogate escapes)."""
    try:
        os.fsdecode(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def path_record(path: str | bytes | os.PathLike, key: str = "path") -> dict[str, str]:
    """The JSON fields for ``path`` under ``key`` (see the module docstring): ``{key: text}``,
    plus ``{key + "_bytes_b64": base64}`` when the name is not valid UTF-8."""
    if is_exact_text(path):
        return {key: os.fsdecode(path)}
    raw = os.fsencode(path)
    return {key: display(path), key + BYTES_SUFFIX: base64.b64encode(raw).decode("ascii")}


def path_from_record(record: dict[str, Any], key: str = "path") -> Path:
    """The path that :func:`path_record` wrote under ``key``, byte for byte."""
    raw = record.get(key + BYTES_SUFFIX)
    if raw is not None:
        return Path(os.fsdecode(base64.b64decode(raw)))
    return Path(record[key])


def json_safe(value: Any) -> Any:
    """``value`` with every string that holds undecodable bytes replaced by its display form
    (dict keys too), recursively through dicts, lists and tuples."""
    if isinstance(value, str):
        return value if is_exact_text(value) else printable(value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


# ── Identity: what a folder or file is (device, inode), not how its path is spelt.

FileId = tuple[int, int]


def file_id(path: str | bytes | os.PathLike) -> FileId | None:
    """``(st_dev, st_ino)`` of ``path`` (symlinks followed); None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def same_file(a: str | bytes | os.PathLike, b: str | bytes | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` both exist and are one file or folder (however reached)."""
    ia = file_id(a)
    return ia is not None and ia == file_id(b)


def _above(path: str | bytes | os.PathLike) -> list[FileId]:
    """Identities of ``path`` (when it exists) and of every existing folder above it.

    The path is made real first (symlinks and ``..`` resolved), so the folders walked up are
    the ones a write would land in."""
    real = Path(os.path.realpath(os.fsdecode(path)))
    ids = (file_id(p) for p in (real, *real.parents))
    return [i for i in ids if i is not None]


def _below(folder: str | bytes | os.PathLike) -> set[FileId]:
    """Identities of ``folder`` and of every folder under it (symlinks not followed; a bind
    mount of a folder into itself is walked once)."""
    seen: set[FileId] = set()
    start = file_id(folder)
    if start is None:
        return seen
    seen.add(start)
    stack = [os.fsdecode(folder)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                stack.append(entry.path)
    return seen


def overlap(path: str | bytes | os.PathLike,
            folder: str | bytes | os.PathLike) -> str | None:
    """How ``path`` (which need not exist yet) and the existing ``folder`` overlap, by what
    they are (device and inode), whatever the spelling: symlinks, ``..``, bind mounts, a
    volume mounted twice.

    Returns:
        ``"same"`` (one folder), ``"inside"`` (``path`` lies inside ``folder``), ``"holds"``
        (``folder`` lies inside ``path``), or None. ``path`` is inside ``folder`` when it, or
        the nearest folder above it that exists, is ``folder`` or any folder under it: walking
        down as well as up finds a subfolder mounted elsewhere, which walking up misses (the
        parent of a mount's root is the mount point's).
    """
    target = file_id(folder)
    if target is None:
        return None
    if file_id(path) == target:
        return "same"
    up = _above(path)
    if target in up or not _below(folder).isdisjoint(up):
        return "inside"
    if file_id(path) is not None and not _below(path).isdisjoint(_above(folder)):
        return "holds"
    return None


def is_within(path: str | bytes | os.PathLike, folder: str | bytes | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (:func:`overlap`: by identity)."""
    return overlap(path, folder) in ("same", "inside")


# What marks a folder whose files a model depends on: a model folder (model.json, which may name
# a sibling's weights) or a training run (config.yaml beside state/).
MODEL_MARKS = ("model.json",)
RUN_MARKS = ("config.yaml", "state")


def is_run_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a training run (``config.yaml`` beside ``state/``)."""
    return all((Path(folder) / mark).exists() for mark in RUN_MARKS)


def owning_model_folder(path: str | os.PathLike) -> Path | None:
    """The model or run folder whose file ``path`` would replace, else None.

    A file directly in a folder holding ``model.json`` (its weights, its model.json, its card,
    its config; another model's ``weights_of`` reads them) or anywhere under a training run's
    folder (``config.yaml`` and ``state/``: its checkpoints, logs and samples) belongs to that
    model. Its ``export/`` subfolder is the exception: exports are made to be replaced. Asked of
    the real folders (symlinks resolved), so another spelling of the path finds them too.
    """
    real = Path(os.path.realpath(path))
    parent = real.parent
    if any((parent / mark).exists() for mark in MODEL_MARKS):
        return parent
    for folder in (parent, *parent.parents):
        if folder.name == "export":
            return None
        if is_run_folder(folder):
            return folder
    return None
