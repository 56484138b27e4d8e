"""Atomic file writes: temp file in the same folder, fsync, ``os.replace``.

A reader (or a crash at any point) sees either the old file or the new one, never a half-written
one.

Every temp file or folder this program makes is named ``.translate-tmp-HOST-PID-XXXXXXXX.tmp``:
HOST is 8 hex digits of a hash of the host name, PID the creating process, XXXXXXXX random. The
name is short and of fixed length whatever the final name (a 255-byte output name still has a
temp name), starts with ``.`` so folder scans skip it, and is one no user would choose, so the
clean-up after a killed run (:func:`remove_stale_temp_files`, :func:`remove_stale_temp_dirs`)
deletes only what this program made, and only once the process that made it is gone: a writer
still running (another ``translate`` in the same folder) keeps its temp files. Temps made on
another host (a shared disk) are left alone, as is one whose PID a new process has taken.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

# The process's umask, read once at import (reading it means setting it, which is not
# thread-safe; the inference writer threads create files concurrently).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


TEMP_PREFIX = ".translate-tmp-"
TEMP_SUFFIX = ".tmp"
_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "surrogateescape")).hexdigest()[:8]
# What ``temp_prefix`` + mkstemp/mkdtemp's 8 random characters + TEMP_SUFFIX make.
_TEMP_NAME = re.compile(
    re.escape(TEMP_PREFIX) + r"(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})-[a-z0-9_]{8}"
    + re.escape(TEMP_SUFFIX)
)


def temp_prefix(pid: int | None = None) -> str:
    """The start of the temp names process ``pid`` (default: this one) makes on this host; 8
    random characters and ``TEMP_SUFFIX`` follow."""
    return f"{TEMP_PREFIX}{_HOST}-{os.getpid() if pid is None else pid}-"


def temp_path_for(path: Path) -> Path:
    """A unique hidden temp file in ``path``'s folder (so the rename onto ``path`` is atomic).

    Its name does not depend on ``path``'s (see the module docstring). The temp file gets the
    permissions a plain ``open(path, "w")`` would give (0o666 less the umask), not ``mkstemp``'s
    owner-only 0o600, so the renamed output is readable as usual.
    """
    fd, name = tempfile.mkstemp(prefix=temp_prefix(), suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
    finally:
        os.close(fd)
    return Path(name)


def make_temp_dir(parent: Path) -> Path:
    """A unique hidden temp folder in ``parent``, named like the temp files (a staging folder
    to be renamed into place, or removed). Its mode is what ``mkdir`` would give under the
    process's umask (0755 under 022), not ``mkdtemp``'s 0700: the folder becomes the user's
    dataset or model folder once renamed."""
    path = Path(tempfile.mkdtemp(prefix=temp_prefix(), suffix=TEMP_SUFFIX, dir=parent))
    os.chmod(path, 0o777 & ~current_umask())
    return path


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``os.umask``
    sets it to read it, which another thread's file created meanwhile would see)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _process_gone(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":  # on Windows os.kill(pid, 0) would end it
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # EPERM: alive, another user's; or unknowable
        return False
    return False


def is_stale_temp(name: str) -> bool:
    """Whether ``name`` is a temp name this program makes, made on this host by a process that
    is gone."""
    match = _TEMP_NAME.fullmatch(name)
    return bool(match and match["host"] == _HOST and _process_gone(int(match["pid"])))


def remove_stale_temp_files(folder: Path) -> int:
    """Delete the temp files a killed writer left under ``folder`` (recursively).

    Only regular files named as ``temp_path_for`` names them, whose process is gone
    (:func:`is_stale_temp`), are removed; symlinked folders are not entered. Returns how many
    were removed.
    """
    removed = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            path = Path(parent, name)
            if is_stale_temp(name) and path.is_file() and not path.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
    return removed


def remove_stale_temp_dirs(parent: Path) -> int:
    """Delete the temp folders (``make_temp_dir``) a killed process left in ``parent`` (not
    recursively: only ``parent``'s own entries). Returns how many were removed."""
    removed = 0
    with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(parent) as it:
        for entry in it:
            if is_stale_temp(entry.name) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
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


def atomic_write_all(files: dict[Path, bytes]) -> None:
    """Write several files all or nothing (a page and the images it shows).

    Every file is first written whole to a temp file beside it; only when all are written are
    they renamed into place, in the order given. On any failure the temp files are removed, and
    so are the files (and folders) this call created; a file that existed before holds its old
    content or its new one, whole.
    """
    created_dirs: list[Path] = []
    temps: dict[Path, Path] = {}
    placed: list[Path] = []  # files that did not exist before and were renamed into place
    try:
        for path in files:
            missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
            path.parent.mkdir(parents=True, exist_ok=True)
            created_dirs += missing
        for path, data in files.items():
            if path.is_dir():
                raise IsADirectoryError(f"{path} is a folder")
            temps[path] = tmp = temp_path_for(path)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for path, tmp in temps.items():
            existed = path.exists()
            os.replace(tmp, path)
            if not existed:
                placed.append(path)
    except BaseException:
        for path in [*temps.values(), *placed]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        for folder in sorted(created_dirs, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty
        raise
    for folder in {path.parent for path in files}:
        _fsync_dir(folder)
