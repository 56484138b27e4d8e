"""The training loop every task shares: steps/epochs, progress, metrics, samples, checkpoints.

The loop knows nothing about GANs; a :class:`Task` gives it a dataset, a ``train_step`` (the
adversarial core's ``adversarial_step`` by default) and what to save. It owns the things that
must be right once: exact resume, atomic checkpoints, signals and non-finite losses.
"""

from __future__ import annotations

import contextlib
import copy
import json
import signal
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from translate import runtime
from translate.config import TrainConfig
from translate.errors import TranslateError
from translate.nets import winograd
from translate.runtime import Precision, World
from translate.signals import StopSignals
from translate.train import distributed
from translate.train.adversarial import NonFiniteLoss, adversarial_step
from translate.train.board import summary_writer_class
from translate.train.checkpoint import Position, capture_rng, save_state
from translate.train.resume import resume as resume_run
from translate.train.run import MetricsLog, RunFolder


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
        # Multi-tensor ops: one kernel launch per group of tensors on a GPU, not one per tensor
        # (the CPU runs them one tensor at a time, as lerp_ / copy_ did).
        averages, params = list(self.model.parameters()), list(self.net.parameters())
        if len(averages) != len(params):
            raise ValueError("the EMA copy no longer matches its network's parameters")
        if averages:
            torch._foreach_lerp_(averages, [p.detach() for p in params], 1.0 - self.decay)
        buffers, sources = list(self.model.buffers()), list(self.net.buffers())
        if len(buffers) != len(sources):
            raise ValueError("the EMA copy no longer matches its network's buffers")
        if buffers:
            torch._foreach_copy_(buffers, sources)


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
        schedulers: stepped once at the end of every epoch (:meth:`make_schedulers`).
        memory_format: of the conv networks and their image inputs (:meth:`use_channels_last`).
        precision: chosen with the networks (:meth:`use_fast_conv`), which ``fit`` runs at;
            None: ``fit`` makes it from ``train.precision``.
        fast_conv: how many convs may compute by Winograd (:meth:`use_fast_conv`); of the
            networks ``fast_conv_nets``, :meth:`winograd_convs` counts those that did.
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
    memory_format: torch.memory_format = torch.contiguous_format
    precision: Precision | None = None
    fast_conv: int = 0
    fast_conv_nets: tuple[nn.Module, ...] = ()
    conv_nets: tuple[nn.Module, ...] = ()  # the networks whose convs Winograd may compute

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

    def make_schedulers(self, cfg: TrainConfig) -> None:
        """``train.epochs`` > 0: every optimizer's rate stays constant for ``epochs``, then falls
        linearly to 0 over ``epochs_decay`` (:func:`linear_decay`, stepped by :meth:`end_epoch`
        and saved in checkpoints). Call once the optimizers exist."""
        self.schedulers = {
            name: linear_decay(opt, cfg.epochs, cfg.epochs_decay)
            for name, opt in self.optimizers().items()
        } if cfg.epochs else {}

    def use_channels_last(self, enabled: bool, *nets: nn.Module) -> None:
        """``train.channels_last``: NHWC weights for ``nets`` (conv networks; call before
        :meth:`make_emas` so the averages follow); :meth:`in_memory_format` does the inputs."""
        self.memory_format = torch.channels_last if enabled else torch.contiguous_format
        for net in nets:
            net.to(memory_format=self.memory_format)

    def use_fast_conv(self, cfg: TrainConfig, *nets: nn.Module) -> None:
        """``train.fast_conv`` and ``train.precision`` together, for conv networks (call before
        the optimizers and EMAs are made): the precision (``auto`` on a CPU compares bf16 with
        fp32 as these networks would run it), then, where fp32 runs on a CPU, the 3x3
        stride-1 convs with at least :data:`FAST_CONV_MIN_CHANNELS` channels compute by
        Winograd F(4x4, 3x3) (:func:`translate.nets.winograd.fast_training`: same parameters,
        same files) if ``train.fast_conv`` is true, or it is null and the micro-benchmark
        measured them faster on this CPU (``Precision.winograd``).

        Raises:
            TranslateError: ``train.fast_conv`` true on a GPU.
        """
        cpu = self.device.type == "cpu"
        if cfg.fast_conv and not cpu:
            raise TranslateError(
                f"config key 'train.fast_conv': true is a CPU path; on {self.device} cuDNN "
                "chooses its own conv algorithms (leave it null or set it false)")
        convs = [c for net in nets for c in winograd.training_convs(net, FAST_CONV_MIN_CHANNELS)]
        allowed = cpu and cfg.fast_conv is not False and bool(convs)
        self.conv_nets = nets if allowed else ()
        # train.fast_conv=true needs no measurement: the convs are converted whatever it says.
        self.precision = Precision("fp32" if cfg.fast_conv and cfg.precision == "auto"
                                   else cfg.precision, self.device, measure=True,
                                   winograd=allowed and cfg.fast_conv is None)
        if cfg.fast_conv and cfg.precision == "auto":
            self.precision.chosen = True
            self.precision.reason = "auto: fp32, which train.fast_conv=true computes at"
        # Under torchrun every rank computes as rank 0 measured (ranks may measure differently).
        name, reason = runtime.gather_objects((self.precision.name, self.precision.reason))[0]
        if name != self.precision.name:
            self.precision = Precision(name, self.device)
            self.precision.chosen, self.precision.reason = True, f"{reason} (rank 0's choice)"
        # … and computes its convs alike
        self.precision.winograd = runtime.gather_objects(self.precision.winograd)[0]
        if allowed and self.precision.name == "fp32" and (cfg.fast_conv or
                                                          self.precision.winograd):
            # null on a CPU that measures: each conv also asks, once per input shape, whether
            # Winograd pays there (the representative conv's gain is not a small map's)
            decide = (None if cfg.fast_conv or runtime.cpu_precision_pinned()
                      else runtime.winograd_pays)
            self.fast_conv = sum(winograd.fast_training(net, FAST_CONV_MIN_CHANNELS, decide)
                                 for net in nets)
            self.fast_conv_nets = nets

    def conv_choices(self) -> dict[str, Any]:
        """How this run's convs compute, for its checkpoint: converted to Winograd or not,
        whether each input shape is decided by measurement, and every decision so far."""
        decided = any(c.winograd_decide is not None for net in self.fast_conv_nets
                      for c in net.modules() if isinstance(c, winograd.WinogradTrainConv2d))
        return {"winograd": bool(self.fast_conv), "measured": decided,
                "shapes": [[i, *choice] for i, net in enumerate(self.fast_conv_nets)
                           for choice in winograd.shape_choices(net)]}

    def keep_conv_choices(self, saved: dict[str, Any] | None) -> str | None:
        """Compute the convs as the checkpoint's :meth:`conv_choices` say, not as this process
        measured: the measurements depend on the machine's load, and another choice changes
        the rounding halfway (an inexact resume). Returns what changed, in words, or None.

        Not for a run whose ``train.fast_conv`` or device changed on resume (the change takes
        effect), nor for a checkpoint written before choices were kept.
        """
        if not saved or not self.conv_nets:
            return None
        was, now = bool(saved.get("winograd")), bool(self.fast_conv)
        if was and not now:
            self.fast_conv = sum(winograd.fast_training(net, FAST_CONV_MIN_CHANNELS)
                                 for net in self.conv_nets)
            self.fast_conv_nets = self.conv_nets
        elif now and not was:
            for net in self.fast_conv_nets:
                winograd.plain_training(net)
            self.fast_conv, self.fast_conv_nets = 0, ()
        decide = runtime.winograd_pays if saved.get("measured") else None
        for i, net in enumerate(self.fast_conv_nets):
            winograd.keep_shape_choices(net, decide,
                                        [c[1:] for c in saved.get("shapes", []) if c[0] == i])
        if was == now:
            return None
        return ("Winograd convs on" if was else "Winograd convs off") + (
            " (the checkpoint's, as the run was trained; this process measured otherwise)")

    def winograd_convs(self) -> int:
        """How many convs computed some input by Winograd (each shape decided at its first
        step where ``train.fast_conv`` is null; all converted ones where it is true)."""
        return sum(winograd.winograd_in_use(net) for net in self.fast_conv_nets)

    def in_memory_format(self, batch: dict[str, Any], *keys: str) -> dict[str, Any]:
        """The batch with its image tensors ``keys`` in :attr:`memory_format`."""
        for key in keys:
            batch[key] = batch[key].contiguous(memory_format=self.memory_format)
        return batch

    def end_epoch(self) -> None:
        with warnings.catch_warnings():
            # A network whose loss weight is 0 (pix2pix's D with loss.adversarial=0) is never
            # stepped, so torch warns that its schedule moves first; it moves on purpose, to
            # keep every rate on the same epoch.
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step",
                                    category=UserWarning)
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


