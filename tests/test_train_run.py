"""The run folder and the loop's parts: the metrics log, checkpoint state, the one-writer lock,
what a resume may change, torn metrics, unwritable destinations (read-only, not a folder, a full
disk) and dead ends (a corrupt checkpoint, a run killed before its first checkpoint)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import error_line, invoke, translate_cmd
from helpers import assert_same_state, file_mtimes, read_only, tmpfs
from helpers import fill_disk as _fill

from translate.config import load_config
from translate.errors import TranslateError
from translate.runtime import Precision, seed_everything
from translate.train import train
from translate.train.checkpoint import (
    Position,
    load_checkpoint,
    restore_state,
    save_state,
)
from translate.train.mnist import GanTask
from translate.train.resume import TAKES_EFFECT, apply_changes, config_changes, refusal
from translate.train.run import LOCK_NAME, MetricsLog, RunFolder

CPU = torch.device("cpu")


def gan(*overrides: str, seed: int = 0):
    cfg = load_config("gan", overrides=list(overrides))
    seed_everything(seed)
    return cfg, GanTask(cfg, CPU)


def records(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def temp_files(folder: Path) -> list[Path]:
    return list(folder.rglob(".translate-tmp-*"))


# ── The split helpers.


def test_metrics_log_writes_interval_means_in_the_loops_record_format(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    with MetricsLog(run, "train gan", total=10, start=0, show=False, tensorboard=False) as log:
        log.add({"d": 1.0, "g": 2.0})
        log.add({})  # a skipped step: counted for the rate, not in the means
        log.add({"d": 3.0, "g": 4.0})
        first = log.write(step=3, epoch=0, lr=1e-3, skipped=1)
        log.add({"d": 5.0, "g": 6.0})
        second = log.write(step=4, epoch=1, lr=5e-4, skipped=1)
    assert list(first) == ["step", "epoch", "d", "g", "lr", "it_per_s", "nonfinite_skipped",
                           "time"]
    assert (first["step"], first["d"], first["g"], first["lr"]) == (3, 2.0, 3.0, 1e-3)
    assert (second["epoch"], second["d"], second["g"]) == (1, 5.0, 6.0)  # sums were reset
    assert first["it_per_s"] > 0 and second["time"] >= first["time"]
    assert records(tmp_path) == [first, second]


@pytest.mark.slow
def test_save_state_and_restore_state_round_trip() -> None:
    cfg, task = gan("train.batch_size=8")
    precision = Precision("fp32", CPU)
    task.train_step(torch.rand(8, 1, 28, 28) * 2 - 1, precision)
    pos = Position(step=7, epoch=1, batch_in_epoch=3, skipped=2)
    state = save_state(task, precision, cfg, pos)
    torch.rand(5)  # move the global RNG on; restoring puts it back
    _, other = gan("train.batch_size=8", seed=1)
    assert restore_state(other, precision, state, Path("x.pt")) == pos
    assert_same_state(save_state(other, precision, cfg, pos), state)


# ── One writer per run folder.


HOLD_LOCK = """
import sys, time
from translate.train.run import RunFolder
RunFolder(sys.argv[1]).lock()
print("locked", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_a_second_writer_is_refused_naming_the_holder_and_a_kill_frees_the_folder(
        gan_run: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(gan_run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = file_mtimes(gan_run)
        for args in (["--resume", "--set", "train.steps=5"], []):  # a resume, a new run
            line = error_line(invoke("train", "gan", "--out", gan_run, *args, "-q"))
            assert f"is in use by another training run (PID {holder.pid})" in line
        assert file_mtimes(gan_run) == before  # nothing written, nothing trimmed
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock; the file stays
        holder.wait()
    assert (gan_run / LOCK_NAME).read_text().strip() == str(holder.pid)
    result = invoke("train", "gan", "--out", gan_run, "--resume", "--set", "train.steps=5", "-q")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(gan_run / "state/last.pt")["step"] == 5
    assert not (gan_run / LOCK_NAME).exists()  # removed by the run that held it last


# ── What a resume may change.


@pytest.mark.slow
def test_resume_with_a_new_rate_sets_it_and_records_the_change(gan_run: Path) -> None:
    result = invoke("train", "gan", "--out", gan_run, "--resume", "--set", "train.steps=6",
                    "--set", "train.lr=1e-4", "--set", "train.beta1=0.9", "-q")
    assert result.exit_code == 0, result.output
    assert "changed on resume: train.steps 4 → 6, train.lr 0.0002 → 0.0001" in result.output
    state = load_checkpoint(gan_run / "state/last.pt")
    groups = [g for opt in state["optimizers"].values() for g in opt["param_groups"]]
    assert [(g["lr"], g["betas"]) for g in groups] == [(1e-4, (0.9, 0.999))] * 2
    assert state["config"]["train"]["lr"] == 1e-4
    saved = load_config("gan", gan_run / "config.yaml", from_run=True)
    assert (saved.train.lr, saved.train.beta1, saved.train.steps) == (1e-4, 0.9, 6)
    logged = records(gan_run)
    changes = [r for r in logged if "changed" in r]
    assert changes == [{"step": 4, "epoch": 0, "changed": {
        "train.steps": [4, 6], "train.lr": [2e-4, 1e-4], "train.beta1": [0.5, 0.9]}}]
    assert [r["lr"] for r in logged if r["step"] > 4] == [1e-4, 1e-4]


@pytest.mark.slow
def test_a_new_rate_or_length_moves_a_loaded_schedule() -> None:
    """With train.epochs the schedulers restore their old base rates: a new rate (or a new
    decay length) must reach them, and the current epoch's rate follows at once."""
    cfg, task = gan("train.epochs=1", "train.epochs_decay=4", "train.lr=2e-4")
    precision = Precision("fp32", CPU)
    for _ in range(2):
        for opt in task.optimizers().values():
            opt.step()  # no gradients: a no-op, in the order PyTorch expects
        task.end_epoch()
    state = save_state(task, precision, cfg, Position(step=4, epoch=2))
    cfg2, resumed = gan("train.epochs=1", "train.epochs_decay=9", "train.lr=1e-3")
    changes = config_changes(state["config"], cfg2)
    assert set(changes) == {"train.lr", "train.epochs_decay"}
    restore_state(resumed, precision, state, Path("x.pt"))
    apply_changes(resumed, changes, cfg2.train)
    for name, opt in resumed.optimizers().items():
        sched = resumed.schedulers[name]
        assert sched.base_lrs == [1e-3] and opt.param_groups[0]["initial_lr"] == 1e-3
        # factor(e) = 1 − max(0, e + 1 − epochs) / (epochs_decay + 1) at e = 2: 1 − 2/10
        assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.8, rel=1e-12)
    resumed.end_epoch()
    assert resumed.opt_g.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.7, rel=1e-12)


def test_which_keys_a_resume_may_change() -> None:
    for key in TAKES_EFFECT | {"train.lr", "train.beta1", "train.beta2"}:
        assert refusal(key, 1, 2) is None, key
    assert refusal("train.epochs", 2, 5) is None
    assert refusal("train.epochs", 5, 0) is None  # the schedule ends: train.lr by steps
    assert "holds no learning-rate schedule" in refusal("train.epochs", 0, 5)
    assert refusal("train.ema", 0.99, 0.999) is None
    assert "EMA cannot be added" in refusal("train.ema", 0.0, 0.999)
    for key, why in [("model.latent_dim", "networks"), ("data.source", "data"),
                     ("loss.lambda_a", "losses"), ("train.gan_loss", "losses"),
                     ("train.batch_size", "batches"), ("train.precision", "arithmetic"),
                     ("train.seed", "random"), ("train.channels_last", "memory format"),
                     ("train.some_new_key", "mid-way")]:
        assert why in refusal(key, 1, 2), key


@pytest.mark.slow
def test_resume_refuses_changes_that_alter_the_run_naming_each_key(gan_run: Path) -> None:
    before = file_mtimes(gan_run)
    line = error_line(invoke("train", "gan", "--out", gan_run, "--resume", "--set",
                             "train.seed=3", "--set", "train.batch_size=32", "--set",
                             "train.steps=8", "-q"))
    assert line.startswith("error: a resumed run cannot change train.batch_size (64 → 32: ")
    assert "train.seed (0 → 3: " in line and "train.steps" not in line
    line = error_line(invoke("train", "gan", "--out", gan_run, "--resume", "--set",
                             "train.ema=0.9", "-q"))
    assert "train.ema (0.0 → 0.9: an EMA cannot be added to or dropped from a run)" in line
    line = error_line(invoke("train", "gan", "--out", gan_run, "--resume", "--set",
                             "train.steps=3", "-q"))
    assert f"{gan_run / 'state/last.pt'} is at step 4, past train.steps=3" in line
    assert file_mtimes(gan_run) == before


# ── Torn metrics.


def test_a_torn_last_metrics_line_is_dropped_with_a_note(tmp_path: Path, capsys) -> None:
    run = RunFolder(tmp_path)
    lines = [json.dumps({"step": s, "d": 0.5}) for s in (1, 2, 3)]
    run.metrics.write_text("\n".join(lines) + '\n{"step": 4, "d": 0.')
    run.trim_metrics(2)
    assert run.metrics.read_text() == "\n".join(lines[:2]) + "\n"
    assert "removed its last line (line 4), cut off by an interrupted write" in (
        capsys.readouterr().err.replace("\n", " "))


def test_a_torn_line_in_the_middle_stops_the_resume_naming_it(tmp_path: Path) -> None:
    run = RunFolder(tmp_path)
    text = '{"step": 1}\n{"step": 2, "d"\n{"step": 3}\n'
    run.metrics.write_text(text)
    with pytest.raises(TranslateError, match=r"metrics.jsonl line 2 is not a JSON record"):
        run.trim_metrics(3)
    assert run.metrics.read_text() == text


@pytest.mark.slow
def test_resume_after_a_torn_append(gan_run: Path) -> None:
    with open(gan_run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "epoch": 0, "d": 0.69')  # a kill mid-append
    result = invoke("train", "gan", "--out", gan_run, "--resume", "--set", "train.steps=5", "-q")
    assert result.exit_code == 0, result.output
    assert "cut off by an interrupted write" in result.output
    assert [r["step"] for r in records(gan_run) if "changed" not in r] == [1, 2, 3, 4, 5]


# ── Destinations that cannot be written.


@pytest.mark.slow
def test_out_that_is_a_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "notes.txt"
    out.write_text("the user's\n")
    line = error_line(invoke("train", "gan", "--out", out, "--set", "train.steps=1", "-q"))
    assert line == f"error: {out} is a file, not a folder: choose another --out for the run"
    line = error_line(invoke("train", "gan", "--out", out / "run", "--set", "train.steps=1",
                             "-q"))
    assert line == (f"error: cannot create the run folder {out / 'run'}: {out} is a file, "
                    "not a folder")
    assert out.read_text() == "the user's\n"


@pytest.mark.slow
def test_a_read_only_destination_ends_in_one_line(gan_run: Path, tmp_path: Path) -> None:
    def fill(folder: Path) -> None:
        shutil.copytree(gan_run, folder / "run")

    with read_only(tmp_path / "ro", fill) as cause:
        ro = tmp_path / "ro"
        line = error_line(invoke("train", "gan", "--out", ro / "new", "--set", "train.steps=1",
                                 "-q"))
        assert line == f"error: cannot create the run folder {ro / 'new'}: {cause}"
        checkpoint = (ro / "run/state/last.pt").read_bytes()
        line = error_line(invoke("train", "gan", "--out", ro / "run", "--resume", "--set",
                                 "train.steps=5", "-q"))
        assert line == f"error: cannot write {ro / 'run' / LOCK_NAME}: {cause}"
        assert (ro / "run/state/last.pt").read_bytes() == checkpoint
        assert not (ro / "new").exists() and not temp_files(ro)


@pytest.mark.slow
def test_a_full_disk_keeps_the_previous_checkpoint_and_leaves_no_temp(gan_run: Path,
                                                                      tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "64m") as disk:
        run = Path(shutil.copytree(gan_run, disk / "run"))
        checkpoint = (run / "state/last.pt").read_bytes()
        _fill(disk, leave=1_000_000)  # metrics and a sample fit; a 24 MB checkpoint does not
        result = invoke("train", "gan", "--out", run, "--resume", "--set", "train.steps=5",
                        "-q")
        assert result.exit_code == 1
        line = [x for x in result.output.splitlines() if x.startswith("error:")]
        assert line == [f"error: cannot write {run / 'state/last.pt'}: no space left on the "
                        "device; the previous checkpoint is kept"]
        assert "Traceback" not in result.output
        assert (run / "state/last.pt").read_bytes() == checkpoint
        assert not temp_files(disk) and not (run / LOCK_NAME).exists()
        assert [r["step"] for r in records(run) if "changed" not in r] == [1, 2, 3, 4, 5]
        (disk / "filler").unlink()  # space again: the same command continues the run
        result = invoke("train", "gan", "--out", run, "--resume", "--set", "train.steps=5",
                        "-q")
        assert result.exit_code == 0, result.output
        assert load_checkpoint(run / "state/last.pt")["step"] == 5


def test_a_metrics_append_cut_short_by_a_full_disk_is_cut_back_off(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "1m") as disk:
        run = RunFolder(disk)
        run.append_metrics({"step": 1, "d": 0.5})
        before = run.metrics.read_bytes()
        _fill(disk, leave=0)  # the page the file ends in still takes ~4 KB of a longer line
        with pytest.raises(TranslateError) as info:
            run.append_metrics({"step": 2, "note": "x" * 20_000})
        assert str(info.value) == f"cannot write {run.metrics}: no space left on the device"
        assert run.metrics.read_bytes() == before


@pytest.mark.slow
def test_a_full_disk_before_the_first_checkpoint_leaves_nothing(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "tiny", "2m") as disk:
        result = invoke("train", "gan", "--out", disk / "run", "--set", "train.steps=2",
                        "--set", "train.device=cpu", "-q")
        assert result.exit_code == 1
        assert error_line(result) == (f"error: cannot write {disk / 'run/state/last.pt'}: "
                                      "no space left on the device")
        assert list(disk.iterdir()) == []  # the run folder this run made is gone


# ── Dead ends.


@pytest.mark.slow
def test_a_corrupt_checkpoint_is_named_without_torchs_advice(gan_run: Path) -> None:
    path = gan_run / "state/last.pt"
    whole = path.read_bytes()
    for content, why in [(b"", "an empty file"), (b"\0" * 4096, "not a PyTorch checkpoint file"),
                         (b"not a checkpoint\n" * 50, "not a PyTorch checkpoint file"),
                         (whole[: len(whole) // 2], "the file is cut off or damaged")]:
        path.write_bytes(content)
        with pytest.raises(TranslateError) as info:
            load_checkpoint(path)
        assert str(info.value) == f"cannot load checkpoint {path}: not a valid checkpoint ({why})"
    path.write_bytes(b"\0" * len(whole))  # zeroed by a failing disk
    line = error_line(invoke("train", "gan", "--out", gan_run, "--resume", "-q"))
    assert "not a valid checkpoint" in line and "weights_only" not in line


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_can_be_started_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "state").mkdir()
    (run / "config.yaml").write_text("task: gan\n")
    (run / "metrics.jsonl").write_text('{"step": 1, "d": 9.0}\n{"step": 2, "d"')
    (run / "samples/step_0000999.png").write_bytes(b"old grid")
    line = error_line(invoke("train", "gan", "--out", run, "--resume", "-q"))
    assert "has no checkpoint (state/last.pt) to resume from" in line
    assert "without --resume to start it over" in line
    done = train("gan", overrides=["train.steps=2", "train.log_every=1", "train.device=cpu"],
                 out=run, show_progress=False)
    assert (done.task, done.run, done.result.step) == ("gan", run, 2)
    assert [p.name for p in done.samples] == ["step_0000002.png"]  # the old grid is gone
    assert [r["step"] for r in records(run)] == [1, 2] and records(run)[0]["d"] != 9.0
    assert load_checkpoint(run / "state/last.pt")["step"] == 2


def test_an_auto_precision_run_resumes_at_what_it_was_trained_at(capsys) -> None:
    """`auto` measures the CPU each start; a resume keeps the checkpoint's precision instead of
    a new choice (which a busy machine may make otherwise), and says so."""
    import torch

    from translate.runtime import Precision
    from translate.train.resume import keep_trained_precision

    cpu = torch.device("cpu")
    chosen = Precision("fp32", cpu)
    chosen.chosen = True  # as `auto` leaves it
    keep_trained_precision(chosen, "bf16")
    assert (chosen.name, chosen.dtype, chosen.chosen) == ("bf16", torch.bfloat16, True)
    assert "the checkpoint's" in chosen.reason and "would choose fp32 now" in chosen.reason
    assert "precision: bf16" in capsys.readouterr().err
    named = Precision("fp32", cpu)  # asked for by name: never switched
    keep_trained_precision(named, "bf16")
    assert named.name == "fp32"
    old = Precision("fp32", cpu)
    old.chosen = True
    keep_trained_precision(old, None)  # a checkpoint from before the precision was recorded
    assert old.name == "fp32"


# ── A lock that cannot be deleted away (issue 27, class 7).


def test_deleting_the_lock_file_lets_no_second_folder_lock_in(tmp_path: Path) -> None:
    first = RunFolder(tmp_path)
    first.lock()
    try:
        (tmp_path / LOCK_NAME).unlink()
        with pytest.raises(TranslateError, match=r"is in use by another training run \(another "
                                                 r"process\)"):
            RunFolder(tmp_path).lock()
        assert not (tmp_path / LOCK_NAME).exists()  # the refused one made no new lock file
    finally:
        first.unlock()
    second = RunFolder(tmp_path)
    second.lock()  # free once the holder let go
    second.unlock()


@pytest.mark.slow
def test_a_second_training_is_refused_after_the_lock_file_is_deleted(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        translate_cmd("train", "gan", "--out", str(run), "--set", "train.steps=100000",
                      "--set", "train.log_every=1", "--set", "train.sample_every=100000",
                      "--set", "train.checkpoint_every=100000", "--set", "train.device=cpu",
                      "-q"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():
            assert first.poll() is None, first.stderr.read().decode()
            assert time.monotonic() < deadline, "the first training did not start logging"
            time.sleep(0.2)
        (run / LOCK_NAME).unlink()  # a clean-up script, a user
        for args in (["--resume", "--set", "train.steps=200000"], []):  # a resume, a new run
            result = invoke("train", "gan", "--out", run, *args, "-q")
            assert result.exit_code == 1, result.output
            assert error_line(result) == (
                f"error: {run} is in use by another training run (another process): wait for "
                "it to end, or stop it, before training into this folder")
        done = subprocess.run(translate_cmd("train", "gan", "--out", str(run), "--resume", "-q"),
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and done.stderr.strip().startswith(
            f"error: {run} is in use by another training run"), done.stderr
        assert "Traceback" not in done.stderr
        assert first.poll() is None  # the first one trains on, alone
    finally:
        first.kill()
        first.wait()
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()
             if x.strip().endswith("}")]
    assert steps == sorted(set(steps))  # every step logged once: no second writer


def test_a_resumed_run_computes_on_the_threads_it_was_trained_with(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from translate.train import resume

    said: list[str] = []
    monkeypatch.setattr(resume.ui, "info", said.append)
    monkeypatch.setattr(resume.ui, "warn", said.append)
    threads = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        torch.set_num_threads(1)
        resume.keep_trained_threads(2)
        assert torch.get_num_threads() == 2
        assert said.pop().startswith("threads: 2 (the checkpoint's")
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        resume.keep_trained_threads(2)  # the environment names a count: kept, with a warning
        assert torch.get_num_threads() == 1
        assert "($OMP_NUM_THREADS) where the run was trained on 2" in said.pop()
    finally:
        torch.set_num_threads(threads)
