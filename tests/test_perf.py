"""Process set-up: speed settings that must not change results (the allocator tuning, the fused
optimizer) and oneMKL's reproducible mode, which fixes them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from translate.config import load_config
from translate.train.loop import adam

# Ten rounds of: allocate four 16 MiB tensors, touch every page, free them (after one warm-up
# round of ten). Prints whether the tuning applied and the minor page faults of the timed rounds.
# Untuned, glibc often gives the freed memory back to the kernel each round (~160,000 faults;
# whether it does depends on the heap's layout, so only the tuned side is asserted).
_PROBE = """
import os, resource, torch
from translate.perf import tune_allocator
tuned = tune_allocator() if os.environ.get("PROBE_TUNE") == "1" else False
def churn():
    for _ in range(10):
        xs = [torch.empty(4 * 1024 * 1024).fill_(1.0) for _ in range(4)]
        del xs
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

linux_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="mallopt is glibc's",
)


def _probe(**env: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )
    assert out.returncode == 0, out.stderr
    tuned, faults = out.stdout.split()
    return tuned, int(faults)


@pytest.mark.slow
@linux_glibc
def test_tuned_allocator_reuses_freed_memory_instead_of_faulting_in_new_pages() -> None:
    tuned, faults = _probe(PROBE_TUNE="1")
    assert tuned == "True"
    assert faults < 500, faults  # 40 × 4,096 pages were reused, not mapped afresh


@pytest.mark.slow
@linux_glibc
def test_allocator_tuning_can_be_turned_off() -> None:
    tuned, _ = _probe(PROBE_TUNE="1", TRANSLATE_MALLOC="default")
    assert tuned == "False"


def test_training_uses_fused_adam_with_the_configured_hyperparameters() -> None:
    cfg = load_config("gan", overrides=["train.lr=0.001", "train.beta1=0.3"]).train
    net = torch.nn.Linear(3, 2)
    opt = adam(net.parameters(), cfg, torch.device("cpu"))
    assert opt.defaults["fused"] is True
    assert opt.defaults["lr"] == 0.001 and opt.defaults["betas"] == (0.3, cfg.beta2)
    before = net.weight.detach().clone()
    net(torch.ones(4, 3)).sum().backward()
    opt.step()
    # Adam's first step moves every weight with a non-zero gradient by about lr.
    assert torch.allclose((net.weight - before).abs(), torch.full_like(before, 0.001), rtol=1e-3)


# reproducible_matmul() before torch starts oneMKL, as every translate command does; then one
# 784-deep and one 1024-deep product of the MLP GAN's shapes on one thread and on two.
_MKL_PROBE = """
from translate.perf import reproducible_matmul
reproducible_matmul()
import torch
torch.manual_seed(0)
x, w1, w2 = torch.randn(64, 1024), torch.randn(784, 1024), torch.randn(512, 784)
torch.set_num_threads(1)
one = [x @ w1.t(), (x @ w1.t()) @ w2.t()]
torch.set_num_threads(2)
two = [x @ w1.t(), (x @ w1.t()) @ w2.t()]
print("same:", all(torch.equal(a, b) for a, b in zip(one, two)))
"""


@pytest.mark.slow
@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="torch is built without oneMKL")
def test_matrix_products_run_in_onemkl_strict_reproducible_mode() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    out = subprocess.run(
        [sys.executable, "-c", _MKL_PROBE], capture_output=True, text=True, timeout=120,
        env={**env, "MKL_VERBOSE": "1"},
    )
    assert out.returncode == 0, out.stderr
    calls = [line for line in out.stdout.splitlines() if line.startswith("MKL_VERBOSE SGEMM")]
    assert len(calls) == 6 and all("CNR:AUTO,STRICT" in c for c in calls), calls
    # Strict CNR: the same bits whatever the number of threads (without it they differ here).
    assert out.stdout.splitlines()[-1] == "same: True"
