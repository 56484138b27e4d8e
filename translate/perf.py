"""Process-wide CPU tuning that changes speed, never results.

glibc's ``malloc`` hands every block above its mmap threshold (128 KiB, raised adaptively up to
32 MiB) to the kernel with ``mmap`` and gives it back on ``free``; blocks below it come from the
heap, whose top is trimmed back to the kernel when more than the trim threshold is free. A
training step allocates and frees the same multi-megabyte activations every iteration, so both
paths make the kernel zero and map fresh pages each step: about 69,000 page faults per step for a
ResNet-9 + PatchGAN step at 256² on this project's 2-core VM, where a fault costs several µs.
Raising both thresholds keeps freed memory in the process for reuse, which is what
jemalloc/tcmalloc (as PyTorch's CPU performance guide recommends) achieve by preloading — here with
no extra package. ``scripts/bench_train.py`` measures it (the ``malloc`` option).

The arithmetic is untouched: the same kernels run on the same values, only the pages they write
to are recycled instead of freshly mapped. The cost is that the process keeps its peak heap until
it exits (measured: 1,390 vs 1,379 MiB peak RSS for that step).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt(3) parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc refuses a larger mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX).
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 2**31 - 1
ENV_OPT_OUT = "TRANSLATE_MALLOC"  # set to "default" to leave glibc's allocator as it is

_tuned = False


def tune_allocator() -> bool:
    """Keep freed memory in the process so that large tensors stop costing page faults.

    Call once, early. A no-op (returning False) where it cannot apply: not Linux with glibc, or
    the environment variable ``TRANSLATE_MALLOC=default``.

    Returns:
        True if glibc accepted both settings (now or on an earlier call).
    """
    global _tuned
    if _tuned:
        return True
    if not sys.platform.startswith("linux") or os.environ.get(ENV_OPT_OUT) == "default":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _tuned
