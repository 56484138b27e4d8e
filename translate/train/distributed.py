"""Data-parallel training across processes started by ``torchrun`` (NCCL on GPUs, gloo on CPU).

Each rank runs the same step on its own shard of every epoch's permutation; after each backward
the gradients of the optimizer's parameters are averaged across ranks in one flattened
all-reduce, so every rank takes the same optimizer step and the weights stay identical. This is
what DDP computes; it is done by hand because the GAN step runs a network several times before
one backward and freezes the discriminators for the G step, which DDP's hooks do not allow
without ``static_graph`` caveats. Control decisions (a non-finite loss, a stop signal) are agreed
on collectively so ranks never diverge in control flow.

BatchNorm statistics are kept per rank (no SyncBatchNorm); CycleGAN's instance norm has none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


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


WORLD = World()


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


def average_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Mean of every parameter's gradient across ranks, in one flattened all-reduce."""
    if not WORLD.active:
        return
    grads = [p.grad for group in optimizer.param_groups for p in group["params"]
             if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= WORLD.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def all_agree(flag: bool, device: torch.device) -> bool:
    """True only if ``flag`` is true on every rank."""
    if not WORLD.active:
        return flag
    t = torch.tensor([0.0 if flag else 1.0], device=device)
    dist.all_reduce(t)
    return float(t) == 0.0


def any_rank(flag: bool, device: torch.device) -> bool:
    """True if ``flag`` is true on some rank."""
    return not all_agree(not flag, device)


def broadcast_parameters(modules: list[torch.nn.Module]) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    if not WORLD.active:
        return
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def barrier() -> None:
    if WORLD.active:
        dist.barrier()


def parameter_digest(modules: list[torch.nn.Module]) -> float:
    """A float64 fingerprint of the weights (sum of x·(i+1) over all elements)."""
    total = torch.zeros((), dtype=torch.float64)
    for module in modules:
        for p in module.parameters():
            flat = p.detach().double().reshape(-1).cpu()
            total += (flat * torch.arange(1, flat.numel() + 1, dtype=torch.float64)).sum()
    return float(total)


def gather_floats(value: float, device: torch.device) -> list[float]:
    if not WORLD.active:
        return [value]
    t = torch.tensor([value], dtype=torch.float64, device=device)
    out = [torch.zeros_like(t) for _ in range(WORLD.size)]
    dist.all_gather(out, t)
    return [float(x) for x in out]


def gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order; ``[value]`` when run plainly."""
    if not WORLD.active:
        return [value]
    out: list[Any] = [None] * WORLD.size
    dist.all_gather_object(out, value)
    return out
