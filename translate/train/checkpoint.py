"""Complete training state: networks, optimizers, schedulers, GradScaler, position, every RNG.

Written atomically (temp file in the same folder, fsync, ``os.replace``) so a crash at any moment
leaves the previous checkpoint loadable. Read only with ``torch.load(..., weights_only=True)``:
everything stored is tensors, numbers, strings and containers of them.

:func:`save_state` and :func:`restore_state` map a task (its networks, optimizers, schedulers and
extra state), the precision's scaler and the loop's :class:`Position` to that dict and back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translate import runtime
from translate.config import to_dict
from translate.errors import TranslateError
from translate.io.atomic import atomic_open
from translate.modelfile import load_module_state
from translate.runtime import Precision, World
from translate.tasks import current_names

FORMAT = 1
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format is a zip archive


@dataclass
class Position:
    """Where a run stands: optimizer steps taken, the epoch and the batch within it, and how many
    steps were skipped for a non-finite loss."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    skipped: int = 0


def capture_rng() -> dict[str, Any]:
    """Every RNG a training step may touch: python, numpy, torch CPU and the current CUDA
    device's (the one this process trains on; under torchrun each rank's own)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    return {
        "python": [version, list(py_state), py_gauss],
        # numpy's key array goes in as a tensor: weights_only loading refuses numpy objects.
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state()] if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    version, py_state, py_gauss = state["python"]
    random.setstate((version, tuple(py_state), py_gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    states = state["cuda"]
    if states and torch.cuda.is_available():
        # One state (the device it was trained on), or one per GPU from older checkpoints:
        # the current device takes its own where there is one. Never all of them: a host with
        # fewer GPUs than the one that wrote the checkpoint could not take them.
        current = torch.cuda.current_device()
        torch.cuda.set_rng_state(states[current] if 1 < len(states) and current < len(states)
                                 else states[0])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temp file beside ``path``, fsync, then rename over ``path``."""
    state = {"format": FORMAT, **state}
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        TranslateError: missing, unreadable or not a translate checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise TranslateError(f"no checkpoint at {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(len(ZIP_MAGIC))
    except OSError as e:
        raise TranslateError(f"cannot load checkpoint {path}: {e.strerror or e}") from None
    if head != ZIP_MAGIC:  # empty, zeroed or another kind of file: torch's messages mislead
        what = "an empty file" if not head else "not a PyTorch checkpoint file"
        raise TranslateError(f"cannot load checkpoint {path}: not a valid checkpoint ({what})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or foreign files
        raise TranslateError(f"cannot load checkpoint {path}: {_load_failure(e)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise TranslateError(f"{path} is not a translate training checkpoint (format {FORMAT})")
    # Checkpoints from before the one naming of networks load under today's names
    # (translate/tasks.py).
    for key in ("networks", "architecture"):
        if isinstance(state.get(key), dict):
            state[key] = current_names(state.get("task"), state[key])
    return state


def _load_failure(error: Exception) -> str:
    """Why ``torch.load`` failed, in a few words, without torch's advice to load with
    ``weights_only=False`` (that runs code from the file)."""
    for line in str(error).splitlines():
        # The weights-only refusal names what it would not unpickle after this marker.
        _, marker, detail = line.partition("WeightsUnpickler error:")
        if marker and detail.strip():
            first = detail.strip().split(". ")[0].rstrip(".")
            return f"not a valid checkpoint (it holds objects a safe load refuses: {first})"
    return "not a valid checkpoint (the file is cut off or damaged)"


def architecture(task: Any) -> dict[str, Any]:
    """Each network's class and constructor arguments: what a checkpoint must match to load."""
    return {
        name: {"class": type(net).__name__, "args": getattr(net, "config", {})}
        for name, net in task.networks().items()
    }


def save_state(task: Any, precision: Precision, config: Any, pos: Position,
               rng_ranks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The checkpoint dict of a training task at ``pos`` (for :func:`save_checkpoint`).

    Args:
        task: a :class:`translate.train.loop.Task`.
        precision: its GradScaler's state is saved.
        config: the run's whole typed config, stored with the state.
        pos: the loop's position; every RNG is captured now.
        rng_ranks: under torchrun, every rank's :func:`capture_rng` in rank order (gathered by
            the loop), so that each rank resumes its own streams.
    """
    return {
        "task": task.name,
        "architecture": architecture(task),
        "config": to_dict(config),
        "networks": {k: v.state_dict() for k, v in task.networks().items()},
        "optimizers": {k: v.state_dict() for k, v in task.optimizers().items()},
        "schedulers": {k: v.state_dict() for k, v in task.schedulers.items()},
        "scaler": precision.state_dict(),
        "precision": precision.name,  # what the run computed at (``auto``'s choice included)
        "conv_choices": task.conv_choices(),  # … its convs' algorithms (measured choices too)
        "threads": torch.get_num_threads(),  # … and its thread count (ATen splits work by it)
        "step": pos.step,
        "epoch": pos.epoch,
        "batch_in_epoch": pos.batch_in_epoch,
        "nonfinite_skipped": pos.skipped,
        "rng": capture_rng(),
        **({"rng_ranks": rng_ranks} if rng_ranks else {}),
        "extra": task.extra_state(),
    }


def check_task(state: dict[str, Any], task_name: str, path: Path) -> None:
    if state.get("task") != task_name:
        raise TranslateError(f"{path} is from task {state.get('task')!r}, not {task_name!r}")


def restore_state(task: Any, precision: Precision, state: dict[str, Any], path: Path
                  ) -> Position:
    """Load a checkpoint dict into ``task`` and ``precision``, restore every RNG and return the
    saved position (the inverse of :func:`save_state`).

    Raises:
        TranslateError: the checkpoint is another task's, was written for other networks, or
            holds no schedule for a task trained by epochs.
    """
    check_task(state, task.name, path)
    if state.get("architecture") != architecture(task):
        raise TranslateError(
            f"{path} was written for other networks than the config builds "
            f"({state.get('architecture')} vs {architecture(task)})"
        )
    for name, net in task.networks().items():
        load_module_state(net, state["networks"][name], f"{path} ({name})")
    for name, opt in task.optimizers().items():
        opt.load_state_dict(state["optimizers"][name])
    for name, sched in task.schedulers.items():
        if name not in state["schedulers"]:  # trained by steps (or before the schedule)
            raise TranslateError(
                f"{path} holds no learning-rate schedule to continue with train.epochs: the run "
                "was not trained by epochs")
        sched.load_state_dict(state["schedulers"][name])
    precision.load_state_dict(state["scaler"])
    task.load_extra_state(state.get("extra", {}))
    pos = Position(state["step"], state["epoch"], state["batch_in_epoch"],
                   state.get("nonfinite_skipped", 0))
    restore_rng(rank_rng(state, runtime.WORLD, pos.step))
    return pos


def rank_rng(state: dict[str, Any], world: World, step: int) -> dict[str, Any]:
    """The RNG states this rank resumes with: its own where the checkpoint holds every rank's
    (written by as many ranks), else rank 0's — and then a rank > 0 is reseeded from
    (``train.seed``, rank, step) right after, so that ranks still draw different noise."""
    ranks = state.get("rng_ranks") or []
    if world.active and len(ranks) == world.size:
        return ranks[world.rank]
    if world.rank:
        seed = int(state.get("config", {}).get("train", {}).get("seed", 0))
        runtime.seed_rank(runtime.rank_seed(seed, step + 1), world.rank)
        return capture_rng()  # the reseeded streams, in place of rank 0's
    return state["rng"]
