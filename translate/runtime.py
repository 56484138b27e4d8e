"""Where and how models run: device, seeding, mixed precision and the process group.

Used alike by training, inference and evaluation, so it sits below all three (DESIGN.md,
"Layers"). The process group here is joining it, the world, and the collectives inference needs
too (``barrier``, ``gather_objects``); training's own collective work (gradient averaging, agreed
control decisions, weight fingerprints) stays in ``translate.train.distributed``.

``WORLD`` is rebound by :func:`init_from_env` and :func:`shutdown`: read it as
``runtime.WORLD`` at the time of use, never ``from translate.runtime import WORLD`` (that copy
would stay the single-process world).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from translate.config import DEVICE
from translate.errors import TranslateError

# ── Device and seeds.


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when there is one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        TranslateError: another name (``tpu``, ``cuda:x``), or CUDA asked for but absent.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not DEVICE.fullmatch(name):
        raise TranslateError(f"device {name!r}: must be one of auto, cpu, cuda, cuda:N")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TranslateError(f"device {name!r} asked for, but no CUDA device is available")
    return device


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices). Call before building networks."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rank_seed(seed: int, rank: int) -> int:
    """A seed of its own for ``rank`` > 0 of a run seeded with ``seed`` (rank 0 keeps ``seed``)."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint32)[0])


def seed_rank(seed: int, rank: int) -> None:
    """After building the networks alike on every rank: give each rank > 0 its own RNG streams,
    so that noise drawn during training (the MLP GAN's z, dropout, image-pool draws) differs
    between ranks instead of repeating rank 0's. Rank 0 is left as it is, so a run in one
    process draws exactly what it always did."""
    if rank:
        seed_everything(rank_seed(seed, rank))


# ── Mixed precision.

# ``auto`` on a CPU, for training: bf16 only where the micro-benchmark measures it at least this
# much faster than fp32 (a margin above run-to-run noise: a wrong bf16 costs precision for nothing).
BF16_MARGIN = 1.10
# ``train.fast_conv: null`` on a CPU: Winograd convs only where measured at least this much
# faster than the direct conv (they change only the rounding, so a smaller margin).
WINOGRAD_MARGIN = 1.05
# Pins ``auto``'s choice on a CPU without measuring (``fp32`` or ``bf16``): reproducible runs
# across machines, and the test suite (tests/conftest.py pins fp32).
CPU_PRECISION_ENV = "TRANSLATE_CPU_PRECISION"


