"""Process-wide CPU set-up, applied by every ``translate`` command before any tensor math:
the allocator tuning (speed only) and oneMKL's reproducible mode (which fixes the results).

**Allocator.** glibc's ``malloc`` hands every block above its mmap threshold (128 KiB, raised
adaptively up to 32 MiB) to the kernel with ``mmap`` and gives it back on ``free``; blocks below it
come from the heap, whose top is trimmed back to the kernel when more than the trim threshold is
free. A training step allocates and frees the same multi-megabyte activations every iteration, so
both paths make the kernel zero and map fresh pages each step: about 69,000 page faults per step
for a ResNet-9 + PatchGAN step at 256² on this project's 2-core VM, where a fault costs several µs.
Raising both thresholds keeps freed memory in the process for reuse, which is what
jemalloc/tcmalloc (as PyTorch's CPU performance guide recommends) achieve by preloading — here with
no extra package. ``scripts/bench_train.py`` measures it (the ``malloc`` option).

The arithmetic is untouched: the same kernels run on the same values, only the pages they write
to are recycled instead of freshly mapped. The cost is that the process keeps its peak heap until
it exits (measured: 1,390 vs 1,379 MiB peak RSS for that step).

**oneMKL.** On CPU every ``nn.Linear`` and matrix product is oneMKL's ``sgemm``, which by default
runs with Conditional Numerical Reproducibility off (``MKL_VERBOSE=1`` prints ``CNR:OFF Dyn:1``).
Intel documents results reproducible from run to run for its CNR modes: with a fixed number of
threads and ``MKL_DYNAMIC`` off, or, in strict mode, whatever the number of threads. How a product
is split over threads decides its rounding: on this project's AVX-512 Xeon the MLP GAN's 784- and
1024-deep products round differently on one thread than on two, and two 9-step GAN runs that differ
only in the thread count end 2.5e-4 apart (the size of the straight-vs-resumed partings that the
resume tests once retried). :func:`reproducible_matmul` sets ``MKL_CBWR=AUTO,STRICT``: the CPU's
own code branch, and for ``?gemm`` on AVX2/AVX-512 the same bits whatever the number of threads
oneMKL runs (checked by ``tests/test_perf.py``), so its dynamic thread choice (``MKL_DYNAMIC``) no
longer matters. ATen's own kernels split work by the process's fixed thread count; of the GAN
step's, only BatchNorm rounds differently with another count (1 vs 2 threads: 1.3e-5 apart after 9
steps). The cost is within this VM's noise for the GAN step on one thread (a 1024³ ``sgemm``: ~60
vs ~50 ms), and results differ from CNR-off ones in the last bits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt(3) parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Tried in order, the first that glibc accepts wins. Blocks below the threshold are kept for reuse:
# 1 GiB covers the activations of a memory-budgeted SR tile (a 64-channel 512² fp32 feature map is
# 64 MiB; the ×4 output of such a tile 48 MiB), while a rarer block above it (a whole 12 MP
# output) still goes back to the kernel when freed. Older glibc releases refuse thresholds above
# 32 MiB on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX), hence the fall-backs.
MMAP_THRESHOLDS = (1024 * 1024 * 1024, 256 * 1024 * 1024, 32 * 1024 * 1024)
TRIM_THRESHOLD = 2**31 - 1
ENV_OPT_OUT = "TRANSLATE_MALLOC"  # set to "default" to leave glibc's allocator as it is

_tuned = False
_threshold: int | None = None  # the mmap threshold glibc accepted
_mallopt = None  # glibc's mallopt, once found


def tune_allocator() -> bool:
    """Keep freed memory in the process so that large tensors stop costing page faults.

    Call once, early. A no-op (returning False) where it cannot apply: not Linux with glibc, or
    the environment variable ``TRANSLATE_MALLOC=default``.

    Returns:
        True if glibc accepted both settings (now or on an earlier call).
    """
    global _tuned, _threshold, _mallopt
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
    _threshold = next((t for t in MMAP_THRESHOLDS if mallopt(_M_MMAP_THRESHOLD, t)), None)
    _tuned = _threshold is not None and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _mallopt = mallopt if _tuned else None
    return _tuned


def retain_blocks_below(limit: int) -> None:
    """Where :func:`tune_allocator` applied, keep only blocks smaller than ``limit`` bytes (at
    least the 32 MiB glibc itself may keep) for reuse; larger ones are mapped afresh and given
    back on ``free`` again. Memory-budgeted work (tiled super-resolution) calls it with a share
    of its budget: the heap's retained holes then stay small beside the budget — at a 1 GiB
    threshold a 2 GiB-budget 12 MP ×4 peaked at 3.3 GB, its whole output and blending band kept
    in the heap; at a 256 MiB one its tiles' activations are still reused and only those blocks
    go back (docs/BENCHMARKS.md). A no-op where the allocator was not tuned.
    """
    global _threshold
    if _mallopt is None or _threshold is None:
        return
    threshold = min(_threshold, max(int(limit), MMAP_THRESHOLDS[-1]))
    if threshold != _threshold and _mallopt(_M_MMAP_THRESHOLD, threshold):
        _threshold = threshold


def mmap_threshold() -> int | None:
    """The mmap threshold :func:`tune_allocator` set (bytes), or None where it did not apply."""
    return _threshold if _tuned else None


# oneMKL's strict CNR mode (see the module docstring). oneMKL reads MKL_CBWR at its first
# computation, so it must be in the environment before then.
MKL_CBWR = "AUTO,STRICT"


def reproducible_matmul() -> None:
    """Put oneMKL in strict reproducible mode, for this process and the processes it starts.

    Call before the first matrix product (``translate``'s commands do, first thing): oneMKL fixes
    its mode at its first computation, and later calls change nothing. A value the user already
    set in ``MKL_CBWR`` is kept. Without oneMKL (other BLAS builds) it has no effect.
    """
    os.environ.setdefault("MKL_CBWR", MKL_CBWR)
