"""The adversarial core: one implementation of the seed's alternating scheme for every GAN here.

Each iteration is (单独交替迭代训练, alternating separate training):

1. **D step**: the generator's outputs are detached; real samples are labelled 1 and fakes 0;
   only D's optimizer steps. A plain supervised binary classification.
2. **G step**: D is frozen (``requires_grad_(False)``), fakes are labelled 1 to fool it, the error
   flows through D into G, and only G's optimizer steps.

A task supplies its networks and losses through :class:`AdversarialTask`; the MLP GAN, CycleGAN,
super-resolution and inpainting differ only in those. A task without a discriminator (the VAE)
runs the G step alone. Mixed precision is :class:`translate.runtime.Precision`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

from translate.errors import TranslateError
from translate.runtime import Precision
from translate.train import distributed

# ── GAN losses, chosen by name. Discriminators return logits, never probabilities, so every
# loss below is safe under autocast (BCE-with-logits is; BCE on sigmoid outputs is not).


def d_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator loss: real → 1, fake → 0 (the seed's D step), per loss family.

    Returns the *sum* of the real and fake terms; tasks scale it (CycleGAN halves it).
    """
    real, fake = real_logits.float(), fake_logits.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(
            real, torch.ones_like(real)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    if kind == "lsgan":  # Mao et al. 2017: least squares to targets 1 and 0
        return F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake))
    if kind == "hinge":  # Lim & Ye 2017 / Miyato et al. 2018
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "ragan":  # relativistic average (Jolicoeur-Martineau 2018; ESRGAN Eqn. 2)
        return F.binary_cross_entropy_with_logits(
            real - fake.mean(), torch.ones_like(real)
        ) + F.binary_cross_entropy_with_logits(fake - real.mean(), torch.zeros_like(fake))
    raise TranslateError(f"unknown GAN loss {kind!r}: one of bce, lsgan, hinge, ragan")


def g_loss(
    kind: str, fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None
) -> torch.Tensor:
    """Generator loss: fakes labelled 1 (to fool D). ``real_logits`` is needed by ``ragan`` only."""
    fake = fake_logits.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind == "lsgan":
        return F.mse_loss(fake, torch.ones_like(fake))
    if kind == "hinge":
        return -fake.mean()
    if kind == "ragan":
        if real_logits is None:
            raise ValueError("the relativistic loss needs the real logits in the G step")
        real = real_logits.float()
        return F.binary_cross_entropy_with_logits(
            real - fake.mean(), torch.zeros_like(real)
        ) + F.binary_cross_entropy_with_logits(fake - real.mean(), torch.ones_like(fake))
    raise TranslateError(f"unknown GAN loss {kind!r}: one of bce, lsgan, hinge, ragan")


def generator_adv_loss(kind: str, judge: Callable[[torch.Tensor], torch.Tensor],
                       fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """G's adversarial loss through the (frozen) discriminator ``judge``, fakes labelled 1.

    D looks at the real batch as well only where the loss is relative to it (``ragan``).
    """
    return g_loss(kind, judge(fake), judge(real) if kind == "ragan" else None)


# ── The step.


class NonFiniteLoss(ArithmeticError):
    """A loss, or the gradients of a finite loss, was NaN or infinite; that update was skipped."""

    def __init__(self, losses: dict[str, float], what: str = "loss"):
        self.losses = losses
        shown = ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
        super().__init__(f"non-finite {what} ({shown})")


class AdversarialTask(Protocol):
    """What a task gives the core. ``discriminators`` empty means G step only (the VAE)."""

    generators: list[nn.Module]
    discriminators: list[nn.Module]
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None

    def generate(self, batch: Any) -> Any:
        """G forward pass; the result is kept (with its graph) for the G step."""

    def discriminator_losses(self, batch: Any, fakes: Any) -> dict[str, torch.Tensor]:
        """Named D losses given *detached* fakes; their sum is minimised by D's optimizer."""

    def generator_losses(self, batch: Any, fakes: Any) -> dict[str, torch.Tensor]:
        """Named G losses (adversarial through the frozen D plus task terms)."""


def detach(fakes: Any) -> Any:
    """Detach a tensor or every tensor in a dict/tuple/list of them."""
    if isinstance(fakes, torch.Tensor):
        return fakes.detach()
    if isinstance(fakes, dict):
        return {k: detach(v) for k, v in fakes.items()}
    if isinstance(fakes, (tuple, list)):
        return type(fakes)(detach(v) for v in fakes)
    return fakes


@contextlib.contextmanager
def frozen(modules: Iterable[nn.Module]) -> Iterator[None]:
    """``requires_grad_(False)`` on every parameter of ``modules`` for the block, then restore.

    Gradients still flow *through* the frozen networks into the generator.
    """
    params = [p for m in modules for p in m.parameters()]
    saved = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, saved, strict=True):
            p.requires_grad_(flag)


def _optimize(
    losses: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, precision: Precision
) -> dict[str, float]:
    """Backward of the summed ``losses``, then one optimizer step unless the loss or (fp32 and
    bf16) a gradient is not finite.

    The named values and both checks come back to the host in one transfer: a GPU waits for the
    host once per optimizer step, not once per loss and check. The backward runs before the
    loss is known to be finite; a non-finite one only has its gradients dropped, so no update
    is applied, as when it was checked first.
    """
    total = sum(losses.values())
    optimizer.zero_grad(set_to_none=True)
    precision.backward(total)
    distributed.average_gradients(optimizer)  # no-op in a single process
    # bad = [loss not finite, gradients not finite], summed over ranks so that every rank skips
    # (or takes) the same updates. A finite loss can still give NaN/inf gradients (e.g. a
    # faulty low-precision kernel); fp16's GradScaler skips those updates itself.
    loss_bad = ~torch.isfinite(total.detach())
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if grads and not precision.scaler.is_enabled():
        grads_bad = ~torch.stack([torch.isfinite(g).all() for g in grads]).all()
    else:
        grads_bad = torch.zeros_like(loss_bad)
    bad = distributed.sum_across_ranks(torch.stack([loss_bad, grads_bad]).float())
    named = torch.stack([v.detach().float().reshape(()) for v in losses.values()])
    host = torch.cat([bad.to(named.device), named]).tolist()  # the one host sync
    values = dict(zip(losses, host[2:], strict=True))
    if host[0] or host[1]:
        optimizer.zero_grad(set_to_none=True)
        raise NonFiniteLoss(values, what="loss" if host[0] else "gradients")
    precision.step(optimizer)
    return values


def adversarial_step(task: AdversarialTask, batch: Any, precision: Precision) -> dict[str, float]:
    """One alternating iteration: the D step, then the G step. Returns the named losses.

    Raises:
        NonFiniteLoss: a loss was not finite; the update it belonged to was skipped (if the D
            loss was the culprit, the G step is skipped too).
    """
    try:
        with precision.autocast():
            fakes = task.generate(batch)
        logs: dict[str, float] = {}
        if task.discriminators:
            # D step: fakes detached, real → 1 / fake → 0 inside the task's loss; only opt_d steps.
            with precision.autocast():
                d_losses = task.discriminator_losses(batch, detach(fakes))
            logs |= _optimize(d_losses, task.opt_d, precision)
        # G step: D frozen, fakes labelled 1; the error flows through D into G; only opt_g steps.
        with frozen(task.discriminators):
            with precision.autocast():
                g_losses = task.generator_losses(batch, fakes)
            logs |= _optimize(g_losses, task.opt_g, precision)
        return logs
    finally:
        precision.update()
