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
runs with Conditional Numerical Reproducibility off and ``MKL_DYNAMIC`` on (``MKL_VERBOSE=1``
prints ``CNR:OFF Dyn:1``). Intel documents that mode as not reproducible from run to run: it may
change its number of threads at run time, and how a product is split over threads and blocked
for the cache decides its rounding — here, on a Xeon with AVX-512, the MLP GAN's 784- and
1024-deep products round differently on one thread than on two, and two runs of 9 GAN steps that
differ only so end ~2.5e-4 apart. :func:`reproducible_matmul` turns CNR on in strict mode
(``MKL_CBWR=AUTO,STRICT``: the CPU's own fastest branch, and for ``?gemm`` on AVX2/AVX-512 the
same bits whatever the number of threads) and ``MKL_DYNAMIC`` off. It costs ~5–20% per product
on one thread (a 1024³ ``sgemm``: 60 vs 50 ms), and its results differ from CNR-off ones in the
last bits, so a run is reproducible against runs made the same way.
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


# oneMKL's CNR mode (see the module docstring); MKL reads MKL_CBWR at its first computation and
# MKL_DYNAMIC when torch starts it, so both must be in the environment before then.
MKL_CBWR = "AUTO,STRICT"


def reproducible_matmul() -> None:
    """Put oneMKL in strict reproducible mode with a fixed thread count, for this process and the
    processes it starts.

    Call once, before the first matrix product (``translate``'s commands do, first thing). A value
    the user already set in ``MKL_CBWR`` or ``MKL_DYNAMIC`` is kept. Where torch is imported
    already, ``MKL_DYNAMIC`` is also switched off by calling oneMKL; ``MKL_CBWR`` cannot be
    changed once oneMKL has computed anything. Without oneMKL (other BLAS builds) nothing changes.
    """
    os.environ.setdefault("MKL_CBWR", MKL_CBWR)
    os.environ.setdefault("MKL_DYNAMIC", "FALSE")
    if "torch" not in sys.modules or os.environ["MKL_DYNAMIC"].upper() != "FALSE":
        return
    import torch

    if not torch.backends.mkl.is_available():
        return
    try:  # oneMKL is linked into libtorch_cpu, which exports its service functions
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        # The C interface, which takes the flag by value (``mkl_set_dynamic`` is the Fortran one,
        # which takes a pointer: calling it with 0 crashes).
        set_dynamic = lib.MKL_Set_Dynamic
    except (OSError, AttributeError):  # another platform's library name, or no such symbol
        return
    set_dynamic.argtypes, set_dynamic.restype = [ctypes.c_int], None
    set_dynamic(0)
