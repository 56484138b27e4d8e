"""Training as one call: config, resume checks, the torchrun world, device, seed, task, fit.

``translate train`` is :func:`train` plus printing; scripts build a task with the same parts
(:func:`load_train_config`, :func:`build_task`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from translate import runtime
from translate.config import load_config
from translate.errors import TranslateError
from translate.runtime import World
from translate.train.loop import FitResult, Task, fit


@dataclass
class TrainOutcome:
    """What :func:`train` did: the task's name, the run folder, where it ran and how it went."""

    task: str
    run: Path
    device: torch.device
    world: World
    result: FitResult
    fast_conv: int = 0  # convs computed by Winograd F(4x4, 3x3)

    @property
    def samples(self) -> list[Path]:
        return sorted((self.run / "samples").glob("*.png"))


def load_train_config(task_name: str, config: str | Path | None = None,
                      overrides: list[str] | tuple[str, ...] = (), out: str | Path | None = None,
                      resume: bool = False) -> Any:
    """The typed config of a new run (``config`` file, else the task's defaults, then
    ``overrides``) or of a resumed one (``out/config.yaml`` then ``overrides``).

    Raises:
        TranslateError: a resume without ``out``, with a ``config`` file, or into a folder that
            holds no run; or a bad config (the key named).
    """
    if resume:
        if out is None:
            raise TranslateError("--resume needs --out RUN_DIR (the run to continue)")
        if config is not None:
            raise TranslateError(
                "--config cannot be combined with --resume: the run's own "
                "config.yaml is used (change values with --set)"
            )
        if not (Path(out) / "config.yaml").is_file():
            raise TranslateError(f"{out} is not a run directory (no config.yaml)")
        config = Path(out) / "config.yaml"
    return load_config(task_name, config, list(overrides), from_run=resume)


def build_task(task_name: str, cfg: Any, device: torch.device) -> Task:
    """Seed every RNG with ``train.seed``, then build the task (networks, optimizers, data).

    The networks start alike on every rank (``fit`` broadcasts rank 0's anyway); then each
    rank > 0 gets RNG streams of its own (:func:`translate.runtime.seed_rank`), so the noise
    drawn while training differs between ranks. On a GPU, cuDNN picks the fastest algorithm
    for each of training's fixed shapes once (``cudnn.benchmark``).
    """
    from translate.train.tasks import TASK_CLASSES  # the tasks import this package's loop

    runtime.seed_everything(cfg.train.seed)
    task = TASK_CLASSES[task_name](cfg, device)
    runtime.seed_rank(cfg.train.seed, runtime.WORLD.rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return task


def train(task_name: str, config: str | Path | None = None,
          overrides: list[str] | tuple[str, ...] = (), out: str | Path | None = None,
          resume: bool = False, show_progress: bool = True, tensorboard: bool = False
          ) -> TrainOutcome:
    """Train ``task_name`` into the run folder ``out`` (default ``runs/TASK-TIMESTAMP``), or
    continue it (``resume``), as ``translate train`` does; under torchrun, as one rank of the
    group (joined here and left before returning).

    Raises:
        TranslateError: anything the user can fix, in one line (see :func:`fit`).
    """
    cfg = load_train_config(task_name, config, overrides, out, resume)
    # torchrun: join the group (no-op otherwise), NCCL or gloo by where this rank computes
    world = runtime.init_from_env(cfg.train.device)
    try:
        if out is None:
            if world.active:
                raise TranslateError("--out is required when training with torchrun")
            out = Path("runs") / f"{task_name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
        device = runtime.resolve_device(runtime.device_for(world, cfg.train.device))
        task = build_task(task_name, cfg, device)
        result = fit(task, cfg.train, out, cfg, resume=resume, show_progress=show_progress,
                     tensorboard=tensorboard)
    finally:
        runtime.shutdown()
    return TrainOutcome(task_name, Path(out), device, world, result,
                        task.winograd_convs())
