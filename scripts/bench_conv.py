"""Winograd against direct convolution on the CPU, side by side in one process.

Part 1 (the go/no-go gate): one 3x3 conv as in a ResNet-9 residual block (256 -> 256 channels,
reflect-padded 64x64 maps, batch 1, fp32): ``F.conv2d`` (oneDNN) against
``translate.nets.winograd.WinogradConv2d`` with F(2, 3) and F(4, 3), for contiguous (NCHW) and
channels_last inputs. Part 2: the whole generator's forward pass, eager against
``fast_inference`` (every residual-block conv replaced), at 256x256.

Variants run round-robin (one call of each per round, after warm-up), so load from other
processes falls on all of them alike; the ratio is the median over rounds of (direct time /
variant time) within the round. Errors are measured against a float64 reference:
``max_rel`` = max |error| / max |reference|, ``rms_rel`` = RMS error / RMS reference.

    python scripts/bench_conv.py                      # both parts, 30 + 6 rounds
    python scripts/bench_conv.py --rounds 60 --no-net # the conv only
    python scripts/bench_conv.py --channels 128 --size 128 --json conv.json
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

# Benchmark the checkout this script lives in, whichever copy the environment has installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import finish, machine  # noqa: E402

from translate.nets.resnet import ResnetGenerator  # noqa: E402
from translate.nets.winograd import WinogradConv2d, fast_inference  # noqa: E402
from translate.perf import tune_allocator  # noqa: E402

GATE_SPEEDUP, GATE_ERROR = 1.4, 1e-4  # F(4, 3) on the 256-channel conv must reach both


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int, warmup: int,
                baseline: str) -> dict[str, dict[str, float]]:
    """Time each function once per round, round-robin; medians and per-round ratios.

    Wall time is the measure. CPU time (``time.process_time``, all threads) is kept too: on a
    machine shared with other jobs it counts the work done rather than the waiting, so with one
    thread (``--threads 1``) its ratio is the more stable one; with several, idle OpenMP
    threads spin and it overstates.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)

    def ratio(times: dict[str, list[float]], name: str) -> float:
        pairs = zip(times[baseline], times[name], strict=True)
        return statistics.median(b / max(v, 1e-9) for b, v in pairs)

    return {name: {
        "median_ms": statistics.median(t) * 1e3,
        "min_ms": min(t) * 1e3,
        "max_ms": max(t) * 1e3,
        "speedup": ratio(wall, name),
        "cpu_median_ms": statistics.median(cpu[name]) * 1e3,
        "cpu_speedup": ratio(cpu, name),
    } for name, t in wall.items()}


