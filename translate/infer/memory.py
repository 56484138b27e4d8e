"""Memory budgets for inference: sizes like ``4G``, the machine's default budget, and the peak
activation memory of a network's forward pass, measured without running it.

:func:`forward_peak_bytes` runs the network on the ``meta`` device (shapes only: no data, no
arithmetic, milliseconds for any size) under a dispatch mode that adds up the bytes of every
storage an operator creates and subtracts them when the storage is freed. Its peak is the
activation memory of the real forward pass as PyTorch's own tensors hold it; the CPU kernels'
scratch space (oneDNN's padded copies, reorders) comes on top: measured peak RSS was 1.13× the
estimate for the ×4 width-8 SR net and 1.19× for the bundled ×4 width-64 one
(``scripts/bench_sr_memory.py``), so callers multiply by :data:`SAFETY`.
"""

from __future__ import annotations

import copy
import os
import re
import weakref
from pathlib import Path

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from translate.errors import TranslateError

# Measured peak RSS / meta-device estimate was at most 1.19 (see the module docstring).
SAFETY = 1.3
# Share of the available memory one ``translate infer`` takes when --max-memory is not given.
DEFAULT_FRACTION = 0.5
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_bytes(text: str | int, option: str = "--max-memory") -> int:
    """``4G``, ``500M``, ``1.5GiB``, ``64MB`` or a plain number of bytes → bytes.

    K, M, G, T are powers of 1024 (as ``free -h`` and ``ulimit`` count); ``B``/``iB`` may follow.

    Raises:
        TranslateError: not a size, or not above zero; one line naming ``option``.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _SIZE.match(str(text))
        if match is None:
            raise TranslateError(f"{option}: expected a size such as 4G, 500M or 1073741824, "
                                 f"got {str(text)!r}")
        value = int(float(match[1]) * _UNITS[match[2].upper()])
    if value <= 0:
        raise TranslateError(f"{option} must be more than 0 bytes, got {text!r}")
    return value


def format_bytes(n: float) -> str:
    """Bytes as a short human size: ``1.5 GiB``, ``300 MiB``."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if n < 10 * size else f"{n / size:.0f} {unit}"
    return f"{int(n)} B"


def available_memory() -> int | None:
    """Bytes this process may still take: ``MemAvailable`` from /proc/meminfo, capped by a
    cgroup v2 limit (``memory.max`` − ``memory.current``, containers); None when unknown."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            return None
    return min(found)


def default_budget() -> int:
    """:data:`DEFAULT_FRACTION` of :func:`available_memory` (4 GiB when that is unknown)."""
    available = available_memory()
    return int(DEFAULT_FRACTION * available) if available else 4 * 2**30


class _PeakBytes(TorchDispatchMode):
    """Live and peak bytes of the storages that operators create while the mode is active
    (tensors that existed before, e.g. parameters and inputs, are not counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = self.largest = 0
        self._alive: dict[int, weakref.ref] = {}

    def _free(self, key: int, nbytes: int) -> None:
        if self._alive.pop(key, None) is not None:
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()  # one Python object per storage while it lives
                key = id(storage)
                if key not in self._alive:
                    n = storage.nbytes()
                    self._alive[key] = weakref.ref(storage, lambda _, k=key, n=n: self._free(k, n))
                    self.live += n
                    self.peak = max(self.peak, self.live)
                    self.largest = max(self.largest, n)
        return out


def forward_peak_bytes(module: nn.Module, shape: tuple[int, ...]) -> int:
    """Peak bytes of the tensors ``module(x)`` creates for an input ``x`` of ``shape`` (float32),
    output included, measured on a ``meta``-device copy (the module itself is not touched)."""
    return forward_bytes(module, shape)[0]


@torch.no_grad()
def forward_bytes(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, int]:
    """(peak bytes, largest single tensor's bytes) of what ``module(x)`` creates for an input
    ``x`` of ``shape`` (float32), as :func:`forward_peak_bytes` measures them."""
    meta = copy.deepcopy(module).to("meta")
    x = torch.empty(shape, device="meta")
    with _PeakBytes() as counter:
        y = meta(x)
    del y
    return counter.peak, counter.largest
