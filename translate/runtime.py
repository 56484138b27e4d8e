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
import os
import random
from dataclasses import dataclass
from datetime import timedelta
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


class Precision:
    """``torch.autocast`` plus, for fp16, one ``GradScaler`` shared by both optimizers.

    One scaler for several optimizers, ``update()`` once per iteration, is PyTorch's AMP recipe
    for multiple models and optimizers. bf16 needs no scaler (fp32's exponent range).

    Args:
        name: ``auto`` (bf16 on a GPU that supports it, else fp16 on a GPU, fp32 on CPU),
            ``fp32``, ``bf16`` or ``fp16``.
        device: where the models run.
    """

    def __init__(self, name: str, device: torch.device):
        auto = name == "auto"
        if auto:
            if device.type == "cuda":
                # Native bf16 only (Ampere and later): emulated bf16 is slower than fp16.
                name = ("bf16" if torch.cuda.is_bf16_supported(including_emulation=False)
                        else "fp16")
            else:
                name = "fp32"
        if name not in ("fp32", "bf16", "fp16"):
            raise TranslateError(f"unknown precision {name!r}: one of auto, fp32, bf16, fp16")
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
