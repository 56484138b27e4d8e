"""The shared training loop: determinism, exact resume in a fresh process, signals,
non-finite losses and what a run directory holds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import translate_cmd
from helpers import assert_same_state

from translate.config import load_config
from translate.errors import TranslateError
from translate.runtime import Precision, seed_everything
from translate.train.checkpoint import load_checkpoint
from translate.train.loop import (
    Ema,
    EpochBatchSampler,
    TrainingInterrupted,
    evaluating,
    fit,
)
from translate.train.mnist import GanTask, VaeTask

CPU = torch.device("cpu")
FAST = ["train.log_every=5", "train.sample_every=1000", "train.checkpoint_every=1000"]


def build(kind: str, *overrides: str):
    cfg = load_config(kind, overrides=[*FAST, *overrides])
    seed_everything(cfg.train.seed)
    task = {"gan": GanTask, "vae": VaeTask}[kind](cfg, CPU)
    return cfg, task


def state_of(run: Path) -> dict:
    return load_checkpoint(run / "state" / "last.pt")


def test_sampler_is_a_pure_function_of_seed_epoch_and_start() -> None:
    s = EpochBatchSampler(10, 3, seed=4)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start=1)
    assert list(s) == full[1:]
    assert len(full) == 3 and len({i for b in full for i in b}) == 9  # 9 distinct of 10
    s.set_epoch(3)
    assert list(s) != full
    assert all(len(b) == 3 for b in full)  # drop_last


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_same_seed_same_weights_and_other_seed_differs(kind: str, tmp_path: Path) -> None:
    runs = {}
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        cfg, task = build(kind, "train.steps=12", f"train.seed={seed}")
        fit(task, cfg.train, tmp_path / name, cfg, show_progress=False)
        runs[name] = state_of(tmp_path / name)
    assert_same_state(runs["a"], runs["b"])
    net = "G" if kind == "gan" else "vae"
    key = next(iter(runs["a"]["networks"][net]))
    assert not torch.equal(runs["a"]["networks"][net][key], runs["c"]["networks"][net][key])


@pytest.mark.slow
def test_run_directory_contents(tmp_path: Path) -> None:
    cfg, task = build("gan", "train.steps=20", "train.sample_every=10", "train.checkpoint_every=10")
    result = fit(task, cfg.train, tmp_path / "run", cfg, show_progress=False)
    run = tmp_path / "run"
    assert result.step == 20 and result.skipped == 0
    assert (run / "config.yaml").read_text().startswith("task: gan")
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_0000010.png",
        "step_0000020.png",
    ]
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [5, 10, 15, 20]
    assert {"d", "g", "lr", "it_per_s", "epoch"} <= set(lines[0])
    assert json.loads((run / "model.json").read_text())["task"] == "gan"
    assert state_of(run)["step"] == 20
    assert not [p for p in run.rglob(".*")], "temp files left behind"
    with pytest.raises(TranslateError, match="already holds a run"):
        cfg2, task2 = build("gan", "train.steps=20")
        fit(task2, cfg2.train, run, cfg2, show_progress=False)


# The fresh-process comparisons run every process on one thread. A straight and a split run at
# the default two threads once parted by float rounding at step 5, before any resume (d 0.5617545
# vs 0.5617536; 1 of ~10 full-suite runs, beside a training): two fresh processes had computed the
# same seeded steps differently. oneMKL's products are thread-count independent here (strict CNR,
# tests/test_perf.py) and the cause was not found; on one thread nothing is split between threads,
# so what these tests compare is the resume alone. scripts/resume_check.py repeats the comparison
# at the default threads.


def one_thread() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        translate_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=300,
        env=one_thread(),
    )


def assert_runs_agree(straight: Path, split: Path, note: str = "") -> None:
    """The two runs' final states are bitwise equal; if not, say where they parted (their
    logged losses) and how each run ended.

    Compared once, with no retry: every ``translate`` command puts oneMKL in its reproducible
    mode first (``translate.perf.reproducible_matmul``); ``scripts/resume_check.py`` repeats this
    comparison many times.
    """
    a, b = state_of(straight), state_of(split)
    try:
        assert_same_state(a, b)
    except AssertionError as e:
        logs = {r: (r / "metrics.jsonl").read_text() for r in (straight, split)}
        skipped = {r.name: s["nonfinite_skipped"] for r, s in ((straight, a), (split, b))}
        raise AssertionError(
            f"{e}\nnon-finite steps skipped: {skipped}\nstraight:\n{logs[straight]}"
            f"split:\n{logs[split]}{note}"
        ) from None


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_resume_in_a_fresh_process_is_bitwise_identical(kind: str, tmp_path: Path) -> None:
    common = ["-q", *sum((["--set", s] for s in FAST), [])]
    straight = _run(
        ["train", kind, "--out", "straight", "--set", "train.steps=30", *common], tmp_path
    )
    assert straight.returncode == 0, straight.stderr
    half = _run(["train", kind, "--out", "split", "--set", "train.steps=15", *common], tmp_path)
    assert half.returncode == 0, half.stderr
    rest = _run(
        ["train", kind, "--out", "split", "--resume", "--set", "train.steps=30", "-q"], tmp_path
    )
    assert rest.returncode == 0, rest.stderr
    assert "resuming" in rest.stderr
    assert_runs_agree(tmp_path / "straight", tmp_path / "split",
                      f"resumed run's stderr:\n{rest.stderr}")
    records = [json.loads(x) for x in (tmp_path / "split/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "changed" not in r] == [5, 10, 15, 20, 25, 30]
    # The resume's new length is recorded where it took effect.
    assert [r for r in records if "changed" in r] == [
        {"step": 15, "epoch": 0, "changed": {"train.steps": [15, 30]}}]


def _wait_for_metrics(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if path.is_file() and path.stat().st_size > 0:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.communicate()[1]}")
        time.sleep(0.05)
    raise AssertionError("no metrics written in time")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_and_resume_matches_a_straight_run(sig, code, tmp_path: Path) -> None:
    sets = [
        "--set",
        "train.log_every=2",
        "--set",
        "train.checkpoint_every=100000",
        "--set",
        "train.sample_every=100000",
    ]

    proc = subprocess.Popen(
        translate_cmd(
            "train", "gan", "--out", "stopped", "-q", "--set", "train.steps=100000", *sets
        ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=one_thread(),
    )
    _wait_for_metrics(tmp_path / "stopped" / "metrics.jsonl", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert f"{signal.Signals(sig).name} at step" in err and "--resume" in err
    stopped_at = state_of(tmp_path / "stopped")["step"]
    assert 0 < stopped_at < 100000
    assert (tmp_path / "stopped" / "model.safetensors").is_file()
    target = stopped_at + 6
    resume = ["--out", "stopped", "--resume", "-q", "--set", f"train.steps={target}"]
    rest = _run(["train", "gan", *resume], tmp_path)
    assert rest.returncode == 0, rest.stderr
    straight = _run(
        ["train", "gan", "--out", "straight", "-q", "--set", f"train.steps={target}", *sets],
        tmp_path,
    )
    assert straight.returncode == 0, straight.stderr
    assert_runs_agree(tmp_path / "straight", tmp_path / "stopped")


class FlakyGan(GanTask):
    """A GAN whose D loss is NaN on the steps listed in ``bad`` (1-based)."""

    def __init__(self, cfg, device, bad):
        super().__init__(cfg, device)
        self.bad, self.calls = set(bad), 0

    def discriminator_losses(self, real, fake):
        self.calls += 1
        losses = super().discriminator_losses(real, fake)
        if self.calls in self.bad:
            losses["d"] = losses["d"] * float("nan")
        return losses


@pytest.mark.slow
def test_non_finite_steps_are_skipped_and_counted(tmp_path: Path) -> None:
    cfg = load_config("gan", overrides=[*FAST, "train.steps=10"])
    seed_everything(0)
    task = FlakyGan(cfg, CPU, bad={3, 4})
    result = fit(task, cfg.train, tmp_path / "run", cfg, show_progress=False)
    assert result.step == 10 and result.skipped == 2
    lines = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["nonfinite_skipped"] == 2
    assert all(torch.isfinite(p).all() for p in task.G.parameters())


@pytest.mark.slow
def test_k_non_finite_in_a_row_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    cfg = load_config(
        "gan",
        overrides=[*FAST, "train.steps=50", "train.checkpoint_every=4", "train.max_nonfinite=3"],
    )
    seed_everything(0)
    task = FlakyGan(cfg, CPU, bad=set(range(6, 100)))
    with pytest.raises(TranslateError, match="3 non-finite losses in a row") as err:
        fit(task, cfg.train, tmp_path / "run", cfg, show_progress=False)
    assert "\n" not in str(err.value)
    state = state_of(tmp_path / "run")
    assert state["step"] == 4  # the checkpoint before the NaNs started, never overwritten
    for tensor in state["networks"]["G"].values():
        assert torch.isfinite(tensor.float()).all()


@pytest.mark.slow
def test_failure_before_first_checkpoint_leaves_no_run_directory(tmp_path: Path) -> None:
    cfg = load_config("gan", overrides=[*FAST, "train.steps=50", "train.max_nonfinite=2"])
    seed_everything(0)
    task = FlakyGan(cfg, CPU, bad=set(range(1, 100)))
    with pytest.raises(TranslateError):
        fit(task, cfg.train, tmp_path / "run", cfg, show_progress=False)
    assert not (tmp_path / "run").exists()


def test_interrupt_exit_codes() -> None:
    assert TrainingInterrupted("x", exit_code=143).exit_code == 143


@pytest.mark.slow
def test_gan_takes_a_ragan_step() -> None:
    _, task = build("gan", "train.gan_loss=ragan", "train.batch_size=8")
    real = torch.rand(8, 1, 28, 28) * 2 - 1
    before = [p.detach().clone() for p in task.G.parameters()]
    losses = task.train_step(real, Precision("fp32", CPU))
    assert set(losses) == {"d", "g"} and all(map(torch.isfinite, torch.tensor([*losses.values()])))
    assert any(not torch.equal(a, b) for a, b in zip(before, task.G.parameters(), strict=True))


def test_ema_follows_its_network_and_copies_buffers() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = Ema(net, decay=0.75)
    start = [p.detach().clone() for p in net.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net(torch.randn(5, 3))  # moves the BatchNorm running statistics
    ema.update()
    for p_ema, p0 in zip(ema.model.parameters(), start, strict=True):
        assert torch.allclose(p_ema, p0 + 0.25)
    assert torch.equal(ema.model[1].running_mean, net[1].running_mean)
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_evaluating_restores_each_network_mode() -> None:
    a, b = torch.nn.Dropout(), torch.nn.Dropout()
    b.eval()
    with pytest.raises(RuntimeError):
        with evaluating(a, b):
            assert not a.training and not b.training
            raise RuntimeError
    assert a.training and not b.training


# The fresh-process resume and signal tests above run the CLI several times each: tens of seconds
# on 2 CPU cores. (Marked here rather than above their definitions, which are being reworked.)
pytest.mark.slow(test_resume_in_a_fresh_process_is_bitwise_identical)
pytest.mark.slow(test_signal_saves_and_resume_matches_a_straight_run)
