"""Translation evaluation (``translate eval CYCLEGAN_RUN --a DIR --b DIR``): old path against new.

Part 1, the feature network alone (VGG16/HED, ``FID-VGG16``, every image resized to 224x224):
the same images one at a time through the plain network (the old path) against the fast form
(``translate.eval.features.fast_feature_net``: Winograd F(4x4, 3x3) convs from 128 channels on,
channels_last) one at a time and in batches; errors of the features against the plain path.
Part 2, the whole ``evaluate_translation`` (generators both ways, cycle PSNR/SSIM, features,
FID/KID): ``feature_batch=1, fast_features=False`` (what it did before) against the defaults,
and the largest relative difference of any FID/KID number between them.

Variants run round-robin (one call of each per round, after a warm-up call of each), so load
from other processes falls on all of them alike; the ratio is the median over rounds of
(old time / variant time) within the round. torchmetrics' first import (several seconds, paid
once per process by either path) happens during the warm-up and is reported apart.

The model is a random-weight CycleGAN generator pair of the given size (default ngf 32, 6 blocks:
the monet64 run's architecture), or a trained run with ``--model``.

    OMP_NUM_THREADS=1 python scripts/bench_eval.py --threads 1
    OMP_NUM_THREADS=1 python scripts/bench_eval.py --threads 1 --model runs/monet64 \\
        --a datasets/monet64/testA --b datasets/monet64/testB --size 0 --n-max 0 \\
        --feature-images 0 --rounds 1 --warmup 0
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

# Benchmark the checkout this script lives in, whichever copy the environment has installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import finish, machine  # noqa: E402

from translate.eval.features import fast_feature_net  # noqa: E402
from translate.eval.translation import _load, evaluate_translation  # noqa: E402
from translate.io.images import scan_images  # noqa: E402
from translate.modelfile import load_model, save_model  # noqa: E402
from translate.nets.resnet import ResnetGenerator  # noqa: E402
from translate.nets.vgg import load_vgg16_h5  # noqa: E402
from translate.perf import tune_allocator  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "monet2photo"
SCORES = ("fid", "kid_mean", "input_fid", "input_kid_mean")


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int, baseline: str,
                warmup: int = 1) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """``warmup`` untimed calls of each, then ``rounds`` round-robin timed calls; medians and
    ratios. Returns the timings and each function's last result."""
    last: dict[str, Any] = {}
    for _ in range(warmup):
        last = {name: fn() for name, fn in fns.items()}
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            last[name] = fn()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)

    def ratio(times: dict[str, list[float]], name: str) -> float:
        pairs = zip(times[baseline], times[name], strict=True)
        return statistics.median(b / max(v, 1e-9) for b, v in pairs)

    return {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t),
                   "speedup": ratio(wall, name), "cpu_median_s": statistics.median(cpu[name]),
                   "cpu_speedup": ratio(cpu, name)} for name, t in wall.items()}, last


def show(title: str, timing: dict[str, dict[str, float]], extra: dict[str, str],
         per: int, unit: str) -> None:
    print(f"\n{title}")
    print(f"{'variant':44} {'median s':>9} {'min':>8} {'max':>8} {unit:>10} {'speedup':>8} "
          f"{'cpu spdup':>9}  {'vs old'}")
    for name, t in timing.items():
        print(f"{name:44} {t['median_s']:9.2f} {t['min_s']:8.2f} {t['max_s']:8.2f} "
              f"{t['median_s'] / per * 1e3:10.1f} {t['speedup']:7.2f}× {t['cpu_speedup']:8.2f}×  "
              f"{extra[name]}")


def bench_features(files: list[Path], size: int | None, rounds: int,
                   warmup: int) -> dict[str, Any]:
    plain = load_vgg16_h5()  # every block on the whole batch
    fast = fast_feature_net(plain, "cpu")  # blocks 1–3 one image at a time, 4–5 batched
    whole = fast_feature_net(plain, "cpu")
    whole.per_image_blocks = 0
    images = torch.cat([_load(p, size) for p in files])

    def run(net: torch.nn.Module, batch: int) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([net(images[i : i + batch]) for i in range(0, len(images), batch)])

    fns = {"old: plain convs, one image at a time": lambda: run(plain, 1),
           "plain convs, batch 8": lambda: run(plain, 8),
           "fast convs, one image at a time": lambda: run(fast, 1),
           "new: fast convs, batch 8": lambda: run(fast, 8),
           "fast convs, batch 8, all blocks batched": lambda: run(whole, 8)}
    timing, out = interleaved(fns, rounds, "old: plain convs, one image at a time", warmup)
    ref = out["old: plain convs, one image at a time"].double()
    errors = {k: ((v.double() - ref).abs().max() / ref.abs().max()).item() for k, v in out.items()}
    return {"images": len(images), "timing": timing, "max_rel_error": errors}


