"""Graceful stops shared by training and folder inference: SIGINT/SIGTERM become a flag."""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopSignals:
    """Within the block, SIGINT/SIGTERM set ``received`` (the signal number) instead of killing
    the process; the caller checks it between units of work (training steps, input images) and
    stops cleanly. A second Ctrl-C raises KeyboardInterrupt at once. Outside the main thread
    (where handlers cannot be installed) it does nothing.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
