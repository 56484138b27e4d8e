"""The one place that talks to the terminal: a rich console on stderr and a progress bar.

Modules below the CLI report through here, so output stays consistent and tests can silence it.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

console = Console(stderr=True, highlight=False)


def progress_bar(transient: bool = False) -> Progress:
    """A bar with count, rate, elapsed and ETA, plus a free text field ``info`` (e.g. losses)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=transient,
    )


# C0 controls and DEL, written as \xNN in names: a file name must not end a line or move the
# cursor. (Printable escapes for the undecodable bytes come from ``backslashreplace``.)
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}


def _encodable(text: str) -> str:
    """``text`` with the bytes a file name could not decode (``surrogateescape``, e.g. \\udce9 for
    the byte 0xE9) written as ``\\xNN`` (``\\xe9``), so any UTF-8 stream can take it."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no byte decodes to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    """A file name (or any text from outside) as one printable line: undecodable bytes and
    control characters as ``\\xNN``. ``translate.io.paths.display`` applies it to paths."""
    if text.isprintable():
        return text
    return _encodable(text).translate(_CONTROLS)


# info, warn and error print one line of plain text each, whatever file names the message
# quotes: no rich markup is read from it ("[red]x.png" is a name), and undecodable bytes and
# control characters (a newline in a name) are written as \xNN (``printable``).


def info(message: str) -> None:
    console.print(Text(printable(message)), soft_wrap=True)


def warn(message: str) -> None:
    console.print(Text.assemble(("warning:", "yellow"), " ", printable(message)), soft_wrap=True)


def error(message: str) -> None:
    """The CLI's ``error: …`` line."""
    console.print(Text.assemble(("error:", "red"), " ", printable(message)), soft_wrap=True)