def cache_dir() -> Path:
    """The user cache: ``$TRANSLATE_CACHE``, else ``$XDG_CACHE_HOME/translate``, else
    ``~/.cache/translate``."""
    if os.environ.get("TRANSLATE_CACHE"):
        return Path(os.environ["TRANSLATE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "translate"


def cpu_model() -> str:
    """The CPU's model name and a digest of its feature flags (VMs often report one generic
    name, "Intel(R) Xeon(R) Processor", for CPUs with and without AMX)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())  # the first CPU's
    name = fields.get("model name") or platform.processor() or platform.machine()
    flags = fields.get("flags") or fields.get("Features", "")
    digest = hashlib.sha1(" ".join(sorted(flags.split())).encode()).hexdigest()[:8]
    return f"{name} (flags {digest})"


def measure_cpu_convs(rounds: int = 3) -> dict[str, float]:
    """Seconds for one representative training conv, forward + backward, on this CPU: 256 ->
    256 channels, 3x3, on 32x32 (a residual-block conv of the ResNet generators), as the
    stock conv at fp32 (``fp32``), the Winograd one at fp32 (``fp32_winograd``) and the stock
    conv under bf16 autocast (``bf16``) (:func:`_time_conv_steps`). Under a second on a 2-core
    Xeon."""
    return _time_conv_steps((1, 256, 32, 32), 256, {
        "fp32": (False, False), "fp32_winograd": (True, False), "bf16": (False, True)}, rounds)


def _time_conv_steps(shape: tuple[int, ...], out_channels: int,
                     ways: dict[str, tuple[bool, bool]], rounds: int) -> dict[str, float]:
    """Seconds for one training step (forward + backward) of a 3x3 stride-1 conv, padding 1,
    ``shape[1]`` -> ``out_channels`` channels, on a seeded input of ``shape``, for each of
    ``ways`` (name -> (Winograd F(4x4, 3x3), bf16 autocast)), the same seeded weights for all:
    interleaved rounds after one warm-up each; the best round of each.

    A conv may ask at its first input of a shape, mid-run: the timed steps need autograd
    whatever the caller's mode (a sample grid runs under ``no_grad``), and they leave the global
    RNG as they found it (building the convs draws their initial weights from it), so that a run
    that measured draws the same numbers as one that read the timings from the cache.
    """
    with (torch.random.fork_rng(devices=[]), torch.inference_mode(False),
          torch.enable_grad()):
        return _timed_conv_steps(shape, out_channels, ways, rounds)


def _timed_conv_steps(shape: tuple[int, ...], out_channels: int,
                      ways: dict[str, tuple[bool, bool]], rounds: int) -> dict[str, float]:
    from translate.nets.winograd import fast_training  # a pure module: no import cycle

    gen = torch.Generator().manual_seed(0)
    direct = torch.nn.Conv2d(shape[1], out_channels, 3, padding=1)
    with torch.no_grad():
        direct.weight.normal_(0, 0.02, generator=gen)
    winograd = torch.nn.Sequential(torch.nn.Conv2d(shape[1], out_channels, 3, padding=1))
    winograd[0].load_state_dict(direct.state_dict())
    fast_training(winograd, min_channels=1)
    x = torch.randn(shape, generator=gen, requires_grad=True)

    def once(use_winograd: bool, bf16: bool) -> float:
        start = time.perf_counter()
        with (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
              else contextlib.nullcontext()):
            y = (winograd if use_winograd else direct)(x)
        y.float().square().mean().backward()
        return time.perf_counter() - start

    best = {name: float("inf") for name in ways}
    for way in ways.values():
        once(*way)
    for _ in range(rounds):
        for name, way in ways.items():
            best[name] = min(best[name], once(*way))
    return best


def cpu_conv_timings() -> tuple[dict[str, float], str]:
    """:func:`measure_cpu_convs`' timings for this CPU and torch version, and where they came
    from: measured once on a quiet machine, then read from ``cache_dir()/precision.json``
    (keyed by :func:`cpu_model` and torch's version).

    A measurement taken while other processes kept the cores busy (1-minute load average above
    half the core count) is used for this run but not trusted later: busy cores distort the
    ratio (on this project's 2-core machine, with other trainings running, the same
    measurement gave bf16 anywhere from 0.74x to 3.6x fp32), so the next run measures again
    until a quiet measurement is kept. A cache that cannot be read is measured over; one that
    cannot be written is only not kept.
    """
    return _cached_timings("", measure_cpu_convs, ("fp32", "fp32_winograd", "bf16"))


def _cached_timings(what: str, measure: Any, names: tuple[str, ...]
                    ) -> tuple[dict[str, float], str]:
    """``measure()``'s timings (seconds named ``names``), kept in ``precision.json`` under this
    CPU, torch version and ``what`` once measured on a quiet machine (:func:`cpu_conv_timings`)."""
    path = cache_dir() / "precision.json"
    key = f"{cpu_model()} | torch {torch.__version__}{what}"
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        entry = cached.get(key) if isinstance(cached, dict) else None
        if isinstance(entry, dict) and entry.get("quiet") is True and all(
                isinstance(entry.get(k), float) and entry[k] > 0 for k in names):
            return entry, f"cached in {path}"
    except (OSError, ValueError):
        cached = {}
    timings = measure()
    load = os.getloadavg()[0]
    quiet = load <= 0.5 * (os.cpu_count() or 1)
    with contextlib.suppress(OSError):
        cached = cached if isinstance(cached, dict) else {}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        entry = {**timings, "quiet": quiet, "load_average": round(load, 2)}
        tmp.write_text(json.dumps({**cached, key: entry}, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    if quiet:
        return timings, f"measured now, kept in {path}"
    return timings, f"measured now under load {load:.1f}, so measured again next time"


def measure_winograd_conv(shape: tuple[int, ...], out_channels: int,
                          rounds: int = 3) -> dict[str, float]:
    """Seconds for one training step of a 3x3 conv, ``shape[1]`` -> ``out_channels`` channels,
    on an input of ``shape``: the stock conv (``direct``) and Winograd F(4x4, 3x3)
    (``winograd``), both at fp32 (:func:`_time_conv_steps`)."""
    return _time_conv_steps(shape, out_channels,
                            {"direct": (False, False), "winograd": (True, False)}, rounds)


# winograd_pays' answers in this process, by (input shape, out channels, threads).
_WINOGRAD_PAYS: dict[tuple[Any, ...], bool] = {}


def winograd_pays(shape: tuple[int, ...], out_channels: int) -> bool:
    """Whether Winograd F(4x4, 3x3) trains a 3x3 conv of this input ``shape`` and
    ``out_channels`` at least :data:`WINOGRAD_MARGIN` times as fast as the stock conv on this
    CPU (``train.fast_conv: null``, asked by each converted conv at its first input of a
    shape): :func:`measure_winograd_conv`, measured once per shape and kept like
    :func:`cpu_conv_timings`. On the 2-core Xeon of docs/BENCHMARKS.md, 256 channels on 32x32
    pay and 128 channels on 16x16 (the demo's residual blocks) do not."""
    key = (tuple(shape), out_channels, torch.get_num_threads())
    if key not in _WINOGRAD_PAYS:
        n, c, h, w = shape
        timings, _ = _cached_timings(
            f" | Winograd {n}x{c}x{h}x{w} -> {out_channels}, {key[2]} threads",
            lambda: measure_winograd_conv(tuple(shape), out_channels), ("direct", "winograd"))
        _WINOGRAD_PAYS[key] = timings["direct"] >= WINOGRAD_MARGIN * timings["winograd"]
    return _WINOGRAD_PAYS[key]


def choose_cpu_precision(timings: dict[str, float], winograd: bool) -> tuple[str, str, bool]:
    """``(fp32 | bf16, why, Winograd convs at fp32)`` from the micro-benchmark's ``timings``.

    fp32 as training would compute it: with the Winograd convs where ``winograd`` (the run has
    convs they apply to) and they measured at least :data:`WINOGRAD_MARGIN` times as fast as
    the direct conv, else direct. bf16 only where it is at least :data:`BF16_MARGIN` times as
    fast as that.
    """
    use_winograd = winograd and timings["fp32"] >= WINOGRAD_MARGIN * timings["fp32_winograd"]
    fp32 = timings["fp32_winograd" if use_winograd else "fp32"]
    label = "fp32 with Winograd convs" if use_winograd else "fp32"
    if winograd and not use_winograd:
        label += (f" (Winograd convs measured "
                  f"{timings['fp32'] / timings['fp32_winograd']:.2f}x direct: not used)")
    ratio = fp32 / timings["bf16"]
    if ratio >= BF16_MARGIN:
        return "bf16", f"a conv step ran {ratio:.2f}x as fast as {label} on this CPU", False
    return "fp32", (f"bf16 ran a conv step at {ratio:.2f}x {label} on this CPU "
                    f"(needs {BF16_MARGIN:.2f}x)"), use_winograd


class Precision:
    """``torch.autocast`` plus, for fp16, one ``GradScaler`` shared by both optimizers.

    One scaler for several optimizers, ``update()`` once per iteration, is PyTorch's AMP recipe
    for multiple models and optimizers. bf16 needs no scaler (fp32's exponent range).

    Args:
        name: ``auto`` (bf16 on a GPU that supports it, else fp16 on a GPU; on a CPU fp32, or
            with ``measure`` the faster of fp32 and bf16, :func:`choose_cpu_precision`),
            ``fp32``, ``bf16`` or ``fp16``.
        allowed: the precisions the model runs in (an imported architecture's); ``auto`` on a
            GPU picks among them, falling back to fp32.
        device: where the models run.
        measure: training on a CPU: ``auto`` chooses by the cached micro-benchmark
            (:func:`cpu_conv_timings`, :func:`choose_cpu_precision`) unless
            ``$TRANSLATE_CPU_PRECISION`` pins the choice; with ``winograd``, fp32 (chosen or
            named) also learns whether its Winograd convs measured faster.
        winograd: the run has convs that Winograd F(4x4, 3x3) can compute
            (``train.fast_conv`` not false).

    Attributes:
        reason: why this precision, in words (``translate train`` prints it).
        winograd: fp32 should compute those convs by Winograd (``train.fast_conv: null``):
            measured faster, or pinned (the issue's default: on for a CPU at fp32).
    """

    def __init__(self, name: str, device: torch.device, measure: bool = False,
                 winograd: bool = False, allowed: tuple[str, ...] = ("fp32", "bf16", "fp16")):
        auto = name == "auto"
        self.reason = "asked for by name"
        self.winograd = False
        if auto:
            if device.type == "cuda":
                # Native bf16 only (Ampere and later): emulated bf16 is slower than fp16; then
                # the first of these the model runs in (``allowed``), else fp32.
                native = torch.cuda.is_bf16_supported(including_emulation=False)
                name = next((p for p in (("bf16", "fp16") if native else ("fp16",))
                             if p in allowed), "fp32")
                self.reason = ("auto: native bf16 on this GPU" if native else
                               "auto: this GPU has no native bf16")
                if name == "fp32":
                    self.reason += "; the model runs only in fp32 of what it offers"
            elif measure:
                name, self.reason, self.winograd = _cpu_auto(winograd)
            else:
                name, self.reason = "fp32", "auto: fp32 on a CPU"
        if name not in ("fp32", "bf16", "fp16"):
            raise TranslateError(f"unknown precision {name!r}: one of auto, fp32, bf16, fp16")
        if not auto and name == "fp32" and measure and winograd and device.type == "cpu":
            self.winograd, why = _winograd_at_fp32()
            self.reason += f"; {why}"
        self.name = name
        self.chosen = auto  # picked by ``auto``, not asked for by name
        self.device = device
        self.dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
        self.scaler = torch.amp.GradScaler(device.type, enabled=name == "fp16")
        self._stepped = False

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of the (fp16: scaled) loss. Averaging across ranks is the caller's."""
        self.scaler.scale(loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.step(optimizer)  # fp16: skips the update if the gradients overflowed
        self._stepped = True

    def update(self) -> None:
        """Once per iteration, after every optimizer of that iteration has stepped."""
        if self._stepped:
            self.scaler.update()
            self._stepped = False

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.scaler.load_state_dict(state)


def cpu_precision_pinned() -> bool:
    """Whether ``$TRANSLATE_CPU_PRECISION`` pins ``auto``'s choice (nothing is measured)."""
    return bool(_pinned())


def _pinned() -> str:
    pinned = os.environ.get(CPU_PRECISION_ENV, "")
    if pinned not in ("", "fp32", "bf16"):
        raise TranslateError(f"${CPU_PRECISION_ENV}={pinned!r}: must be fp32 or bf16")
    return pinned


def _cpu_auto(winograd: bool) -> tuple[str, str, bool]:
    """``auto`` for training on a CPU: pinned by the environment (Winograd convs on at fp32),
    else measured."""
    pinned = _pinned()
    if pinned:
        return pinned, f"auto: pinned by ${CPU_PRECISION_ENV}", winograd and pinned == "fp32"
    timings, source = cpu_conv_timings()
    name, why, use_winograd = choose_cpu_precision(timings, winograd)
    return name, f"auto: {why} ({source})", use_winograd


def _winograd_at_fp32() -> tuple[bool, str]:
    """fp32 asked for by name on a CPU: Winograd convs where measured faster (always, pinned)."""
    if _pinned():
        return True, f"Winograd convs on: ${CPU_PRECISION_ENV} is set, nothing measured"
    timings, source = cpu_conv_timings()
    ratio = timings["fp32"] / timings["fp32_winograd"]
    on = ratio >= WINOGRAD_MARGIN
    return on, (f"Winograd convs measured {ratio:.2f}x the direct conv on this CPU, "
                f"{'used where each shape measures faster' if on else 'not used'} ({source})")


# ── The process group (torchrun: NCCL for ranks on GPUs, gloo for ranks on the CPU).

# Control collectives (barrier, gather_objects) run on a gloo group of their own with this
# timeout: a rank that ends its share early (``--fail-fast``, a signal, fewer files) waits there
# for the others' work, which may take far longer than NCCL's 10-minute default; gloo waits on
# the CPU, and no GPU memory holds the pickled objects.
CONTROL_TIMEOUT = timedelta(hours=12)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


WORLD = World()  # the one copy; rebound below, so read it as ``runtime.WORLD``
_CONTROL: Any = None  # the gloo group of the control collectives while in a group


def init_from_env(device: str = "auto") -> World:
    """Join the process group described by torchrun's variables (no-op when run plainly).

    The backend follows where this rank computes (``device``, as :func:`device_for` maps it):
    NCCL for a GPU, gloo for the CPU, so ``--device cpu`` under torchrun on a GPU host never
    hands CPU tensors to NCCL.

    Raises:
        TranslateError: a rank would compute on a GPU that is not there (more processes on
            this node than visible GPUs).
    """
    global WORLD, _CONTROL
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return WORLD
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        target = device_for(World(0, size, local_rank), device)  # "auto" here: no CUDA
        backend = "nccl" if target.startswith("cuda") and torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(torch.device(target))
        dist.init_process_group(backend)
    if _CONTROL is None:
        _CONTROL = dist.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)
    WORLD = World(dist.get_rank(), dist.get_world_size(), local_rank)
    return WORLD


def device_for(world: World, name: str) -> str:
    """Under torchrun, a rank on GPUs uses ``cuda:LOCAL_RANK`` whatever index ``name`` gives
    (``auto`` with CUDA present, ``cuda``, ``cuda:N``); ``cpu`` stays the CPU.

    Raises:
        TranslateError: LOCAL_RANK has no GPU of its own on this node.
    """
    if not world.active:
        return name
    gpu = name == "auto" or name == "cuda" or name.startswith("cuda:")
    if not gpu or not torch.cuda.is_available():
        return name  # cpu; or no CUDA, which resolve_device reports for an explicit cuda
    count = torch.cuda.device_count()
    if world.local_rank >= count:
        raise TranslateError(
            f"torchrun rank with LOCAL_RANK {world.local_rank} has no GPU of its own: {count} "
            f"visible on this node; start at most {count} processes per node "
            "(--nproc_per_node) or run on the CPU (--device cpu / train.device=cpu)")
    return f"cuda:{world.local_rank}"


def shutdown() -> None:
    global WORLD, _CONTROL
    if dist.is_initialized():
        dist.destroy_process_group()
    WORLD, _CONTROL = World(), None


def barrier() -> None:
    if WORLD.active:
        dist.barrier(group=_CONTROL)


def gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order; ``[value]`` when run plainly."""
    if not WORLD.active:
        return [value]
    out: list[Any] = [None] * WORLD.size
    dist.all_gather_object(out, value, group=_CONTROL)
    return out
