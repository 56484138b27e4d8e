"""Data-parallel training with torchrun: gloo backend, two CPU processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from translate.data.demo import build_demo
from translate.train.checkpoint import load_checkpoint
from translate.train.loop import EpochBatchSampler

TORCHRUN = Path(sys.executable).with_name("torchrun")
TINY = [
    "--set",
    "model.ngf=8",
    "--set",
    "model.n_blocks=2",
    "--set",
    "model.ndf=8",
    "--set",
    "data.load_size=32",
    "--set",
    "data.crop_size=32",
    "--set",
    "data.flip=false",
    "--set",
    "train.epochs=0",
    "--set",
    "loss.pool_size=0",
    "--set",
    "train.log_every=1",
    "-q",
]


def test_ranks_shard_each_epoch_without_overlap() -> None:
    shards = []
    for rank in range(3):
        sampler = EpochBatchSampler(20, 2, seed=5, rank=rank, world=3)
        sampler.set_epoch(1)
        shards.append([i for batch in sampler for i in batch])
    flat = [i for shard in shards for i in shard]
    assert all(len(s) == 6 for s in shards)  # 20 // 3 = 6 each, batches of 2
    assert len(set(flat)) == len(flat) == 18  # no sample twice; 2 left out as drop_last would
    single = EpochBatchSampler(20, 6, seed=5)
    single.set_epoch(1)
    first = next(iter(single))
    # Rank r's k-th sample is the single process's (world·k + r)-th: same samples per step.
    assert [shards[r][0] for r in range(3)] == first[:3]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp") / "demo"
    build_demo(root, size=40, seed=0)
    return root


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not installed beside python")
def test_two_gloo_ranks_end_identical_and_match_one_process(data: Path, tmp_path: Path) -> None:
    common = ["train", "cyclegan", "--set", f"data.root={data}", *TINY]
    ddp = run(
        [
            str(TORCHRUN),
            "--nproc_per_node=2",
            "--standalone",
            "-m",
            "translate",
            *common,
            "--set",
            "train.steps=4",
            "--out",
            "ddp",
        ],
        tmp_path,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    world = json.loads((tmp_path / "ddp" / "world.json").read_text())
    assert world["world_size"] == 2
    assert world["parameter_digests"][0] == world["parameter_digests"][1]
    assert "× 2 ranks" in ddp.stderr
    assert (tmp_path / "ddp/state/last.pt").is_file()

    # One step of 2 ranks × batch 1 against one process with batch 2 on the same samples: the
    # averaged gradients agree up to summation order. Adam's first update is ≈ lr·sign(g), so
    # only elements whose gradient is ~0 may flip, by at most 2·lr.
    for name, extra in [("ddp1", []), ("one", ["--set", "train.batch_size=2"])]:
        launcher = [str(TORCHRUN), "--nproc_per_node=2", "--standalone", "-m", "translate"]
        cmd = launcher if name == "ddp1" else [sys.executable, "-m", "translate"]
        result = run([*cmd, *common, "--set", "train.steps=1", *extra, "--out", name], tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    a = load_checkpoint(tmp_path / "ddp1/state/last.pt")["networks"]
    b = load_checkpoint(tmp_path / "one/state/last.pt")["networks"]
    same = total = 0
    for net in a:
        for key, tensor in a[net].items():
            diff = (tensor.float() - b[net][key].float()).abs()
            assert float(diff.max()) <= 2 * 2e-4 + 1e-6, f"{net}.{key}"
            same += int((diff <= 1e-6).sum())
            total += diff.numel()
    assert same / total > 0.99, f"only {same}/{total} weights agree"


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not installed beside python")
def test_every_rank_resumes_from_the_same_state(data: Path, tmp_path: Path) -> None:
    common = ["train", "cyclegan", "--set", f"data.root={data}", *TINY]
    launcher = [str(TORCHRUN), "--nproc_per_node=2", "--standalone", "-m", "translate"]
    first = run([*launcher, *common, "--set", "train.steps=2", "--out", "r"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    shutil.copytree(tmp_path / "r", tmp_path / "r_before")
    rest = run(
        [*launcher, "train", "cyclegan", "--out", "r", "--resume", "--set", "train.steps=4", "-q"],
        tmp_path,
    )
    assert rest.returncode == 0, rest.stderr[-3000:]
    world = json.loads((tmp_path / "r" / "world.json").read_text())
    assert world["parameter_digests"][0] == world["parameter_digests"][1]
    before = load_checkpoint(tmp_path / "r_before/state/last.pt")
    after = load_checkpoint(tmp_path / "r/state/last.pt")
    assert (before["step"], after["step"]) == (2, 4)
    key = next(iter(after["networks"]["G_AB"]))
    assert not torch.equal(before["networks"]["G_AB"][key], after["networks"]["G_AB"][key])
