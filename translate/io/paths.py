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
