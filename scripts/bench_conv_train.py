"""Training convs on the CPU: direct (oneDNN) against Winograd F(4x4, 3x3), forward + backward.

One 3x3 stride-1 conv per shape (C -> C channels, S x S maps, batch 1, fp32, zero padding 1),
timed as a training step sees it: the forward, then the backward to the input, the weight and
the bias (``F.conv2d`` against ``translate.nets.winograd.WinogradTrainConv2d``, which
``train.fast_conv`` puts in the networks), and bf16 autocast of the direct conv beside them.
Variants run round-robin (one call of each per round, after warm-up), so load from other
processes falls on all of them alike; the ratio is the median over rounds of
(direct time / variant time) within the round.

    python scripts/bench_conv_train.py                               # the default grid
    python scripts/bench_conv_train.py --shapes 256x64,128x24 --rounds 20
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

# Benchmark the checkout this script lives in, whichever copy the environment has installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import finish, machine  # noqa: E402

from translate.nets.winograd import fast_training  # noqa: E402
from translate.perf import tune_allocator  # noqa: E402


def step_seconds(net: nn.Module, x: torch.Tensor, grad: torch.Tensor, bf16: bool) -> float:
    """One forward + backward (input, weight and bias gradients), in seconds."""
    x.grad = None
    net.zero_grad(set_to_none=True)
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())
    start = time.perf_counter()
    with autocast:
        y = net(x)
    y.backward(grad.to(y.dtype))
    return time.perf_counter() - start


def run_shape(channels: int, size: int, rounds: int, warmup: int) -> dict[str, float]:
    torch.manual_seed(0)
    direct = nn.Conv2d(channels, channels, 3, padding=1)
    winograd = copy.deepcopy(direct)
    fast_training(winograd, min_channels=1)
    x = torch.randn(1, channels, size, size, requires_grad=True)
    grad = torch.randn(1, channels, size, size)
    variants = {"direct": (direct, False), "winograd": (winograd, False), "bf16": (direct, True)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for i in range(warmup + rounds):
        for name, (net, bf16) in variants.items():
            t = step_seconds(net, x, grad, bf16)
            if i >= warmup:
                times[name].append(t)
    out = {f"{name}_ms": 1000 * statistics.median(t) for name, t in times.items()}
    for name in ("winograd", "bf16"):
        out[f"{name}_speedup"] = statistics.median(
            d / v for d, v in zip(times["direct"], times[name], strict=True))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default="256x64,256x32,128x64,128x48,128x24",
                   help="CHANNELSxSIZE, comma-separated")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    tune_allocator()
    if args.threads:
        torch.set_num_threads(args.threads)
    header = machine(torch.device("cpu"))
    print("machine: " + ", ".join(f"{k}={v}" for k, v in header.items()), flush=True)
    rows = []
    print("| C | S | direct ms | Winograd ms | Winograd speedup | bf16 ms | bf16 speedup |")
    print("|---|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        channels, size = (int(v) for v in shape.lower().split("x"))
        r = run_shape(channels, size, args.rounds, args.warmup)
        rows.append({"channels": channels, "size": size, **r})
        print(f"| {channels} | {size} | {r['direct_ms']:.1f} | {r['winograd_ms']:.1f} | "
              f"{r['winograd_speedup']:.2f}x | {r['bf16_ms']:.1f} | {r['bf16_speedup']:.2f}x |",
              flush=True)
    finish(header, {"machine": header, "args": {k: str(v) for k, v in vars(args).items()},
                    "rows": rows}, args.json,
           f"medians of {args.rounds} interleaved rounds after {args.warmup} warm-up")


if __name__ == "__main__":
    main()
