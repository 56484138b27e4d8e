"""The training loop every task shares: steps/epochs, progress, metrics, samples, checkpoints.

The loop knows nothing about GANs; a :class:`Task` gives it a dataset, a ``train_step`` (the
adversarial core's ``adversarial_step`` by default) and what to save. It owns the things that
must be right once: exact resume, atomic checkpoints, signals and non-finite losses.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from translate import console as ui
from translate.config import TrainConfig, to_dict, to_yaml
from translate.errors import TranslateError
from translate.io.atomic import atomic_open, atomic_write_text
from translate.modelfile import save_model
from translate.signals import StopSignals
from translate.train import distributed
from translate.train.adversarial import NonFiniteLoss, Precision, adversarial_step
from translate.train.board import Board, summary_writer_class
from translate.train.checkpoint import (
    capture_rng,
    load_checkpoint,
    load_module_state,
    restore_rng,
    save_checkpoint,
)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices). Call before building networks."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TranslateError(f"device {name!r} asked for, but no CUDA device is available")
    return device


def move_to(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a tensor / dict / list batch to ``device``; leave the rest."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=device.type == "cuda")
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, list):
        return [move_to(v, device) for v in batch]
    return batch


class Ema:
    """Exponential moving average of a network's weights (buffers copied as they are).

    Args:
        net: the trained network; :meth:`update` follows it.
        decay: weight of the average per step, e.g. 0.999.
    """

    def __init__(self, net: nn.Module, decay: float):
        self.net, self.decay = net, decay
        self.model = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self) -> None:
        for p_ema, p in zip(self.model.parameters(), self.net.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1.0 - self.decay)
        for b_ema, b in zip(self.model.buffers(), self.net.buffers(), strict=True):
            b_ema.copy_(b)


@contextlib.contextmanager
def evaluating(*nets: nn.Module) -> Iterator[None]:
    """Put ``nets`` in eval mode for the block, then back in the mode each was in."""
    was = [net.training for net in nets]
    for net in nets:
        net.eval()
    try:
        yield
    finally:
        for net, mode in zip(nets, was, strict=True):
            net.train(mode)


class Task:
    """Base for a trainable task. Subclasses set the attributes and override what differs.

    Attributes:
        name: the task's config name (``gan``, ``vae`` …), stored in checkpoints and model.json.
        generators / discriminators / opt_g / opt_d: what the adversarial core steps.
        emas: generator attribute name → its :class:`Ema`, updated after every step (none by
            default); :meth:`inference_generator` prefers them.
        schedulers: stepped once at the end of every epoch.
        dataset / collate_fn: what the loop batches.
    """

    name: str = ""
    generators: list[nn.Module]
    discriminators: list[nn.Module]
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None = None
    emas: Mapping[str, Ema] = MappingProxyType({})
    schedulers: dict[str, Any]
    dataset: Dataset
    collate_fn: Callable | None = None
    device: torch.device

    # What the core needs (see translate.train.adversarial.AdversarialTask).
    def generate(self, batch: Any) -> Any:
        raise NotImplementedError

    def discriminator_losses(self, batch: Any, fakes: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def generator_losses(self, batch: Any, fakes: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # What the loop needs.
    def networks(self) -> dict[str, nn.Module]:
        """Every network whose state a checkpoint holds, by name."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"opt_g": self.opt_g}
        if self.opt_d is not None:
            opts["opt_d"] = self.opt_d
        return opts

    def to_device(self, batch: Any) -> Any:
        return move_to(batch, self.device)

    def train_step(self, batch: Any, precision: Precision) -> dict[str, float]:
        """The core's alternating step, then every EMA follows its generator."""
        logs = adversarial_step(self, batch, precision)
        for ema in self.emas.values():
            ema.update()
        return logs

    def inference_generator(self, name: str) -> nn.Module:
        """Generator attribute ``name`` for samples and export: its EMA where kept, else itself."""
        ema = self.emas.get(name)
        return ema.model if ema is not None else getattr(self, name)

    def make_emas(self, decay: float, *names: str) -> None:
        """Keep an EMA of each named generator attribute when ``decay`` > 0 (``train.ema``)."""
        self.emas = {name: Ema(getattr(self, name), decay) for name in names} if decay else {}

    def end_epoch(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.step()

    def extra_state(self) -> dict[str, Any]:
        """Task state beyond networks and optimizers that a checkpoint must hold (image pools)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    def sample_grid(self) -> torch.Tensor:
        """An image grid (C, H, W) in [0, 1] from fixed inputs; must not touch the global RNG."""
        raise NotImplementedError

    def export(self) -> tuple[dict[str, nn.Module], dict[str, Any]]:
        """The networks inference needs and extra model.json metadata."""
        raise NotImplementedError


def linear_decay(optimizer: torch.optim.Optimizer, epochs: int, epochs_decay: int
                 ) -> torch.optim.lr_scheduler.LambdaLR:
    """Constant rate for ``epochs``, then linearly towards 0 over ``epochs_decay`` (stepped once
    per epoch), as the CycleGAN reference's ``linear`` policy:
    factor(e) = 1 − max(0, e + 1 − epochs) / (epochs_decay + 1)."""

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def adam(params: Any, cfg: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """Adam from the train config, as PyTorch's fused kernel (one pass over each tensor).

    Fused on CPU too: for CycleGAN's 14.1 M parameters one step takes 11 ms against 35 ms for the
    default multi-tensor (foreach) Adam on this project's 2-core VM.
    """
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            fused=device.type in ("cuda", "cpu"))


class EpochBatchSampler(Sampler[list[int]]):
    """Shuffled batches from a permutation seeded by (seed, epoch), startable mid-epoch.

    The order depends on nothing but the seed and the epoch, so resuming at batch k of epoch e
    replays exactly the batches the uninterrupted run would have drawn.
    """

    def __init__(self, n: int, batch_size: int, seed: int, with_epoch: bool = False,
                 rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world = rank, world
        self.per_rank = n // world  # every rank gets as many samples (like DistributedSampler)
        self.epoch, self.start = 0, 0
        # Yield (epoch, index) keys for datasets whose augmentation depends on the epoch: the key
        # carries it into DataLoader workers, which never see a set_epoch() made in this process.
        self.with_epoch = with_epoch

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return self.per_rank // self.batch_size - self.start

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        # Rank r takes every world-th sample of the shared permutation: no sample twice per epoch.
        order = order[self.rank :: self.world][: self.per_rank]
        for b in range(self.start, self.per_rank // self.batch_size):  # drop_last (BatchNorm)
            batch = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield [(self.epoch, i) for i in batch] if self.with_epoch else batch


class TrainingInterrupted(TranslateError):
    """SIGINT/SIGTERM: the step finished, the state was saved; exit 130 / 143."""


@dataclass
class FitResult:
    step: int
    epoch: int
    skipped: int
    seconds: float


# ── Run directories.


def start_run(run_dir: Path, config: Any, resume: bool) -> bool:
    """Check (and for a new run, create) the run directory. Returns True if this call made it."""
    if resume:
        if not (run_dir / "state" / "last.pt").is_file():
            raise TranslateError(f"{run_dir} has no checkpoint (state/last.pt) to resume from")
        return False
    if (run_dir / "config.yaml").exists() or (run_dir / "state").exists():
        raise TranslateError(
            f"{run_dir} already holds a run: add --resume to continue it, or choose another --out"
        )
    created = not run_dir.exists()
    (run_dir / "state").mkdir(parents=True, exist_ok=True)
    (run_dir / "samples").mkdir(exist_ok=True)
    atomic_write_text(run_dir / "config.yaml", to_yaml(config))
    return created


def _architecture(task: Task) -> dict[str, Any]:
    return {
        name: {"class": type(net).__name__, "args": getattr(net, "config", {})}
        for name, net in task.networks().items()
    }


def _trim_metrics(path: Path, step: int) -> None:
    """After a resume, drop metric lines logged past the checkpoint (they will be logged again)."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= step
    ]
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def _save_grid(path: Path, grid: torch.Tensor) -> None:
    from torchvision.utils import save_image

    with atomic_open(path, "wb") as f:
        save_image(grid, f, format="png")


