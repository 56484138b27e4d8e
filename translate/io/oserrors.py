"""A failed write as one line: which path, and why (no space left, read-only, not a folder …).

Every place that writes a file the user keeps (a run's checkpoint, model files, metrics and
samples; its folder) wraps the write in :func:`writing`, so a full disk or a read-only
destination ends the command with ``error: cannot write PATH: no space left on the device``
instead of a traceback. ``torch.save`` reports a full disk as ``RuntimeError: … unexpected pos
…``; the ``OSError`` it hides is its ``__context__``, which :func:`os_error_in` finds.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from translate.errors import TranslateError
from translate.io.paths import display

REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a file of that name exists, not a folder",
    errno.EISDIR: "it is a folder",
    errno.ENAMETOOLONG: "the name is too long",
    errno.EFBIG: "the file is too large for the file system",
    errno.EIO: "input/output error (the disk or its connection failed)",
}


def os_error_in(error: BaseException) -> OSError | None:
    """The ``OSError`` that ``error`` is or wraps (through ``__cause__`` / ``__context__``)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def reason(error: OSError) -> str:
    """A few words for ``error``'s cause, e.g. ``read-only file system``."""
    if error.errno in REASONS:
        return REASONS[error.errno]
    text = (error.strerror or os.strerror(error.errno)) if error.errno else str(error)
    return (text or type(error).__name__).lower()


@contextlib.contextmanager
def writing(path: str | os.PathLike, action: str = "write", note: str = "") -> Iterator[None]:
    """Turn an ``OSError`` in the block (or one that a library's error wraps) into a
    :class:`TranslateError` naming ``path`` and the cause; other errors pass unchanged.

    Args:
        path: what the block writes (or creates), as the message should name it.
        action: the verb before the path: ``cannot {action} {path}: {reason}``.
        note: added after the reason (``; {note}``), e.g. what was kept.
    """
    try:
        yield
    except TranslateError:
        raise
    except Exception as e:
        cause = os_error_in(e)
        if cause is None:
            raise
        raise TranslateError(f"cannot {action} {display(path)}: {reason(cause)}"
                             + (f"; {note}" if note else "")) from None


# The errors of a write that the destination causes (full, read-only, no permission, failing).
DESTINATION_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                                errno.EPERM, errno.EFBIG, errno.EIO})


@contextlib.contextmanager
def destination_errors(path: str | os.PathLike) -> Iterator[None]:
    """Like :func:`writing` for a block that also reads: only a failure the destination causes
    (:data:`DESTINATION_ERRNOS`) — even one a writer wrapped in its own error, as
    ``write_image``'s ``TranslateError`` — becomes ``cannot write PATH: CAUSE``; any other error
    (an input that cannot be read) passes unchanged."""
    try:
        yield
    except Exception as e:
        cause = os_error_in(e)
        if cause is None or cause.errno not in DESTINATION_ERRNOS:
            raise
        raise TranslateError(f"cannot write {display(path)}: {reason(cause)}") from None


def check_writable(folder: str | os.PathLike) -> None:
    """Make and remove a temp file in ``folder``, so that a read-only or unwritable destination
    stops a command before its work, not after: ``cannot write in FOLDER: read-only file
    system``.

    Raises:
        TranslateError: the folder takes no new file.
    """
    from translate.io.atomic import temp_path_for  # atomic.py's temp names; same layer

    with writing(folder, "write in"):
        temp_path_for(Path(folder) / "probe").unlink()
