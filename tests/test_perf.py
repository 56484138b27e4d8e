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
from translate.perf import mmap_threshold, tune_allocator
tuned = tune_allocator() if os.environ.get("PROBE_TUNE") == "1" else False
mib = int(os.environ.get("PROBE_MIB", "16"))
def churn():
    for _ in range(10):
        xs = [torch.empty(mib * 256 * 1024).fill_(1.0) for _ in range(4)]
        del xs
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, mmap_threshold())
"""

linux_glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="mallopt is glibc's",
)


def _probe(**env: str) -> tuple[str, int, str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120,
        env={**os.environ, "TRANSLATE_MALLOC": "", **env},  # conftest turns it off
    )
    assert out.returncode == 0, out.stderr
    tuned, faults, threshold = out.stdout.split()
    return tuned, int(faults), threshold


@pytest.mark.slow
@linux_glibc
def test_tuned_allocator_reuses_freed_memory_instead_of_faulting_in_new_pages() -> None:
    tuned, faults, _ = _probe(PROBE_TUNE="1")
    assert tuned == "True"
    assert faults < 500, faults  # 40 × 4,096 pages were reused, not mapped afresh


@pytest.mark.slow
@linux_glibc
def test_tuned_allocator_reuses_blocks_as_large_as_an_sr_tile_s_activations() -> None:
    # 80 MiB blocks: above glibc's own 32 MiB ceiling for its adaptive threshold, the size of a
    # 64-channel fp32 feature map of a 640² tile (the page-fault churn of tiled SR).
    tuned, faults, threshold = _probe(PROBE_TUNE="1", PROBE_MIB="80")
    assert tuned == "True"
    if int(threshold) <= 80 * 1024 * 1024:
        pytest.skip(f"this glibc accepts an mmap threshold of {threshold} bytes at most")
    assert faults < 500, faults  # 40 × 20,480 pages were reused, not mapped afresh


# A memory-budgeted SR pipeline keeps only blocks below its budget's share; larger ones are
# mapped afresh and given back again (their faults return), smaller ones are still reused.
_BUDGET_PROBE = """
import resource, torch
from pathlib import Path
import translate
from translate.perf import mmap_threshold, tune_allocator
from translate.infer.sr import RETAIN_SHARE, SRPipeline
from translate.modelfile import load_model
tune_allocator()
before = mmap_threshold()
model = load_model(Path(translate.__file__).parent / "models" / "sr-x4")
SRPipeline(model, max_memory=RETAIN_SHARE * 48 * 1024 * 1024)
def faults(mib):
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        xs = [torch.empty(mib * 256 * 1024).fill_(1.0) for _ in range(2)]
        del xs
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start
faults(16), faults(80)
print(before, mmap_threshold(), faults(16), faults(80))
"""


@pytest.mark.slow
@linux_glibc
def test_a_memory_budget_keeps_only_blocks_below_its_share() -> None:
    out = subprocess.run([sys.executable, "-c", _BUDGET_PROBE], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "TRANSLATE_MALLOC": ""})
    assert out.returncode == 0, out.stderr
    before, after, small, large = map(int, out.stdout.split())
    if before <= 48 * 1024 * 1024:
        pytest.skip(f"this glibc accepts an mmap threshold of {before} bytes at most")
    assert after == 48 * 1024 * 1024
    assert small < 500, small  # 16 MiB blocks: still reused
    assert large > 10 * 2 * 20_000, large  # 80 MiB blocks: mapped and faulted in each round


@pytest.mark.slow
@linux_glibc
def test_allocator_tuning_can_be_turned_off() -> None:
    tuned, _, threshold = _probe(PROBE_TUNE="1", TRANSLATE_MALLOC="default")
    assert (tuned, threshold) == ("False", "None")


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
