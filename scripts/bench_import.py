"""Imported models (``translate import``) through ``translate infer`` vs a plain spandrel loop.

The plain loop is how spandrel's users run a model: ``ModelLoader().load_from_file`` once, then
for each photo PIL open → tensor → ``descriptor(x)`` → uint8 → PIL save. ``translate infer`` runs
the same weights after ``translate import`` (decode workers, the memory-budgeted SR path, threaded
writes). Both write PNGs; their pixels are compared (max difference in levels).

Architectures at their real sizes with random weights (no download): RRDBNet as Real-ESRGAN's
x4plus (23 blocks, nf 64) and SRVGGNetCompact as realesr-general-x4v3 (nf 64, 32 convs). Photos:
centre crops of ``../shared/data/sr/Urban100_first20`` (real photos) at ``--size``.

Each variant runs as a whole command in a fresh process (`translate infer …` or this script's
``--_plain``), timed from start to exit, peak RSS from ``os.wait4``; variants alternate in each
round so drifting machine load falls on both.

    python scripts/bench_import.py                       # both archs, 20 photos of 512², 1 round
    python scripts/bench_import.py --arch compact --n 20 --rounds 2
    python scripts/bench_import.py --arch rrdb --n 4 --variants plain,translate,translate-bf16
    python scripts/bench_import.py --arch compact --variants plain,translate,translate@300M
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "data" / "sr" / "Urban100_first20"
VARIANTS = {
    "plain": None,
    "translate": [],
    "translate-bf16": ["--precision", "bf16"],
}


def build(arch: str) -> torch.nn.Module:
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    if arch == "rrdb":  # RealESRGAN_x4plus
        return ESRGAN(num_filters=64, num_blocks=23, scale=4).eval()
    return Compact(num_feat=64, num_conv=32, upscale=4, act_type="prelu").eval()  # general-x4v3


def photos(folder: Path, n: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(PHOTOS.glob("*.png"))
    if not files:
        raise SystemExit(f"no photos at {PHOTOS}")
    for i in range(n):
        image = Image.open(files[i % len(files)]).convert("RGB")
        w, h = image.size
        left, top = (w - size) // 2 + (i // len(files)) * 7, (h - size) // 2
        image.crop((left, top, left + size, top + size)).save(folder / f"photo_{i:03d}.png")


def plain(weights: Path, inputs: Path, outputs: Path) -> None:
    """The loop spandrel's users write (run in a fresh process by ``--_plain``)."""
    import spandrel

    outputs.mkdir(parents=True, exist_ok=True)
    model = spandrel.ModelLoader().load_from_file(weights).eval()
    for path in sorted(inputs.glob("*.png")):
        x = torch.from_numpy(np.array(Image.open(path).convert("RGB")))
        x = x.permute(2, 0, 1)[None].float() / 255
        y = model(x)[0].permute(1, 2, 0).mul(255).round().byte().numpy()
        Image.fromarray(y).save(outputs / path.name)


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of ``command`` run to its end."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed ({status})")
    return seconds, usage.ru_maxrss / 1024


def max_diff(a: Path, b: Path) -> int:
    worst = 0
    for f in sorted(a.glob("*.png")):
        x = np.asarray(Image.open(f)).astype(int)
        y = np.asarray(Image.open(b / f.name)).astype(int)
        worst = max(worst, int(np.abs(x - y).max()))
    return worst


def variant_options(name: str) -> list[str] | None:
    """``translate infer``'s options for a variant (None: the plain loop); ``NAME@BUDGET`` adds
    ``--max-memory BUDGET`` to NAME's, e.g. ``translate@300M``."""
    base, _, budget = name.partition("@")
    if base not in VARIANTS:
        raise SystemExit(f"unknown variant {base!r}: one of {', '.join(VARIANTS)} (@BUDGET)")
    options = VARIANTS[base]
    if options is None or not budget:
        return options
    return [*options, "--max-memory", budget]


def bench(arch: str, n: int, size: int, rounds: int, variants: list[str], work: Path
          ) -> list[dict]:
    from translate.importer import import_model

    weights = work / f"{arch}.pth"
    torch.save({"params_ema": build(arch).state_dict()}, weights)
    model = work / f"model_{arch}"
    import_model(weights, model, overwrite=True)
    inputs = work / "photos"
    photos(inputs, n, size)
    translate = str(Path(sys.executable).parent / "translate")
    rows: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    for r in range(rounds):
        for v in variants if r % 2 == 0 else variants[::-1]:
            out = work / f"out_{arch}_{v}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            if variant_options(v) is None:
                cmd = [sys.executable, __file__, "--_plain", str(weights), str(inputs), str(out)]
            else:
                cmd = [translate, "infer", str(model), str(inputs), str(out), "-q",
                       *variant_options(v)]
            rows[v].append(timed(cmd))
            print(f"  {arch} {v} round {r}: {rows[v][-1][0]:.1f} s, {rows[v][-1][1]:.0f} MiB",
                  flush=True)
    base = min(s for s, _ in rows["plain"]) if "plain" in rows else None
    out = []
    for v, runs in rows.items():
        best = min(s for s, _ in runs)
        diff = (max_diff(work / f"out_{arch}_{v}", work / f"out_{arch}_plain")
                if "plain" in rows else None)
        out.append({"arch": arch, "variant": v, "images": n, "size": size, "seconds": best,
                    "images_per_s": n / best, "vs_plain": base / best if base else None,
                    "peak_rss_mib": max(m for _, m in runs), "max_diff_levels": diff})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="compact,rrdb", help="compact, rrdb or both")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--variants", default="plain,translate,translate-bf16")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--_plain", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._plain:
        plain(*args._plain)
        return
    info = machine(torch.device("cpu"))
    print(f"CPU: {info['cpu']} ({info['cpu_count']} cores), torch {info['torch']}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch.split(","):
            rows += bench(arch, args.n, args.size, args.rounds, args.variants.split(","),
                          Path(tmp))
    print(f"\n| arch | variant | {rows[0]['images']} photos of {rows[0]['size']}² | images/s "
          "| vs plain | peak RSS MiB | max diff vs plain (levels) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = f"{r['vs_plain']:.2f}x" if r["vs_plain"] else "—"
        print(f"| {r['arch']} | {r['variant']} | {r['seconds']:.1f} s | {r['images_per_s']:.3f} | "
              f"{ratio} | {r['peak_rss_mib']:.0f} | {r['max_diff_levels']} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
