"""CycleGAN training throughput, side by side in one run: precision × memory format × compile ×
allocator × optimizer.

Each configuration runs in its own process (spawned, so nothing is inherited: process-wide
options such as the tuned allocator and compiled code stay with their configuration) and builds
the project's real ``CycleGanTask`` (as ``translate train`` builds it:
``translate.train.load_train_config`` + ``build_task``, over a tiny generated dataset); the
parent times ``task.train_step(batch, precision)`` — the adversarial core's D step and G step
with every CycleGAN loss, the image pools and both Adam updates — on one fixed batch already on
the device. Data loading is excluded. Warm-up steps (compilation, oneDNN / cuDNN
set-up) are excluded; the clock is read after ``torch.cuda.synchronize()`` on a GPU. All
configurations are built first, one after another, then timed in interleaved rounds (one step of
each per round, only one process computing at a time), so that a change in the machine's load
falls on all of them alike.

A configuration joins a precision (fp32, tf32, bf16, fp16, auto) with options by '+' (``tf32``
is fp32 with TF32 tensor cores for convolutions and matrix products, PyTorch's default for
cuDNN convolutions; ``fp32`` on a GPU turns TF32 off, so it is true fp32):
``cl`` channels_last, ``compile`` torch.compile, ``malloc`` the project's allocator tuning
(:func:`translate.perf.tune_allocator`, which the ``translate`` command applies), ``fused`` fused
Adam (the project's optimizer; without it, PyTorch's default foreach Adam), ``winograd`` the
Winograd F(4x4, 3x3) training convs (``train.fast_conv=true``; every other configuration sets
it false, except ``auto``, which leaves it null and lets the task choose precision and convs as
``translate train`` does: ``auto`` on a CPU runs the cached fp32-vs-bf16 micro-benchmark).
Plain ``fp32`` is therefore PyTorch's defaults throughout, ``fp32+malloc+fused`` what
``translate train`` runs at ``precision: fp32, fast_conv: false``, and
``fp32+malloc+fused+winograd`` what it runs at ``precision: fp32`` by default on a CPU.

Per configuration it reports s/step (median of the timed steps), image pairs/s, the speedup over
the first configuration, model FLOPs per step (``FlopCounterMode`` over one full training step:
forward and backward of both generators and both discriminators; precision, memory format and
compilation do not change it; Winograd convs do fewer, so their TFLOP/s are model FLOPs per
second, an effective rate), achieved TFLOP/s and, on a known GPU, MFU against a stated peak.

"Equal quality": after timing, every configuration is reset to the same seeded initial weights,
fresh optimizers and empty pools, and runs ``--check-steps`` identical steps on the same batch; the
named losses are compared with the first configuration's (max absolute difference), and the
weights must still be finite afterwards.

Defaults: 3 timed steps after 1 warm-up on CPU, 30 after 5 on CUDA; compiled configs get at least
``--compile-warmup`` (2) warm-up steps.

    python scripts/bench_train.py                      # 256², batch 1, ResNet-9 (minutes on CPU)
    python scripts/bench_train.py --quick              # a smoke run in seconds
    python scripts/bench_train.py --configs fp32,fp32+malloc+fused+compile --steps 5 --json t.json
    python scripts/bench_train.py --configs fp32,fp32+malloc+fused+winograd,auto+malloc+fused
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate
from torch.utils.flop_counter import FlopCounterMode

# Benchmark the checkout this script lives in, whichever copy the environment has installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import machine  # noqa: E402

from translate.io.images import write_image  # noqa: E402
from translate.perf import tune_allocator  # noqa: E402
from translate.runtime import Precision, resolve_device, seed_everything  # noqa: E402
from translate.train import build_task, load_train_config  # noqa: E402
from translate.train.cyclegan import CycleGanTask  # noqa: E402

PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "auto")
OPTIONS = {"cl": "cl", "channels_last": "cl", "compile": "compile", "malloc": "malloc",
           "fused": "fused", "winograd": "winograd"}

# Dense peak TFLOP/s by device-name substring (first match wins), from the vendors' data sheets.
# "tf32" is what fp32 convolutions get when cuDNN may use TF32 (PyTorch's default for convs).
PEAKS: list[tuple[str, dict[str, float]]] = [
    ("H100 PCIe", {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.0}),
    ("H100 NVL", {"bf16": 835.0, "fp16": 835.0, "tf32": 418.0, "fp32": 60.0}),
    ("H100", {"bf16": 989.0, "fp16": 989.0, "tf32": 494.0, "fp32": 67.0}),  # SXM
    ("H200 NVL", {"bf16": 835.0, "fp16": 835.0, "tf32": 418.0, "fp32": 60.0}),
    ("H200", {"bf16": 989.0, "fp16": 989.0, "tf32": 494.0, "fp32": 67.0}),  # SXM
    ("A100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
]


@dataclass
class Setting:
    label: str
    precision: str
    channels_last: bool
    compile: bool
    malloc: bool = False  # translate.perf.tune_allocator() in this configuration's process
    fused: bool = False  # fused Adam (PyTorch's default on CPU is the foreach one)
    tf32: bool = False  # fp32 with TF32 tensor cores (GPUs)
    winograd: bool = False  # train.fast_conv=true (else false; auto: null, as translate train)


@dataclass
class Result:
    label: str
    precision: str = ""
    channels_last: bool = False
    compile: bool = False
    tf32: bool = False
    status: str = "ok"
    step_seconds: list[float] = field(default_factory=list)
    warmup_seconds: list[float] = field(default_factory=list)
    build_seconds: float = 0.0
    s_per_step: float | None = None
    pairs_per_s: float | None = None
    speedup: float | None = None
    tflops: float | None = None
    mfu: float | None = None
    peak_name: str | None = None
    cuda_peak_mib: float | None = None
    check_losses: list[dict[str, float]] = field(default_factory=list)
    max_loss_diff: float | None = None
    max_loss_diff_name: str | None = None
    precision_reason: str = ""
    fast_conv: int = 0  # convs computed by Winograd


def parse_settings(text: str) -> list[Setting]:
    settings = []
    for label in (s.strip() for s in text.split(",")):
        if not label:
            continue
        precision, flags = "fp32", set()
        for token in label.split("+"):
            if token == "tf32":
                precision = "fp32"
                flags.add("tf32")
            elif token in PRECISIONS:
                precision = token
            elif token in OPTIONS:
                flags.add(OPTIONS[token])
            else:
                raise SystemExit(f"--configs: unknown part {token!r} in {label!r} (use "
                                 f"{', '.join(PRECISIONS)}, {', '.join(OPTIONS)} joined by '+')")
        settings.append(Setting(label, precision, "cl" in flags, "compile" in flags,
                                "malloc" in flags, "fused" in flags, "tf32" in flags,
                                "winograd" in flags))
    if not settings:
        raise SystemExit("--configs: no configuration given")
    return settings






def peak_for(device: torch.device, precision: str, tf32: bool = False
             ) -> tuple[float | None, str | None]:
    """(peak TFLOP/s, its name) for MFU; None on CPU or an unknown GPU."""
    if device.type != "cuda":
        return None, None
    return peak_by_name(torch.cuda.get_device_name(device), precision, tf32)


def peak_by_name(name: str, precision: str, tf32: bool = False
                 ) -> tuple[float | None, str | None]:
    """The first entry of PEAKS whose key the device name holds ("H200 NVL" before "H200")."""
    kind = "tf32" if precision == "fp32" and tf32 else precision  # convs on TF32 tensor cores
    for key, peaks in PEAKS:
        if key in name:
            return peaks[kind], f"{key} {kind} dense {peaks[kind]:g} TF/s"
    return None, None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_dataset(root: Path, size: int, n: int, seed: int) -> None:
    """``n`` random images per domain: smooth colour fields plus noise, as uint8 PNG."""
    rng = np.random.default_rng(seed)
    for domain in ("trainA", "trainB"):
        for i in range(n):
            coarse = rng.random((size // 8 + 1, size // 8 + 1, 3), dtype=np.float32)
            smooth = np.kron(coarse, np.ones((8, 8, 1), np.float32))[:size, :size]
            noisy = np.clip(smooth + 0.1 * rng.standard_normal(smooth.shape), 0, 1)
            write_image(root / domain / f"{i:03d}.png", noisy.astype(np.float32))


def build(args: argparse.Namespace, s: Setting, root: Path, device: torch.device) -> CycleGanTask:
    # The parts `translate train` builds its task from: the config, then the task seeded by
    # train.seed (identical initial weights for every configuration).
    cfg = load_train_config("cyclegan", overrides=[
        f"data.root={root}",
        f"data.load_size={args.size}",
        f"data.crop_size={args.size}",
        "data.flip=false",
        f"model.ngf={args.ngf}",
        f"model.n_blocks={args.n_blocks}",
        f"model.ndf={args.ndf}",
        f"train.batch_size={args.batch}",
        f"train.precision={s.precision}",
        f"train.channels_last={str(s.channels_last).lower()}",
        f"train.compile={str(s.compile).lower()}",
        # Winograd convs only where asked for; `auto` chooses both as `translate train` does.
        "train.fast_conv=" + ("true" if s.winograd else "null" if s.precision == "auto"
                              else "false"),
        f"train.seed={args.seed}",
        "train.epochs=0",  # steps mode: no learning-rate schedulers
    ])
    task = build_task("cyclegan", cfg, device)
    if not s.fused:  # PyTorch's default Adam (foreach) instead of the project's fused one
        for name, opt in task.optimizers().items():
            d = opt.defaults
            setattr(task, name, torch.optim.Adam(opt.param_groups[0]["params"], lr=d["lr"],
                                                 betas=d["betas"]))
    return task


def fixed_batch(task: CycleGanTask, batch: int) -> dict[str, Any]:
    items = [task.dataset.item(i % len(task.dataset), epoch=0) for i in range(batch)]
    return task.to_device(default_collate(items))


def snapshot(task: CycleGanTask) -> dict[str, Any]:
    return {
        "nets": {k: {n: t.detach().cpu().clone() for n, t in net.state_dict().items()}
                 for k, net in task.networks().items()},
        "opts": {k: opt.state_dict() for k, opt in task.optimizers().items()},
    }


def restore(task: CycleGanTask, snap: dict[str, Any]) -> None:
    for k, net in task.networks().items():
        net.load_state_dict(snap["nets"][k])  # copies in place: memory format is kept
    for k, opt in task.optimizers().items():
        opt.load_state_dict(snap["opts"][k])  # empty Adam state, as at construction
    task.load_extra_state({})  # empty image pools


class StepFailed(RuntimeError):
    """A training step raised; the message names the networks left with non-finite weights."""


def nonfinite_nets(task: CycleGanTask) -> list[str]:
    return [name for name, net in task.networks().items()
            if any(not bool(torch.isfinite(p).all()) for p in net.parameters())]


def step(task: CycleGanTask, batch: dict[str, Any], precision: Precision) -> dict[str, float]:
    """One real training step; a failure says which networks hold non-finite weights, since the
    core checks the losses only: a step with finite losses but NaN gradients is applied."""
    try:
        return task.train_step(batch, precision)
    except Exception as e:
        bad = nonfinite_nets(task)
        if bad:
            raise StepFailed(f"{first_line(e, 80)}; non-finite weights in {', '.join(bad)}"
                             ) from e
        raise


def timed_step(task: CycleGanTask, batch: dict[str, Any], precision: Precision,
               device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    step(task, batch, precision)
    sync(device)
    return time.perf_counter() - start


@dataclass
class Live:
    """A built configuration: its task, precision, fixed batch and initial state."""

    setting: Setting
    result: Result
    task: CycleGanTask
    precision: Precision
    batch: dict[str, Any]
    initial: dict[str, Any]


def prepare(args: argparse.Namespace, s: Setting, root: Path, device: torch.device) -> Live:
    """Build one configuration and run its warm-up steps (compilation happens here)."""
    r = Result(s.label, s.precision, s.channels_last, s.compile, s.tf32)
    base = 0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    started = time.perf_counter()
    task = build(args, s, root, device)
    r.build_seconds = time.perf_counter() - started
    # The task chose its precision with its networks (train.precision and train.fast_conv).
    precision = task.precision or Precision(s.precision, device)
    r.precision, r.precision_reason, r.fast_conv = precision.name, precision.reason, task.fast_conv
    print(f"  {s.label}: {precision.name} ({precision.reason}); {task.fast_conv} Winograd convs",
          flush=True)
    batch = fixed_batch(task, args.batch)
    live = Live(s, r, task, precision, batch, snapshot(task))
    warmup = max(args.warmup, args.compile_warmup) if s.compile else args.warmup
    for i in range(warmup):
        r.warmup_seconds.append(timed_step(task, batch, precision, device))
        print(f"  {s.label}: warm-up {i + 1}/{warmup} {r.warmup_seconds[-1]:.2f} s", flush=True)
    if device.type == "cuda" and warmup:
        # This configuration's own peak: what the others hold was there before it was built.
        r.cuda_peak_mib = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return live


def check(args: argparse.Namespace, live: Live, count_flops: bool) -> int | None:
    """Equal quality: the same seeded start, the same batch, the same RNG stream."""
    restore(live.task, live.initial)
    seed_everything(args.seed)
    flops = None
    for i in range(args.check_steps):
        if count_flops and i == 0:
            counter = FlopCounterMode(display=False)
            with counter:
                live.result.check_losses.append(step(live.task, live.batch, live.precision))
            flops = counter.get_total_flops()
        else:
            live.result.check_losses.append(step(live.task, live.batch, live.precision))
    bad = nonfinite_nets(live.task)
    if bad:  # finite losses, NaN gradients: the update was applied anyway
        live.result.status = f"non-finite weights after check step(s) in {', '.join(bad)}"
    return flops


def failed(s: Setting, e: BaseException) -> str:
    print(f"  {s.label} failed:\n{traceback.format_exc(limit=3)}", flush=True)
    return f"{'compile: ' if s.compile else ''}failed ({first_line(e)})"


def worker(conn: Connection, args: argparse.Namespace, s: Setting, root: Path,
           device_name: str) -> None:
    """One configuration in its own process, so that process-wide options (the allocator,
    compiled code) do not leak into the others. Builds and warms up, then answers the parent's
    commands: "step" (one timed step), "check" (the equal-quality steps; FLOPs if asked), "stop"."""
    if s.malloc:
        tune_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    if s.compile:
        torch._dynamo.config.recompile_limit = 64
    device = torch.device(device_name)
    if device.type == "cuda":  # fp32 is fp32 unless the configuration says tf32
        torch.backends.cudnn.allow_tf32 = s.tf32
        torch.backends.cuda.matmul.allow_tf32 = s.tf32
    try:
        live = prepare(args, s, root, device)
    except Exception as e:  # e.g. torch.compile without a working backend here
        conn.send(("failed", failed(s, e)))
        return
    conn.send(("ready", live.result))
    while True:
        command, count_flops = conn.recv()
        try:
            if command == "step":
                conn.send(("ok", timed_step(live.task, live.batch, live.precision, device)))
            elif command == "check":
                flops = check(args, live, count_flops)
                conn.send(("ok", (live.result, flops)))
            else:
                return
        except Exception as e:
            conn.send(("failed", failed(s, e)))
            return


class Worker:
    """The parent's handle on one configuration's process."""

    def __init__(self, args: argparse.Namespace, s: Setting, root: Path, device: torch.device):
        ctx = mp.get_context("spawn")  # a fresh interpreter: nothing inherited but arguments
        self.setting = s
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=worker, args=(child, args, s, root, str(device)))
        self.process.start()
        child.close()

    def ask(self, command: str, count_flops: bool = False) -> tuple[str, Any]:
        try:
            self.conn.send((command, count_flops))
            return self.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            return "failed", f"worker process died (exit code {self.process.exitcode})"

    def wait_ready(self) -> tuple[str, Any]:
        try:
            return self.conn.recv()
        except EOFError:
            self.process.join()
            return "failed", f"worker process died (exit code {self.process.exitcode})"

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(("stop", False))
        self.process.join(timeout=60)
        if self.process.is_alive():
            self.process.kill()


def run_all(args: argparse.Namespace, settings: list[Setting], root: Path,
            device: torch.device) -> tuple[list[Result], int | None]:
    """Build and warm every configuration (one process each, one after another), then time them
    in interleaved rounds (one step of each per round), so that a change in the machine's load
    hits all of them alike. Only one process computes at any time."""
    results: list[Result] = []
    workers: list[Worker] = []
    try:
        for s in settings:
            print(f"[{s.label}] build + warm-up (own process)", flush=True)
            w = Worker(args, s, root, device)
            status, value = w.wait_ready()
            if status == "ready":
                workers.append(w)
                results.append(value)
            else:
                w.stop()
                results.append(Result(s.label, s.precision, s.channels_last, s.compile,
                                      s.tf32, status=value))
        by_label = {r.label: r for r in results}
        live = list(workers)
        for i in range(args.steps):
            for w in list(live):
                status, value = w.ask("step")
                r = by_label[w.setting.label]
                if status != "ok":
                    r.status = value
                    live.remove(w)
                    continue
                r.step_seconds.append(value)
                print(f"  round {i + 1}/{args.steps} {w.setting.label}: {value:.3f} s", flush=True)
        flops = None
        print("equal-quality check steps", flush=True)
        for w in live:
            count = flops is None and not w.setting.compile
            status, value = w.ask("check", count)
            r = by_label[w.setting.label]
            if status != "ok":
                r.status = value
                continue
            checked, counted = value
            r.check_losses, r.status = checked.check_losses, checked.status
            flops = counted if counted is not None else flops
    finally:
        for w in workers:
            w.stop()
    if flops is None and any(r.status == "ok" for r in results):
        # Only compiled configs ran: count on an eager fp32 step (same model, same FLOPs).
        plain = prepare(argparse.Namespace(**{**vars(args), "warmup": 0, "compile_warmup": 0}),
                        Setting("flops", "fp32", False, False), root, device)
        flops = check(argparse.Namespace(**{**vars(args), "check_steps": 1}), plain, True)
    return results, flops


def first_line(e: BaseException, limit: int = 160) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    text = text if isinstance(e, StepFailed) else f"{type(e).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summarise(results: list[Result], flops: int | None, batch: int, device: torch.device) -> None:
    base = next((r for r in results if r.status == "ok"), None)
    for r in results:
        if r.status != "ok" or not r.step_seconds:
            continue
        r.s_per_step = statistics.median(r.step_seconds)
        r.pairs_per_s = batch / r.s_per_step
        if base is not None and base.s_per_step:
            r.speedup = base.s_per_step / r.s_per_step
        if flops:
            r.tflops = flops / r.s_per_step / 1e12
            peak, r.peak_name = peak_for(device, r.precision, r.tf32)
            if peak:
                r.mfu = r.tflops / peak
        if base is not None and base.check_losses and r.check_losses:
            worst, name = 0.0, None
            for ref_step, step in zip(base.check_losses, r.check_losses, strict=True):
                for k, v in ref_step.items():
                    d = abs(step.get(k, float("nan")) - v)
                    if not d <= worst:  # NaN counts as worst
                        worst, name = d, k
            r.max_loss_diff, r.max_loss_diff_name = worst, name


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_table(results: list[Result], header: dict[str, Any], args: argparse.Namespace,
                flops: int | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=160)
    dev = f"{header['device']} ({header['device_name']})"
    title = (f"CycleGAN train step, {args.size}x{args.size}, batch {args.batch}, "
             f"ngf {args.ngf}, {args.n_blocks} blocks, ndf {args.ndf} — {dev}")
    table = Table(title=title, title_justify="left")
    for col in ("config", "1st warm-up s", "s/step", "min–max s", "pairs/s", "speedup",
                "TFLOP/s", "MFU",
                "CUDA peak MiB", "max |Δloss| vs first", "status"):
        table.add_column(col, justify="left" if col in ("config", "status") else "right")
    for r in results:
        spread = (f"{min(r.step_seconds):.3f}–{max(r.step_seconds):.3f}"
                  if r.step_seconds else "-")
        diff = "-" if r.max_loss_diff is None else f"{r.max_loss_diff:.2e} ({r.max_loss_diff_name})"
        first = r.warmup_seconds[0] if r.warmup_seconds else None
        table.add_row(r.label, fmt(first, ".2f"), fmt(r.s_per_step, ".3f"), spread,
                      fmt(r.pairs_per_s, ".3f"),
                      fmt(r.speedup, ".2f") + ("×" if r.speedup else ""), fmt(r.tflops, ".3f"),
                      "-" if r.mfu is None else f"{100 * r.mfu:.1f}%",
                      fmt(r.cuda_peak_mib, ".0f"), diff, r.status)
    console.print(table)
    gflop = "-" if flops is None else f"{flops / 1e9:.1f} GFLOP"
    console.print(f"model FLOPs per training step (both G and both D, forward + backward; "
                  f"FlopCounterMode): {gflop}")
    peaks = sorted({r.peak_name for r in results if r.peak_name})
    console.print("MFU peak: " + ("; ".join(peaks) if peaks else "none (CPU or unknown GPU)"))
    console.print(f"s/step is the median of {args.steps} timed steps after {args.warmup} "
                  f"warm-up step(s) ({max(args.warmup, args.compile_warmup)} for compiled "
                  f"configs; the first includes compilation); configs are timed in "
                  f"interleaved rounds; data loading excluded (one fixed batch on the device); "
                  f"speedup = first config's s/step / this one's.")
    if any(r.cuda_peak_mib is not None for r in results):
        console.print("CUDA peak MiB: max_memory_allocated over the config's build + warm-up, "
                      "less what was allocated before it was built.")
    console.print(f"Δloss: largest |loss − first config's loss| over the named losses of "
                  f"{args.check_steps} step(s) from the same seeded weights, batch and RNG.")
    if results and results[0].check_losses:
        ref = results[0].check_losses[-1]
        shown = ", ".join(f"{k} {v:.4f}" for k, v in ref.items())
        console.print(f"first config's losses (check step {len(results[0].check_losses)}): "
                      f"{shown}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256, help="square image side (multiple of 4)")
    p.add_argument("--batch", type=int, default=1, help="image pairs per step")
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--n-blocks", type=int, default=9)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per configuration (default: 3 on CPU, 30 on CUDA)")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps first (default: 1 on CPU, 5 on CUDA)")
    p.add_argument("--compile-warmup", type=int, default=2,
                   help="warm-up steps for compiled configs (at least --warmup)")
    p.add_argument("--check-steps", type=int, default=1,
                   help="identical steps from the seeded start compared across configs")
    p.add_argument("--configs",
                   default="fp32,bf16,fp32+malloc,fp32+fused,fp32+compile,fp32+malloc+fused+compile",
                   help="comma-separated; each joins a precision (fp32, tf32, bf16, fp16, auto) "
                        "with options by '+': cl (channels_last), compile, malloc (allocator "
                        "tuning), fused (fused Adam), winograd (train.fast_conv=true)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--quick", action="store_true",
                   help="smoke setting: size 64, ngf/ndf 16, 2 blocks, 2 steps, 1 warm-up")
    args = p.parse_args()
    if args.quick:  # new defaults; options given explicitly still win
        p.set_defaults(size=64, ngf=16, ndf=16, n_blocks=2, steps=2, warmup=1)
        args = p.parse_args()
    if args.size % 4 or args.size < 32:
        raise SystemExit("--size must be a multiple of 4 and at least 32 (PatchGAN needs room)")
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = parse_settings(args.configs)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    args.steps = args.steps if args.steps is not None else (30 if gpu else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if gpu else 1)
    if args.steps < 1 or args.warmup < 0 or args.check_steps < 1 or args.batch < 1:
        raise SystemExit("--steps, --check-steps and --batch must be >= 1, --warmup >= 0")
    header = machine(device)
    print("machine: " + ", ".join(f"{k}={v}" for k, v in header.items()), flush=True)
    busy = header["load_average_start"][0]
    if device.type == "cpu" and busy > 0.5:
        print(f"note: load average {busy:.2f} before starting — other processes share these "
              f"{os.cpu_count()} cores; absolute times are inflated, interleaved ratios less so",
              flush=True)
    print(f"timing the real CycleGanTask.train_step (D step + G step, all CycleGAN losses, "
          f"pools, Adam) on a fixed batch; data loading excluded. configs: "
          f"{', '.join(s.label for s in settings)}", flush=True)

    run_started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        root = Path(tmp) / "data"
        make_dataset(root, args.size, max(2, args.batch), args.seed)
        results, flops = run_all(args, settings, root, device)
    header["load_average_end"] = list(os.getloadavg())
    header["total_seconds"] = time.perf_counter() - run_started
    summarise(results, flops, args.batch, device)
    print_table(results, header, args, flops)
    print(f"load average start {header['load_average_start']}, end "
          f"{header['load_average_end']}; whole run {header['total_seconds']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": header,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "flops_per_step": flops,
            "results": [r.__dict__ for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
