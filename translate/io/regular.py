"""Files we read must be plain files: a FIFO, a device or a socket where a model, a config, a
checkpoint or a JSON file is expected would block the read forever (a FIFO waits for a writer)
or never end (``/dev/zero``). :func:`check_regular` asks the file system what the path is —
``stat``, which opens nothing — before any reader opens it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from translate.errors import TranslateError
from translate.io.paths import display

KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
         (stat.S_ISDIR, "a folder"))


def check_regular(path: str | os.PathLike, what: str = "file") -> None:
    """Refuse ``path`` when it exists and is not a regular file (symlinks followed), before
    anything opens it; a missing path passes (the reader names it).

    Raises:
        TranslateError: ``cannot read the WHAT PATH: it is a FIFO (named pipe), not a file``.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in KINDS if test(mode)), "not a regular file")
    raise TranslateError(f"cannot read the {what} {display(path)}: it is {kind}, not a file")


def read_text(path: str | os.PathLike, what: str = "file", **kwargs) -> str:
    """``Path(path).read_text(**kwargs)`` once :func:`check_regular` has passed."""
    check_regular(path, what)
    return Path(path).read_text(**kwargs)