# ── The loop.


def fit(
    task: Task,
    cfg: TrainConfig,
    run_dir: str | Path,
    config: Any,
    resume: bool = False,
    show_progress: bool = True,
    tensorboard: bool = False,
) -> FitResult:
    """Train ``task`` for ``cfg.steps`` (or ``cfg.epochs``) iterations, writing into ``run_dir``.

    Writes ``config.yaml``, ``state/last.pt`` (every ``checkpoint_every`` steps and at the end),
    ``model.safetensors`` + ``model.json`` with each checkpoint, ``samples/step_*.png`` and
    ``metrics.jsonl`` (and, with ``tensorboard``, the same scalars and grids under
    ``tensorboard/``). On SIGINT/SIGTERM the current step finishes, the state is saved and
    :class:`TrainingInterrupted` is raised (exit code 130/143).

    Raises:
        TranslateError: bad input, a mismatched checkpoint, or ``max_nonfinite`` non-finite
            losses in a row (the last good checkpoint is kept).
    """
    run_dir = Path(run_dir)
    n = len(task.dataset)
    world = distributed.WORLD
    per_epoch = (n // world.size) // cfg.batch_size
    if per_epoch == 0:
        raise TranslateError(
            f"the dataset has {n} samples, fewer than train.batch_size={cfg.batch_size}"
            + (f" × {world.size} ranks" if world.active else "")
        )
    total = (cfg.epochs + cfg.epochs_decay) * per_epoch if cfg.epochs else cfg.steps
    precision = Precision(cfg.precision, task.device)
    if tensorboard and world.main:
        summary_writer_class()  # a missing TensorBoard stops the run before anything is written
    # Rank 0 owns the run directory: config, metrics, samples and checkpoints.
    created = start_run(run_dir, config, resume) if world.main else False
    distributed.barrier()
    ckpt_path = run_dir / "state" / "last.pt"
    metrics_path = run_dir / "metrics.jsonl"
    saved_any = resume
    board = None
    try:
        if tensorboard and world.main:
            board = Board(run_dir)
        step, epoch, in_epoch, skipped = 0, 0, 0, 0
        if resume:
            state = load_checkpoint(ckpt_path)
            if state.get("task") != task.name:
                raise TranslateError(
                    f"{ckpt_path} is from task {state.get('task')!r}, not {task.name!r}"
                )
            if state.get("architecture") != _architecture(task):
                raise TranslateError(
                    f"{ckpt_path} was written for other networks than the config builds "
                    f"({state.get('architecture')} vs {_architecture(task)})"
                )
            for name, net in task.networks().items():
                load_module_state(net, state["networks"][name], f"{ckpt_path} ({name})")
            for name, opt in task.optimizers().items():
                opt.load_state_dict(state["optimizers"][name])
            for name, sched in task.schedulers.items():
                sched.load_state_dict(state["schedulers"][name])
            precision.load_state_dict(state["scaler"])
            task.load_extra_state(state.get("extra", {}))
            step, epoch, in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
            skipped = state.get("nonfinite_skipped", 0)
            restore_rng(state["rng"])
            if world.main:
                _trim_metrics(metrics_path, step)
                ui.info(f"resuming {run_dir} at step {step}/{total} (epoch {epoch})")
        # Every rank starts from rank 0's weights (they agree already when seeded alike).
        distributed.broadcast_parameters(list(task.networks().values()))

        def checkpoint() -> None:
            nonlocal saved_any
            if not world.main:
                return
            save_checkpoint(
                ckpt_path,
                {
                    "task": task.name,
                    "architecture": _architecture(task),
                    "config": to_dict(config),
                    "networks": {k: v.state_dict() for k, v in task.networks().items()},
                    "optimizers": {k: v.state_dict() for k, v in task.optimizers().items()},
                    "schedulers": {k: v.state_dict() for k, v in task.schedulers.items()},
                    "scaler": precision.state_dict(),
                    "step": step,
                    "epoch": epoch,
                    "batch_in_epoch": in_epoch,
                    "nonfinite_skipped": skipped,
                    "rng": capture_rng(),
                    "extra": task.extra_state(),
                },
            )
            nets, meta = task.export()
            save_model(run_dir, task.name, nets, meta)
            saved_any = True

        sampler = EpochBatchSampler(
            n, cfg.batch_size, cfg.seed, with_epoch=hasattr(task.dataset, "set_epoch"),
            rank=world.rank, world=world.size,
        )
        loader = DataLoader(
            task.dataset,
            batch_sampler=sampler,
            num_workers=cfg.num_workers,
            collate_fn=task.collate_fn,
            pin_memory=task.device.type == "cuda",
            persistent_workers=cfg.num_workers > 0,
            # Its own generator: creating an iterator must not draw from the global RNG, or a
            # resumed run (which creates one mid-epoch) would diverge from a straight one.
            generator=torch.Generator().manual_seed(cfg.seed),
        )
        sums: dict[str, float] = {}
        count, in_a_row, started = 0, 0, time.perf_counter()
        interval_start, interval_steps = started, 0
        progress = ui.progress_bar()
        bar = progress.add_task(f"train {task.name}", total=total, completed=step, rate="", info="")
        show = show_progress and world.main
        with StopSignals() as stop, progress if show else contextlib.nullcontext():
            while step < total:
                sampler.set_epoch(epoch, in_epoch)
                for batch in loader:
                    try:
                        losses = task.train_step(task.to_device(batch), precision)
                        in_a_row = 0
                    except NonFiniteLoss as e:
                        skipped += 1
                        in_a_row += 1
                        losses = {}
                        if in_a_row >= cfg.max_nonfinite:
                            raise TranslateError(
                                f"{in_a_row} non-finite losses in a row at step {step + 1} ({e}); "
                                f"stopped, the last good checkpoint is kept in {ckpt_path}"
                            ) from None
                    step += 1
                    in_epoch += 1
                    interval_steps += 1
                    for k, v in losses.items():
                        sums[k] = sums.get(k, 0.0) + v
                    count += bool(losses)
                    if world.main and (step % cfg.log_every == 0 or step == total):
                        now = time.perf_counter()
                        rate = interval_steps / max(now - interval_start, 1e-9)
                        record = {
                            "step": step,
                            "epoch": epoch,
                            **{k: v / max(count, 1) for k, v in sums.items()},
                            "lr": task.opt_g.param_groups[0]["lr"],
                            "it_per_s": rate,
                            "nonfinite_skipped": skipped,
                            "time": now - started,
                        }
                        with open(metrics_path, "a", encoding="utf-8") as f:
                            f.write(json.dumps(record) + "\n")
                        if board is not None:
                            board.scalars(record, step)
                        shown = "  ".join(f"{k} {v / max(count, 1):.3f}" for k, v in sums.items())
                        progress.update(bar, info=shown, rate=f"{rate:6.1f} it/s")
                        sums, count, interval_start, interval_steps = {}, 0, now, 0
                    progress.update(bar, completed=step)
                    if world.main and (step % cfg.sample_every == 0 or step == total):
                        grid = task.sample_grid()
                        _save_grid(run_dir / "samples" / f"step_{step:07d}.png", grid)
                        if board is not None:
                            board.grid(grid, step)
                    if step % cfg.checkpoint_every == 0 or step == total:
                        checkpoint()
                    # All ranks stop at the same step, whichever of them got the signal.
                    if distributed.any_rank(stop.received is not None, task.device):
                        checkpoint()
                        signum = stop.received or signal.SIGTERM
                        name = signal.Signals(signum).name
                        raise TrainingInterrupted(
                            f"{name} at step {step}: state saved to {ckpt_path}; "
                            f"continue with --resume",
                            exit_code=128 + signum,
                        )
                    if step >= total:
                        break
                else:  # the epoch ran out (not a break)
                    epoch += 1
                    in_epoch = 0
                    task.end_epoch()
        if world.active:
            _check_ranks_agree(task, run_dir, world)
        return FitResult(
            step=step, epoch=epoch, skipped=skipped, seconds=time.perf_counter() - started
        )
    except BaseException as e:
        # A run that failed before its first checkpoint leaves nothing half-written behind.
        if created and world.main and not saved_any and not isinstance(e, TrainingInterrupted):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        if board is not None:
            board.close()


def _check_ranks_agree(task: Task, run_dir: Path, world: distributed.World) -> None:
    """Gather a fingerprint of every rank's weights; record them in world.json and fail loudly
    if the ranks drifted apart (they must not: all take the same averaged steps)."""
    nets = list(task.networks().values())
    digests = distributed.gather_floats(distributed.parameter_digest(nets), task.device)
    if world.main:
        atomic_write_text(run_dir / "world.json", json.dumps(
            {"world_size": world.size, "parameter_digests": digests}, indent=2) + "\n")
    if len(set(digests)) != 1:
        raise TranslateError(f"ranks ended with different weights: {digests}")