def bench_eval(model_dir: Path, dir_a: Path, dir_b: Path, size: int | None, n_max: int | None,
               rounds: int, warmup: int) -> dict[str, Any]:
    model, features = load_model(model_dir), load_vgg16_h5()
    args = (model, dir_a, dir_b, features, "FID-VGG16")
    kw = {"size": size, "n_max": n_max, "show_progress": False}
    fns = {"old: per image, plain convs": lambda: evaluate_translation(
               *args, **kw, feature_batch=1, fast_features=False).as_dict(),
           "fast convs, per image": lambda: evaluate_translation(
               *args, **kw, feature_batch=1).as_dict(),
           "new: fast convs, batch 8 (default)": lambda: evaluate_translation(
               *args, **kw).as_dict()}
    t0 = time.perf_counter()
    import torchmetrics  # noqa: F401  (its first import, timed apart)

    import_s = time.perf_counter() - t0
    timing, out = interleaved(fns, rounds, "old: per image, plain convs", warmup)
    old = out["old: per image, plain convs"]["directions"]
    diffs = {}
    for name, result in out.items():
        diffs[name] = max(abs(result["directions"][d][k] - old[d][k]) / abs(old[d][k])
                          for d in old for k in SCORES)
    first = next(iter(out.values()))["directions"]
    n = first["a2b"]["n_source"] + first["b2a"]["n_source"]
    return {"images": n, "torchmetrics_import_s": import_s, "timing": timing,
            "max_rel_score_diff": diffs, "scores_old": old}


def random_model(folder: Path, ngf: int, n_blocks: int) -> Path:
    torch.manual_seed(0)
    nets = {k: ResnetGenerator(ngf=ngf, n_blocks=n_blocks) for k in ("G_AB", "G_BA")}
    save_model(folder, "cyclegan", nets,
               {"value_range": [-1.0, 1.0], "directions": {"a2b": "G_AB", "b2a": "G_BA"},
                "size_multiple": 4, "channels": 3})
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--a", type=Path, default=DATA / "testA")
    p.add_argument("--b", type=Path, default=DATA / "testB")
    p.add_argument("--n-max", type=int, default=12, help="images per folder (0: all)")
    p.add_argument("--size", type=int, default=72, help="resize to size² first (0: own size)")
    p.add_argument("--model", type=Path, help="a cyclegan run (default: random weights)")
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--n-blocks", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="untimed calls of each variant first")
    p.add_argument("--feature-images", type=int, default=16, help="part 1 (0: skip it)")
    p.add_argument("--no-eval", dest="eval", action="store_false", help="skip part 2")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tune_allocator()  # as every `translate` command runs
    size, n_max = args.size or None, args.n_max or None
    header = machine(torch.device("cpu"))
    print(f"{header['cpu']}, {header['cpu_count']} CPUs, torch {header['torch']}, "
          f"{header['torch_threads']} threads; load average {header['load_average_start']}")
    payload: dict[str, Any] = {"machine": header, "args": {k: str(v) if isinstance(v, Path)
                                                            else v for k, v in vars(args).items()}}
    if args.feature_images:
        files = sorted(scan_images(args.a))[: args.feature_images // 2] + sorted(
            scan_images(args.b))[: args.feature_images - args.feature_images // 2]
        feats = bench_features(files, size, args.rounds, args.warmup)
        show(f"part 1: VGG16 features of {feats['images']} images ({args.a.name} + "
             f"{args.b.name}, {size or 'own size'} px, resized to 224² inside)", feats["timing"],
             {k: f"max rel error {v:.1e}" for k, v in feats["max_rel_error"].items()},
             feats["images"], "ms/image")
        payload["features"] = feats
    if args.eval:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = args.model or random_model(Path(tmp) / "model", args.ngf, args.n_blocks)
            ev = bench_eval(model_dir, args.a, args.b, size, n_max, args.rounds, args.warmup)
        what = args.model or f"random ResnetGenerator(ngf={args.ngf}, n_blocks={args.n_blocks})"
        show(f"part 2: evaluate_translation, {what}, {ev['images']} source images "
             f"({n_max or 'all'} per folder, {size or 'own size'} px); torchmetrics' first "
             f"import {ev['torchmetrics_import_s']:.1f} s, not in the times", ev["timing"],
             {k: f"max rel FID/KID diff {v:.1e}" for k, v in ev["max_rel_score_diff"].items()},
             ev["images"], "ms/image")
        payload["eval"] = ev
    finish(header, payload, args.json,
           "speedup = median over rounds of (old / variant) within each round")


if __name__ == "__main__":
    main()
