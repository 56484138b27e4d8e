"""Graceful stops shared by every long command: SIGINT/SIGTERM become a flag, acted on between
units of work.

:class:`StopSignals` turns the signals into a flag for the block it wraps; the caller checks it
between units (training steps, input images). Work that is long *within* one unit — the tiles
of a large super-resolution image, the images of an evaluation, the photos of a data maker,
the shapes an export is checked at — calls :func:`check` between its smaller steps, which
raises :class:`Stopped` once a signal has come, so a stop is acted on within one tile or one
image rather than after the whole item. Outside any block :func:`check` does nothing (the
Python API, ``translate.load``, keeps the default signal behaviour).
"""

from __future__ import annotations

import signal
import threading
from typing import Any


class Stopped(BaseException):
    """A stop signal came during long work; raised by :func:`check`.

    A ``BaseException`` (as ``KeyboardInterrupt``), so that the ``except Exception`` of code
    that records one image's failure and goes on never takes a stop for a failure; clean-up
    in ``finally`` / ``except BaseException`` blocks still runs.

    Attributes:
        signum: the signal's number; ``name`` its name (``SIGTERM``); ``exit_code`` 128 + it,
            as a shell reports a process ended by that signal.
    """

    def __init__(self, signum: int):
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"stopped early ({self.name})")


_ACTIVE: list[StopSignals] = []  # the blocks entered, innermost last


class StopSignals:
    """Within the block, SIGINT/SIGTERM set ``received`` (the signal number) instead of killing
    the process; the caller checks it between units of work (training steps, input images) and
    stops cleanly, and :func:`check` raises :class:`Stopped` in work nested deeper. A second
    Ctrl-C raises KeyboardInterrupt at once. Outside the main thread (where handlers cannot be
    installed) it does nothing.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
            _ACTIVE.append(self)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = signum

    def check(self) -> None:
        """Raise :class:`Stopped` if a signal has come."""
        if self.received is not None:
            raise Stopped(self.received)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self in _ACTIVE:
            _ACTIVE.remove(self)


def check() -> None:
    """Raise :class:`Stopped` if a stop signal has come inside the innermost
    :class:`StopSignals` block; nothing outside one. Cheap: call it between tiles and images."""
    if _ACTIVE:
        _ACTIVE[-1].check()
