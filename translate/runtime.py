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
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from translate.errors import TranslateError

# ── Device and seeds.


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TranslateError(f"device {name!r} asked for, but no CUDA device is available")
    return device


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices). Call before building networks."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
        if name == "auto":
            if device.type == "cuda":
                name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            else:
                name = "fp32"
        if name not in ("fp32", "bf16", "fp16"):
            raise TranslateError(f"unknown precision {name!r}: one of auto, fp32, bf16, fp16")
        self.name = name
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


# ── The process group (torchrun: NCCL on GPUs, gloo on CPU).


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


def init_from_env() -> World:
    """Join the process group described by torchrun's variables (no-op when run plainly)."""
    global WORLD
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return WORLD
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    WORLD = World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return WORLD


def device_for(world: World, name: str) -> str:
    """Under torchrun on GPUs, each rank uses ``cuda:LOCAL_RANK`` whatever ``train.device`` says."""
    if world.active and name in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{world.local_rank}"
    return name


def shutdown() -> None:
    global WORLD
    if dist.is_initialized():
        dist.destroy_process_group()
    WORLD = World()


def barrier() -> None:
    if WORLD.active:
        dist.barrier()


def gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order; ``[value]`` when run plainly."""
    if not WORLD.active:
        return [value]
    out: list[Any] = [None] * WORLD.size
    dist.all_gather_object(out, value)
    return out