def errors(y: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    err = (y.double() - ref).abs()
    return {"max_abs": err.max().item(),
            "max_rel": (err.max() / ref.abs().max()).item(),
            "rms_rel": (err.pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()).item()}


def bench_conv(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    c, s = args.channels, args.size
    conv = torch.nn.Conv2d(c, c, 3)  # padding 0: the caller reflect-pads, as ResidualBlock does
    torch.nn.init.normal_(conv.weight, 0.0, 0.02)  # the generator's init (init_weights)
    torch.nn.init.normal_(conv.bias, 0.0, 0.02)
    # Post-ReLU-like activations of unit scale: what a residual block's convs see.
    x = F.pad(torch.randn(args.batch, c, s, s).relu(), (1, 1, 1, 1), mode="reflect")
    wino = {m: WinogradConv2d(conv, m) for m in (2, 4)}
    conv_cl = copy.deepcopy(conv).to(memory_format=torch.channels_last)
    inputs = {"nchw": x, "channels_last": x.contiguous(memory_format=torch.channels_last)}
    fns: dict[str, Callable[[], Any]] = {}
    for layout, xi in inputs.items():
        direct = conv if layout == "nchw" else conv_cl
        fns[f"F.conv2d ({layout})"] = lambda d=direct, xi=xi: d(xi)
        for m, w in wino.items():
            fns[f"winograd F({m},3) ({layout})"] = lambda w=w, xi=xi: w(xi)
    with torch.inference_mode():
        ref = F.conv2d(x.double(), conv.weight.double(), conv.bias.double())
        errs = {name: errors(fn(), ref) for name, fn in fns.items()}
        timing = interleaved(fns, args.rounds, args.warmup, "F.conv2d (nchw)")
    gflop = 2 * args.batch * c * c * 9 * s * s / 1e9
    return {"shape": f"{args.batch}x{c}x{s}x{s}, 3x3 {c}->{c}, reflect-padded", "gflop": gflop,
            "variants": {k: {**timing[k], **errs[k]} for k in fns}}


def bench_net(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(0)
    g = ResnetGenerator(ngf=args.ngf, n_blocks=args.n_blocks).eval()
    fast = fast_inference(g)
    cl = torch.channels_last
    g_cl, fast_cl = copy.deepcopy(g).to(memory_format=cl), copy.deepcopy(fast).to(memory_format=cl)
    x = torch.rand(1, 3, args.image_size, args.image_size) * 2 - 1
    x_cl = x.contiguous(memory_format=cl)
    fns = {"eager (nchw)": lambda: g(x), "fast_inference (nchw)": lambda: fast(x),
           "eager (channels_last)": lambda: g_cl(x_cl),
           "fast_inference (channels_last)": lambda: fast_cl(x_cl)}
    with torch.inference_mode():
        ref = g.double()(x.double())
        g.float()
        errs = {name: errors(fn(), ref) for name, fn in fns.items()}
        timing = interleaved(fns, args.net_rounds, 1, "eager (nchw)")
    return {"shape": f"ResnetGenerator(ngf={args.ngf}, n_blocks={args.n_blocks}), "
                     f"1x3x{args.image_size}x{args.image_size}",
            "variants": {k: {**timing[k], **errs[k]} for k in fns}}


def show(title: str, result: dict[str, Any], unit: str = "ms") -> None:
    print(f"\n{title}: {result['shape']}")
    print(f"{'variant':34} {'median ' + unit:>11} {'min':>9} {'max':>9} {'speedup':>8} "
          f"{'cpu ' + unit:>9} {'cpu spdup':>9} {'max_rel err':>12} {'rms_rel err':>12}")
    for name, v in result["variants"].items():
        scale = 1e-3 if unit == "s" else 1.0
        print(f"{name:34} {v['median_ms'] * scale:11.3f} {v['min_ms'] * scale:9.3f} "
              f"{v['max_ms'] * scale:9.3f} {v['speedup']:7.2f}× "
              f"{v['cpu_median_ms'] * scale:9.3f} {v['cpu_speedup']:8.2f}× "
              f"{v['max_rel']:12.2e} {v['rms_rel']:12.2e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--size", type=int, default=64, help="feature map side before padding")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-net", dest="net", action="store_false", help="skip the generator part")
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--n-blocks", type=int, default=9)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--net-rounds", type=int, default=6)
    p.add_argument("--no-malloc-tuning", dest="malloc", action="store_false",
                   help="leave glibc's allocator as it is (translate.perf.tune_allocator)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.malloc:
        tune_allocator()  # as every `translate` command runs: large temporaries reuse pages

    header = machine(torch.device("cpu"))
    print(f"{header['cpu']}, {header['cpu_count']} CPUs, torch {header['torch']}, "
          f"{header['torch_threads']} threads; load average {header['load_average_start']}")
    conv = bench_conv(args)
    show(f"conv ({conv['gflop']:.2f} GFLOP direct)", conv)
    f43 = conv["variants"]["winograd F(4,3) (nchw)"]
    ok = f43["speedup"] >= GATE_SPEEDUP and f43["max_rel"] <= GATE_ERROR
    print(f"gate (F(4,3), nchw: speedup >= {GATE_SPEEDUP}× and max_rel <= {GATE_ERROR:g}): "
          f"{'PASS' if ok else 'FAIL'} ({f43['speedup']:.2f}×, {f43['max_rel']:.1e})")
    payload: dict[str, Any] = {"machine": header, "args": {k: str(v) if isinstance(v, Path) else v
                                                            for k, v in vars(args).items()},
                               "conv": conv, "gate_pass": ok}
    if args.net:
        net = bench_net(args)
        show("generator forward", net, unit="s")
        payload["net"] = net
    finish(header, payload, args.json, "speedup = median over rounds of (baseline / variant) "
           "within each round; errors against float64")


if __name__ == "__main__":
    main()
