"""Resuming a run: what its config may change, and the resume itself.

A resumed run is given a config again (its config.yaml and any ``--set``). Every key that differs
from the config stored in the checkpoint either takes effect or is refused by name, never
silently overridden by the loaded state:

* :data:`TAKES_EFFECT` — read afresh from the config at every start (the length, the logging
  intervals, where and how fast it runs; ``train.fast_conv`` too: Winograd convs hold the
  ordinary weights, so a run trained either way continues the other way);
* :data:`OPTIMIZER` — held by the optimizers and schedulers the checkpoint restores, so set on
  them after loading (Adam's rate and betas; with ``train.epochs`` the schedule's base rates);
* ``train.epochs``, except from 0 (a run trained by steps has no schedule to continue); set to
  0, the schedule ends and the run goes on by ``train.steps`` at ``train.lr``;
  ``train.ema`` between two positive decays;
* everything else is refused: ``model.*`` (the networks), ``data.*`` (the data), ``loss.*`` and
  ``train.gan_loss`` (the losses), ``train.batch_size`` (the batches and the position in the
  epoch), ``train.precision``, ``train.seed`` and ``train.channels_last``; so are a schedule
  for a run trained by steps and adding or dropping an EMA.

A change that takes effect is written to config.yaml, stored with the next checkpoint, and
recorded in metrics.jsonl as ``{"step": S, "epoch": E, "changed": {key: [old, new]}}``.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from typing import Any

import torch

from translate import console as ui
from translate.config import TrainConfig, to_dict, to_yaml
from translate.errors import TranslateError
from translate.io.paths import display
from translate.runtime import Precision
from translate.train.checkpoint import Position, check_task, load_checkpoint, restore_state
from translate.train.run import RunFolder

TAKES_EFFECT = frozenset({
    "train.steps", "train.epochs_decay", "train.log_every", "train.sample_every",
    "train.checkpoint_every", "train.max_nonfinite", "train.device", "train.num_workers",
    "train.compile", "train.fast_conv",
})
OPTIMIZER = frozenset({"train.lr", "train.beta1", "train.beta2"})
REFUSED_BECAUSE = {  # by key, then by section
    "model": "it changes the networks",
    "data": "it changes the training data",
    "loss": "it changes the losses",
    "train.gan_loss": "it changes the losses",
    "train.batch_size": "it changes the batches and the position in the epoch",
    "train.precision": "it changes the arithmetic and the saved GradScaler",
    "train.seed": "it changes the data order and every random draw",
    "train.channels_last": "it changes the memory format of the saved state",
}


def _flat(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", list(value) if isinstance(value, tuple) else value


def config_changes(saved: dict[str, Any], config: Any) -> dict[str, tuple[Any, Any]]:
    """``key → (saved value, new value)`` for every key the two configs both hold and differ in
    (a key the saved config lacks came with a newer version: there is nothing to compare)."""
    old = dict(_flat(saved))
    return {key: (old[key], value) for key, value in _flat(to_dict(config))
            if key in old and old[key] != value}


def refusal(key: str, old: Any, new: Any) -> str | None:
    """Why a resumed run cannot change ``key`` from ``old`` to ``new``; None if it can."""
    if key in TAKES_EFFECT or key in OPTIMIZER:
        return None
    if key == "train.epochs":
        if old or not new:  # a new length, or the schedule ends (train.lr from here)
            return None
        return "the run was trained by steps: its checkpoint holds no learning-rate schedule"
    if key == "train.ema":
        return None if old and new else "an EMA cannot be added to or dropped from a run"
    return (REFUSED_BECAUSE.get(key) or REFUSED_BECAUSE.get(key.split(".")[0])
            or "it changes the run mid-way")


def check_changes(changes: dict[str, tuple[Any, Any]]) -> None:
    """Refuse, in one line naming each key, the changes a resumed run cannot take."""
    refused = [f"{key} ({old} → {new}: {why})" for key, (old, new) in changes.items()
               if (why := refusal(key, old, new)) is not None]
    if refused:
        raise TranslateError(f"a resumed run cannot change {'; '.join(refused)}: train a new "
                             "run (another --out) to change them")


def apply_changes(task: Any, changed: Collection[str], cfg: TrainConfig) -> None:
    """Set the changed optimizer keys on the optimizers and schedulers just loaded, which hold
    the saved values; the rate of the current epoch follows a changed schedule at once."""
    optimizers = task.optimizers()
    if {"train.beta1", "train.beta2"} & set(changed):
        for opt in optimizers.values():
            for group in opt.param_groups:
                group["betas"] = (cfg.beta1, cfg.beta2)
    if "train.lr" in changed or ("train.epochs" in changed and not cfg.epochs):
        for name, opt in optimizers.items():
            for group in opt.param_groups:
                group["lr"] = cfg.lr
                if "initial_lr" in group:  # a scheduler's starting rate
                    group["initial_lr"] = cfg.lr
            if name in task.schedulers:
                task.schedulers[name].base_lrs = [cfg.lr] * len(opt.param_groups)
    if {"train.lr", "train.epochs", "train.epochs_decay"} & set(changed):
        for name, sched in task.schedulers.items():
            groups = optimizers[name].param_groups
            for group, base, factor in zip(groups, sched.base_lrs, sched.lr_lambdas, strict=True):
                group["lr"] = base * factor(sched.last_epoch)
            sched._last_lr = [group["lr"] for group in groups]  # what get_last_lr() reports


def _length(cfg: TrainConfig, total: int) -> str:
    if cfg.epochs:
        return (f"the {total} steps of train.epochs={cfg.epochs} + "
                f"train.epochs_decay={cfg.epochs_decay}")
    return f"train.steps={total}"


def keep_trained_precision(precision: Precision, trained_at: str | None) -> None:
    """A run with ``train.precision: auto`` continues at what it was trained at: ``auto``
    measures the CPU (``runtime.choose_cpu_precision``), and a busy or other machine may choose
    otherwise, which would change the arithmetic halfway (and break the exact resume). A
    precision asked for by name cannot differ: changing ``train.precision`` is refused."""
    if trained_at is None or not precision.chosen or trained_at == precision.name:
        return
    now = precision.name
    precision.__init__(trained_at, precision.device)
    precision.chosen = True
    precision.reason = (f"auto: the checkpoint's, as the run was trained (auto would choose "
                        f"{now} now)")
    ui.info(f"precision: {trained_at} ({precision.reason})")


def keep_trained_threads(trained_with: int | None) -> None:
    """A resumed run computes on as many threads as it was trained with: ATen splits a
    reduction (BatchNorm's, for one) by the thread count, which decides its rounding. Where
    ``$OMP_NUM_THREADS`` names a count, it is kept, with a warning."""
    now = torch.get_num_threads()
    if not trained_with or trained_with == now:
        return
    if os.environ.get("OMP_NUM_THREADS"):
        ui.warn(f"threads: {now} ($OMP_NUM_THREADS) where the run was trained on {trained_with}:"
                " the weights may part from an uninterrupted run's in the last bits")
        return
    torch.set_num_threads(trained_with)
    ui.info(f"threads: {trained_with} (the checkpoint's, as the run was trained; {now} "
            "otherwise)")


def resume(run: RunFolder, task: Any, precision: Precision, config: Any, total: int,
           main: bool) -> Position:
    """Continue ``run`` from its checkpoint with ``config``: check and apply the changed keys,
    load the state, and (``main``: the rank that owns the folder) trim metrics.jsonl to the
    checkpoint and record the changes.

    Returns:
        The checkpoint's position.

    Raises:
        TranslateError: another task's checkpoint, a refused change (each key named), other
            networks, or a checkpoint already past the run's length.
    """
    state = load_checkpoint(run.checkpoint)
    check_task(state, task.name, run.checkpoint)
    changes = config_changes(state.get("config", {}), config)
    check_changes(changes)
    keep_trained_precision(precision, state.get("precision"))
    keep_trained_threads(state.get("threads"))
    if not {"train.fast_conv", "train.device"} & set(changes):
        said = task.keep_conv_choices(state.get("conv_choices"))
        if said:
            ui.info(f"convs: {said}")
    pos = restore_state(task, precision, state, run.checkpoint)
    apply_changes(task, changes, config.train)
    if pos.step > total:
        raise TranslateError(
            f"{display(run.checkpoint)} is at step {pos.step}, past {_length(config.train, total)}:"
            f" raise the length above {pos.step} steps to continue")
    if main:
        run.trim_metrics(pos.step)
        if changes:
            run.append_metrics({"step": pos.step, "epoch": pos.epoch,
                                "changed": {k: [old, new] for k, (old, new) in changes.items()}})
            run.write_text(run.config, to_yaml(config))
            ui.info("changed on resume: " + ", ".join(
                f"{k} {old} → {new}" for k, (old, new) in changes.items()))
        ui.info(f"resuming {display(run.path)} at step {pos.step}/{total} (epoch {pos.epoch})")
    return pos
