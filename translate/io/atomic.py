"""Atomic file writes: temp file in the same folder, fsync, ``os.replace``.

A reader (or a crash at any point) sees either the old file or the new one, never a half-written
one. Temp names start with ``.`` and end with ``.tmp`` so folder scans can skip them.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

# The process's umask, read once at import (reading it means setting it, which is not
# thread-safe; the inference writer threads create files concurrently).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def temp_path_for(path: Path) -> Path:
    """A unique hidden temp name beside ``path`` (same folder, so the rename is atomic).

    The temp file gets the permissions a plain ``open(path, "w")`` would give (0o666 less the
    umask), not ``mkstemp``'s owner-only 0o600, so the renamed output is readable as usual.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
    finally:
        os.close(fd)
    return Path(name)


# What ``temp_path_for`` makes: ".NAME." + mkstemp's 8 random characters + ".tmp".
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def remove_stale_temp_files(folder: Path) -> int:
    """Delete the temp files an earlier, killed writer left under ``folder`` (recursively).

    Only names ``temp_path_for`` makes and only regular files are removed; symlinked folders are
    not entered. Returns how many were removed. Call it before writing starts: a temp file of a
    writer still running in the same folder would be removed too.
    """
    removed = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            path = Path(parent, name)
            if _TEMP_NAME.fullmatch(name) and path.is_file() and not path.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
    return removed


def _fsync_dir(folder: Path) -> None:
    # Persist the rename itself; not every platform lets us open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path``; on clean exit fsync it and rename it over ``path``.

    On an exception the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], mode: str = "wb") -> None:
    """Call ``write(file)`` on a temp file and move the result to ``path`` atomically."""
    with atomic_open(path, mode) as f:
        write(f)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
