"""Super-resolution speed, side by side in one run: training-step time of the two ×4
upsamplers, and whole-image vs tiled inference.

Variants are interleaved round by round (A, B, A, B, …) so that a change in the machine's load
hits both alike; the table reports medians and the ratio to the first variant.

    .venv/bin/python scripts/bench_sr.py [--threads N] [--nf 32] [--blocks 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine  # noqa: E402

from translate.infer import SRPipeline  # noqa: E402
from translate.modelfile import Model  # noqa: E402
from translate.nets.sr import SRGenerator  # noqa: E402


def train_step_timer(upsampler: str, nf: int, blocks: int, batch: int, patch: int):
    torch.manual_seed(0)
    net = SRGenerator(4, nf, blocks, upsampler=upsampler)
    opt = torch.optim.Adam(net.parameters(), 2e-4, fused=True)
    x, y = torch.rand(batch, 3, patch, patch), torch.rand(batch, 3, 4 * patch, 4 * patch)

    def step() -> float:
        t = time.perf_counter()
        loss = (net(x) - y).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - t

    step()  # warm-up (allocator, oneDNN primitives)
    return step


def infer_timer(tile: int, overlap: int | None, nf: int, blocks: int, size: int):
    torch.manual_seed(0)
    net = SRGenerator(4, nf, blocks, upsampler="lite").eval()
    model = Model("sr", {"G": net},
                  {"scale": 4, "receptive_radius": net.receptive_radius})
    pipeline = SRPipeline(model, "cpu", "fp32", tile=tile, tile_overlap=overlap)
    x = torch.rand(1, 3, size, size)

    def run() -> float:
        t = time.perf_counter()
        pipeline(x)
        return time.perf_counter() - t

    run()
    return run


def measure(variants: dict, rounds: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            times[name].append(fn())
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--nf", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=24, help="LR patch side for training steps")
    ap.add_argument("--size", type=int, default=192, help="LR image side for inference")
    ap.add_argument("--tile", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine(torch.device("cpu"))
    train = measure({up: train_step_timer(up, args.nf, args.blocks, args.batch, args.patch)
                     for up in ("pixelshuffle", "lite")}, args.rounds)
    radius = SRGenerator(4, args.nf, args.blocks, upsampler="lite").receptive_radius
    infer = measure({
        "whole": infer_timer(0, None, args.nf, args.blocks, args.size),
        f"tile {args.tile} overlap {2 * radius}": infer_timer(args.tile, 2 * radius, args.nf,
                                                              args.blocks, args.size),
    }, args.rounds)
    print(f"machine: {info['cpu']} × {info['cpu_count']}, torch {info['torch']}, "
          f"{info['torch_threads']} threads, load {info['load_average_start'][0]:.2f}")
    print(f"training step, ×4, nf {args.nf}, {args.blocks} blocks, batch {args.batch} × "
          f"{args.patch}² LR:")
    base = train["pixelshuffle"]
    for name, t in train.items():
        print(f"  {name:<28} {t:8.3f} s   {base / t:5.2f}× pixelshuffle's speed")
    print(f"inference, {args.size}² LR → {4 * args.size}² ('lite' net):")
    base = infer["whole"]
    for name, t in infer.items():
        print(f"  {name:<28} {t:8.3f} s   {t / base:5.2f}× the whole-image time")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "args": vars(args) | {"json": None},
                                         "train_s": train, "infer_s": infer}, indent=2))


if __name__ == "__main__":
    main()
