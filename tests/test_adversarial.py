"""The adversarial core: loss directions, the alternating D/G steps, precision, NaN losses."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import ToyTask
from torch import nn

from translate.errors import TranslateError
from translate.runtime import Precision
from translate.train.adversarial import (
    NonFiniteLoss,
    adversarial_step,
    d_loss,
    frozen,
    g_loss,
    generator_adv_loss,
)

BIG = torch.full((8, 1), 20.0)


@pytest.mark.parametrize("kind", ["bce", "lsgan", "hinge", "ragan"])
def test_d_loss_is_small_when_d_labels_real_1_and_fake_0(kind: str) -> None:
    good = d_loss(
        kind,
        real_logits=BIG if kind != "lsgan" else torch.ones(8, 1),
        fake_logits=-BIG if kind != "lsgan" else torch.zeros(8, 1),
    )
    bad = d_loss(
        kind,
        real_logits=-BIG if kind != "lsgan" else torch.zeros(8, 1),
        fake_logits=BIG if kind != "lsgan" else torch.ones(8, 1),
    )
    assert float(good) < 1e-6
    assert float(bad) > 1.0


@pytest.mark.parametrize("kind", ["bce", "lsgan", "hinge"])
def test_g_loss_rewards_fakes_that_d_calls_real(kind: str) -> None:
    fooled = g_loss(kind, BIG if kind != "lsgan" else torch.ones(8, 1))
    caught = g_loss(kind, -BIG if kind != "lsgan" else torch.zeros(8, 1))
    assert float(fooled) < float(caught)
    if kind != "hinge":
        assert float(fooled) < 1e-6


def test_loss_values_by_hand() -> None:
    zero = torch.zeros(4, 1)
    assert float(d_loss("bce", zero, zero)) == pytest.approx(2 * math.log(2), rel=1e-6)
    assert float(g_loss("bce", zero)) == pytest.approx(math.log(2), rel=1e-6)
    assert float(d_loss("lsgan", zero, zero)) == pytest.approx(1.0)
    assert float(d_loss("hinge", zero, zero)) == pytest.approx(2.0)
    assert float(g_loss("hinge", torch.tensor([[1.0], [3.0]]))) == pytest.approx(-2.0)


def test_unknown_loss_names_itself() -> None:
    with pytest.raises(TranslateError, match="unknown GAN loss 'wgan'"):
        d_loss("wgan", BIG, BIG)


@pytest.mark.parametrize("kind", ["bce", "lsgan", "hinge", "ragan"])
def test_generator_adv_loss_shows_d_the_real_batch_only_for_ragan(kind: str) -> None:
    seen: list[torch.Tensor] = []

    def judge(x: torch.Tensor) -> torch.Tensor:
        seen.append(x)
        return x.sum(dim=1, keepdim=True)

    fake, real = torch.randn(4, 3), torch.randn(4, 3) + 2
    loss = generator_adv_loss(kind, judge, fake, real)
    if kind == "ragan":
        assert [t is real for t in seen] == [False, True]
        expected = g_loss("ragan", fake.sum(1, keepdim=True), real.sum(1, keepdim=True))
    else:
        assert len(seen) == 1 and seen[0] is fake
        expected = g_loss(kind, fake.sum(1, keepdim=True))
    assert float(loss) == pytest.approx(float(expected))


def test_alternating_step_updates_d_then_g_and_only_each_own_network() -> None:
    task = ToyTask()
    g0, d0 = task.G.weight.detach().clone(), task.D.weight.detach().clone()
    logs = adversarial_step(task, torch.randn(16, 4) + 3, Precision("fp32", torch.device("cpu")))
    assert set(logs) == {"d", "g"}
    # D step: fakes detached, G untouched so far; D already updated when the G step ran.
    assert task.seen["fake_requires_grad_in_d_step"] is False
    assert torch.equal(task.seen["g_weight_at_d_step"], g0)
    assert not torch.equal(task.seen["d_weight_at_g_step"], d0)
    # G step: D frozen, and its weights are not changed by the G step.
    assert task.seen["d_requires_grad_in_g_step"] is False
    assert torch.equal(task.D.weight, task.seen["d_weight_at_g_step"])
    assert not torch.equal(task.G.weight, g0)
    assert all(p.requires_grad for p in task.D.parameters())  # unfrozen afterwards


@pytest.mark.slow
def test_d_step_alone_learns_real_1_fake_0() -> None:
    task = ToyTask(lr_g=0.0, lr_d=0.2)
    real = torch.randn(64, 4) + 3
    precision = Precision("fp32", torch.device("cpu"))
    first = adversarial_step(task, real, precision)["d"]
    for _ in range(200):
        last = adversarial_step(task, real, precision)["d"]
    assert first > 0.5 and last < 0.1


def test_g_step_alone_learns_to_fool_a_fixed_d() -> None:
    task = ToyTask(lr_g=0.2, lr_d=0.0)
    with torch.no_grad():
        task.D.weight.fill_(1.0)
        task.D.bias.zero_()
    precision = Precision("fp32", torch.device("cpu"))
    first = adversarial_step(task, torch.zeros(64, 4), precision)["g"]
    for _ in range(60):
        last = adversarial_step(task, torch.zeros(64, 4), precision)["g"]
    assert first > 0.5 and last < 0.05


@pytest.mark.parametrize("which", ["nan_d", "nan_g"])
def test_non_finite_loss_raises_and_skips_the_update(which: str) -> None:
    task = ToyTask(**{which: True})
    d0, g0 = task.D.weight.detach().clone(), task.G.weight.detach().clone()
    with pytest.raises(NonFiniteLoss, match="non-finite loss"):
        adversarial_step(task, torch.randn(8, 4), Precision("fp32", torch.device("cpu")))
    assert torch.equal(task.G.weight, g0)
    if which == "nan_d":
        assert torch.equal(task.D.weight, d0)  # the G step never ran either
    assert all(p.requires_grad for p in task.D.parameters())


def test_frozen_restores_flags_even_on_error() -> None:
    net = nn.Linear(2, 2)
    net.bias.requires_grad_(False)
    with pytest.raises(RuntimeError), frozen([net]):
        assert not any(p.requires_grad for p in net.parameters())
        raise RuntimeError
    assert net.weight.requires_grad and not net.bias.requires_grad


def test_precision_auto_is_fp32_on_cpu_and_names_are_checked() -> None:
    cpu = torch.device("cpu")
    assert Precision("auto", cpu).name == "fp32"
    assert not Precision("bf16", cpu).scaler.is_enabled()
    assert Precision("fp16", cpu).scaler.is_enabled()
    with pytest.raises(TranslateError, match="unknown precision 'fp8'"):
        Precision("fp8", cpu)


@pytest.mark.parametrize("name,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_low_precision_step_runs_under_autocast_on_cpu(name: str, dtype: torch.dtype) -> None:
    task = ToyTask()
    seen = {}
    generate = task.generate

    def spy(real):
        out = generate(real)
        seen["dtype"] = out.dtype
        return out

    task.generate = spy
    precision = Precision(name, torch.device("cpu"))
    logs = adversarial_step(task, torch.randn(16, 4), precision)
    assert seen["dtype"] == dtype
    assert all(math.isfinite(v) for v in logs.values())
    assert all(p.dtype == torch.float32 for p in task.G.parameters())  # master weights stay fp32
    if name == "fp16":
        assert precision.state_dict()["scale"] > 0


def test_nan_gradients_of_a_finite_loss_are_never_applied() -> None:
    task = ToyTask()
    g0 = task.G.weight.detach().clone()
    task.G.weight.register_hook(lambda grad: grad * float("nan"))
    with pytest.raises(NonFiniteLoss, match="non-finite gradients"):
        adversarial_step(task, torch.randn(8, 4), Precision("fp32", torch.device("cpu")))
    assert torch.equal(task.G.weight, g0)
    assert all(p.grad is None for p in task.G.parameters())
