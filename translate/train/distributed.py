"""Data-parallel training across processes started by ``torchrun`` (NCCL on GPUs, gloo on CPU).

Each rank runs the same step on its own shard of every epoch's permutation; after each backward
the gradients of the optimizer's parameters are averaged across ranks in one flattened
all-reduce, so every rank takes the same optimizer step and the weights stay identical. This is
what DDP computes; it is done by hand because the GAN step runs a network several times before
one backward and freezes the discriminators for the G step, which DDP's hooks do not allow
without ``static_graph`` caveats. Control decisions (a non-finite loss, a stop signal) are agreed
on collectively so ranks never diverge in control flow.

BatchNorm statistics are kept per rank (no SyncBatchNorm); CycleGAN's instance norm has none.
Joining the group, the world itself (``World``, ``runtime.WORLD``) and the collectives that
inference shares (``barrier``, ``gather_objects``) are :mod:`translate.runtime`'s.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from translate import runtime


def average_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Mean of every parameter's gradient across ranks, in one flattened all-reduce."""
    if not runtime.WORLD.active:
        return
    grads = [p.grad for group in optimizer.param_groups for p in group["params"]
             if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= runtime.WORLD.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def sum_across_ranks(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over ranks, in place and without waiting on the host (``t`` itself when run
    plainly)."""
    if runtime.WORLD.active:
        dist.all_reduce(t)
    return t


def all_agree(flag: bool, device: torch.device) -> bool:
    """True only if ``flag`` is true on every rank."""
    if not runtime.WORLD.active:
        return flag
    t = torch.tensor([0.0 if flag else 1.0], device=device)
    dist.all_reduce(t)
    return float(t) == 0.0


def any_rank(flag: bool, device: torch.device) -> bool:
    """True if ``flag`` is true on some rank."""
    return not all_agree(not flag, device)


def broadcast_parameters(modules: list[torch.nn.Module]) -> None:
    """Make every rank start from rank 0's weights and buffers."""
    if not runtime.WORLD.active:
        return
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def parameter_digest(modules: list[torch.nn.Module]) -> float:
    """A float64 fingerprint of the weights (sum of x·(i+1) over all elements)."""
    total = torch.zeros((), dtype=torch.float64)
    for module in modules:
        for p in module.parameters():
            flat = p.detach().double().reshape(-1).cpu()
            total += (flat * torch.arange(1, flat.numel() + 1, dtype=torch.float64)).sum()
    return float(total)


def gather_floats(value: float, device: torch.device) -> list[float]:
    if not runtime.WORLD.active:
        return [value]
    t = torch.tensor([value], dtype=torch.float64, device=device)
    out = [torch.zeros_like(t) for _ in range(runtime.WORLD.size)]
    dist.all_gather(out, t)
    return [float(x) for x in out]