# Narrower convs stay direct: there the transforms' memory traffic costs what the saved
# multiplications gain (docs/BENCHMARKS.md, the inference measurements).
FAST_CONV_MIN_CHANNELS = 128


def linear_decay(optimizer: torch.optim.Optimizer, epochs: int, epochs_decay: int
                 ) -> torch.optim.lr_scheduler.LambdaLR:
    """Constant rate for ``epochs``, then linearly towards 0 over ``epochs_decay`` (stepped once
    per epoch), as the CycleGAN reference's ``linear`` policy:
    factor(e) = 1 − max(0, e + 1 − epochs) / (epochs_decay + 1)."""

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def maybe_compile(fn: Callable, enabled: bool) -> Callable:
    """``train.compile``: ``torch.compile(fn)`` (a module or a bound method), else ``fn`` itself.

    Tasks run their forward passes through what this returns and keep the plain modules for
    state, samples and export, so checkpoints never hold compiled-wrapper keys.
    """
    return torch.compile(fn) if enabled else fn


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
    precision: str = "fp32"  # what the run computed at …
    precision_reason: str = ""  # … and why (``auto``'s choice, or "asked for by name")


# ── The loop's parts.


def batches_per_epoch(n: int, batch_size: int, world: World) -> int:
    """Full batches each rank takes from ``n`` samples per epoch (drop_last).

    Raises:
        TranslateError: not one batch.
    """
    per_epoch = (n // world.size) // batch_size
    if per_epoch == 0:
        raise TranslateError(
            f"the dataset has {n} samples, fewer than train.batch_size={batch_size}"
            + (f" × {world.size} ranks" if world.active else "")
        )
    return per_epoch


def run_length(cfg: TrainConfig, per_epoch: int) -> int:
    """The run's length in steps: ``train.steps``, or its epochs' batches."""
    return (cfg.epochs + cfg.epochs_decay) * per_epoch if cfg.epochs else cfg.steps


def make_loader(task: Task, cfg: TrainConfig, world: World) -> tuple[EpochBatchSampler, DataLoader]:
    """This rank's sampler (set its epoch and start before iterating) and the loader over it."""
    sampler = EpochBatchSampler(
        len(task.dataset), cfg.batch_size, cfg.seed, with_epoch=hasattr(task.dataset, "set_epoch"),
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
    return sampler, loader


class NonFiniteGuard:
    """Runs a step; a non-finite loss skips it (counted in ``pos.skipped``), and ``limit`` of
    them in a row stop the run (the last good checkpoint, ``checkpoint``, is kept)."""

    def __init__(self, limit: int, checkpoint: Path):
        self.limit, self.checkpoint, self.in_a_row = limit, checkpoint, 0

    def step(self, task: Task, batch: Any, precision: Precision, pos: Position) -> dict[str, float]:
        """The step's losses, or ``{}`` when it was skipped."""
        try:
            losses = task.train_step(task.to_device(batch), precision)
        except NonFiniteLoss as e:
            pos.skipped += 1
            self.in_a_row += 1
            if self.in_a_row >= self.limit:
                raise TranslateError(
                    f"{self.in_a_row} non-finite losses in a row at step {pos.step + 1} ({e}); "
                    f"stopped, the last good checkpoint is kept in {self.checkpoint}"
                ) from None
            return {}
        self.in_a_row = 0
        return losses


def due(step: int, every: int, total: int) -> bool:
    """Every ``every`` steps, and at the last one."""
    return step % every == 0 or step == total


def save(run: RunFolder, task: Task, precision: Precision, config: Any, pos: Position,
         main: bool) -> None:
    """Checkpoint and model files, written by rank 0 (the ranks hold the same weights); under
    torchrun every rank calls this, handing rank 0 its RNG states to store beside its own."""
    rng_ranks = runtime.gather_objects(capture_rng()) if runtime.WORLD.active else None
    if main:
        run.save(save_state(task, precision, config, pos, rng_ranks), task)


def interrupted(signum: int | None, step: int, checkpoint: Path) -> TrainingInterrupted:
    signum = signum or signal.SIGTERM
    return TrainingInterrupted(
        f"{signal.Signals(signum).name} at step {step}: state saved to {checkpoint}; "
        f"continue with --resume",
        exit_code=128 + signum,
    )


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
    ``tensorboard/``); holds the folder's lock meanwhile (:class:`RunFolder`). ``resume``
    continues from the checkpoint with ``config`` (:func:`translate.train.resume.resume`). On
    SIGINT/SIGTERM the current step finishes, the state is saved and
    :class:`TrainingInterrupted` is raised (exit code 130/143).

    Raises:
        TranslateError: bad input, a folder in use or not writable, a mismatched checkpoint or
            refused change, or ``max_nonfinite`` non-finite losses in a row (the last good
            checkpoint is kept).
    """
    world = runtime.WORLD
    total = run_length(cfg, batches_per_epoch(len(task.dataset), cfg.batch_size, world))
    precision = task.precision or Precision(cfg.precision, task.device)
    if tensorboard and world.main:
        summary_writer_class()  # a missing TensorBoard stops the run before anything is written
    run = RunFolder(run_dir)
    # Rank 0 owns the run folder: its lock, config, metrics, samples and checkpoints.
    with run.open(config, resume) if world.main else contextlib.nullcontext():
        runtime.barrier()
        pos = resume_run(run, task, precision, config, total, world.main) if resume else Position()
        # Every rank starts from rank 0's weights (they agree already when seeded alike).
        distributed.broadcast_parameters(list(task.networks().values()))
        sampler, loader = make_loader(task, cfg, world)
        guard = NonFiniteGuard(cfg.max_nonfinite, run.checkpoint)
        log = MetricsLog(run, f"train {task.name}", total, pos.step,
                         show=show_progress and world.main, tensorboard=tensorboard and world.main)
        with StopSignals() as stop, log:
            while pos.step < total:
                sampler.set_epoch(pos.epoch, pos.batch_in_epoch)
                for batch in loader:
                    log.add(guard.step(task, batch, precision, pos))
                    pos.step += 1
                    pos.batch_in_epoch += 1
                    if world.main and due(pos.step, cfg.log_every, total):
                        log.write(pos.step, pos.epoch, task.opt_g.param_groups[0]["lr"],
                                  pos.skipped)
                    log.advance(pos.step)
                    if world.main and due(pos.step, cfg.sample_every, total):
                        grid = task.sample_grid()
                        run.save_sample(grid, pos.step)
                        log.grid(grid, pos.step)
                    if due(pos.step, cfg.checkpoint_every, total):
                        save(run, task, precision, config, pos, world.main)
                    # All ranks stop at the same step, whichever of them got the signal.
                    if distributed.any_rank(stop.received is not None, task.device):
                        save(run, task, precision, config, pos, world.main)
                        raise interrupted(stop.received, pos.step, run.checkpoint)
                    if pos.step >= total:
                        break
                else:  # the epoch ran out (not a break)
                    pos.epoch += 1
                    pos.batch_in_epoch = 0
                    task.end_epoch()
        if world.active:
            _check_ranks_agree(task, run, world)
        return FitResult(step=pos.step, epoch=pos.epoch, skipped=pos.skipped,
                         seconds=time.perf_counter() - log.started, precision=precision.name,
                         precision_reason=precision.reason)


def _check_ranks_agree(task: Task, run: RunFolder, world: World) -> None:
    """Gather a fingerprint of every rank's weights; record them in world.json and fail loudly
    if the ranks drifted apart (they must not: all take the same averaged steps)."""
    nets = list(task.networks().values())
    digests = distributed.gather_floats(distributed.parameter_digest(nets), task.device)
    if world.main:
        run.write_text(run.path / "world.json", json.dumps(
            {"world_size": world.size, "parameter_digests": digests}, indent=2) + "\n")
    if len(set(digests)) != 1:
        raise TranslateError(f"ranks ended with different weights: {digests}")

