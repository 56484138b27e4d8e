"""Speed settings that must not change results: the allocator tuning and the fused optimizer."""

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


@linux_glibc
def test_tuned_allocator_reuses_freed_memory_instead_of_faulting_in_new_pages() -> None:
    tuned, faults = _probe(PROBE_TUNE="1")
    assert tuned == "True"
    assert faults < 500, faults  # 40 × 4,096 pages were reused, not mapped afresh


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
