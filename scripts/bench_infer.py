"""Folder-inference throughput: the project pipeline against a naive loop, side by side in one run.

Both variants translate the same generated folder of random-content images with the same saved
model (a ResnetGenerator pair written by ``translate.modelfile.save_model``, read back by
``load_model``), writing PNG outputs so that their pixels can be compared exactly:

* ``pipeline``: ``translate.infer.run_folder`` with a ``TranslationPipeline`` (DataLoader decode
  workers, batches of equal-size images, autocast, threaded writes) in a process whose allocator
  is tuned (``translate.perf.tune_allocator``), as ``translate infer`` runs (on CPU at fp32 that
  includes the Winograd 3x3 convs, ``fast_conv``). ``--variants`` adds pipelines that change
  one option: ``pipeline-no-fast-conv`` (``--no-fast-conv``), ``pipeline-compile``
  (``--compile``); each is compared with the naive loop's pixels.
* ``naive``: PIL open → tensor → model at batch 1 → PIL save, one image after another, under the
  same precision (so that the pixel check compares the plumbing, not the arithmetic).

Each variant runs in a fresh subprocess of this script (``--_variant``), so its peak RSS
(``getrusage``) and, on CUDA, ``torch.cuda.max_memory_allocated`` are its own. Times cover the
folder loop only (decode, compute, encode, write), after loading the model and one warm-up
forward pass; the subprocess start and model loading are excluded.

    python scripts/bench_infer.py                 # 40 images (400 on CUDA), 256², ResNet-9, 2 runs
    python scripts/bench_infer.py --quick         # a smoke run in seconds
    python scripts/bench_infer.py --variants pipeline,pipeline-no-fast-conv,pipeline-compile
    python scripts/bench_infer.py --n 500 --batch-size 16 --device cuda --json infer.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Benchmark the checkout this script lives in, whichever copy the environment has installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import machine  # noqa: E402

# "pipeline" is `translate infer` as it comes (on CPU at fp32: Winograd 3x3 convs, fast_conv);
# the others change one option of it.
PIPELINE_OPTIONS = {
    "pipeline": {},
    "pipeline-no-fast-conv": {"fast_conv": False},  # translate infer --no-fast-conv
    "pipeline-compile": {"compile": True},  # translate infer --compile
}
VARIANTS = ("naive", *PIPELINE_OPTIONS)
DEFAULT_VARIANTS = "naive,pipeline,pipeline-no-fast-conv"


# ── Shared helpers.




def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"256,320x240"`` → [(256, 256), (240, 320)] as (H, W); ``WxH`` like image viewers."""
    sizes = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        w, _, h = part.partition("x")
        try:
            sizes.append((int(h or w), int(w)))
        except ValueError:
            raise SystemExit(f"--sizes: {part!r} is not S or WxH") from None
    if not sizes or min(min(s) for s in sizes) < 8:
        raise SystemExit("--sizes: give at least one size, each side >= 8")
    return sizes


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, else KiB


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        found += [int(c) for c in text.split()]
    return found


def tree_mib() -> float | None:
    """RSS of this process plus the private memory of all its descendants (DataLoader workers),
    Linux only. Forked workers share the parent's pages; only what each one has of its own
    (private clean + dirty) is added, so nothing is counted twice. None where /proc cannot tell.
    """
    try:
        pids, i = [os.getpid()], 0
        while i < len(pids):
            pids += _children(pids[i])
            i += 1
        total = 0
        for n, pid in enumerate(pids):
            fields = ("Rss:",) if n == 0 else ("Private_Clean:", "Private_Dirty:")
            try:
                text = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue  # a worker that just exited
            for line in text.splitlines():
                if line.startswith(fields):
                    total += int(line.split()[1])  # kB
        return total / 2**10
    except OSError:
        return None


class MemorySampler:
    """Samples ``tree_mib`` in a thread every ``interval`` seconds; keeps the peak."""

    def __init__(self, interval: float = 0.1):
        import threading

        self.interval, self.peak = interval, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = tree_mib()
            if now is None:
                return
            self.peak = now if self.peak is None else max(self.peak, now)
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


class UtilisationSampler:
    """Samples ``torch.cuda.utilization`` (NVML: the share of the last sample period in which
    a kernel ran) every ``interval`` seconds in a thread; ``mean`` is None where NVML is
    missing (no pynvml) or on the CPU."""

    def __init__(self, device: torch.device, interval: float = 0.05):
        import threading

        self.device, self.interval, self.samples = device, interval, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(float(torch.cuda.utilization(self.device)))
            except Exception:  # no NVML here: report nothing rather than a guess
                return
            self._stop.wait(self.interval)

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.samples) if self.samples else None

    def __enter__(self) -> UtilisationSampler:
        if self.device.type == "cuda":
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


# ── Setup (parent process).


def write_inputs(folder: Path, n: int, sizes: list[tuple[int, int]], fmt: str, seed: int) -> None:
    """``n`` images: smooth random colour fields plus noise, sizes in contiguous blocks."""
    from translate.io.images import write_image

    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = sizes[i * len(sizes) // n]
        coarse = rng.random((h // 16 + 1, w // 16 + 1, 3), dtype=np.float32)
        smooth = np.kron(coarse, np.ones((16, 16, 1), np.float32))[:h, :w]
        noisy = np.clip(smooth + 0.08 * rng.standard_normal(smooth.shape), 0, 1)
        write_image(folder / f"img_{i:05d}.{fmt}", noisy.astype(np.float32))


def write_model(folder: Path, ngf: int, n_blocks: int, seed: int, task: str = "translation",
                scale: int = 4) -> None:
    from translate.modelfile import save_model
    from translate.nets.resnet import ResnetGenerator
    from translate.nets.sr import SRGenerator

    torch.manual_seed(seed)
    if task == "sr":  # SRGenerator(scale, nf, n_blocks): configs/sr.yaml's network at its defaults
        g = SRGenerator(scale, ngf, n_blocks)
        save_model(folder, "sr", {"G": g}, {
            "value_range": [0.0, 1.0], "scale": scale, "channels": 3,
            "receptive_radius": g.receptive_radius,
        })
        return
    g, g2 = ResnetGenerator(ngf=ngf, n_blocks=n_blocks), ResnetGenerator(ngf=ngf, n_blocks=n_blocks)
    save_model(folder, "cyclegan", {"G_AB": g, "G_BA": g2}, {
        "value_range": [-1.0, 1.0], "directions": {"a2b": "G_AB", "b2a": "G_BA"},
        "size_multiple": 4, "channels": 3,
    })


def compare(out_a: Path, out_b: Path) -> dict[str, Any]:
    """Max |Δ| in 8-bit levels between same-named PNGs in two folders."""
    from PIL import Image

    names_a = sorted(p.name for p in out_a.glob("*.png"))
    names_b = sorted(p.name for p in out_b.glob("*.png"))
    worst, over_one, differ, pixels = 0, 0, 0, 0
    for name in sorted(set(names_a) & set(names_b)):
        a = np.asarray(Image.open(out_a / name).convert("RGB"), dtype=np.int16)
        b = np.asarray(Image.open(out_b / name).convert("RGB"), dtype=np.int16)
        if a.shape != b.shape:
            return {"same_files": False, "reason": f"{name}: shapes {a.shape} vs {b.shape}"}
        d = np.abs(a - b)
        worst = max(worst, int(d.max()))
        over_one += int((d > 1).sum())
        differ += int((d > 0).sum())
        pixels += d.size
    return {"same_files": names_a == names_b and bool(names_a), "files": len(names_a),
            "files_other": len(names_b), "max_abs_levels": worst,
            "values_over_1_level": over_one, "values_differing": differ, "values": pixels}


# ── The two variants (child process).


def run_naive(args: argparse.Namespace, model: Any, device: torch.device) -> float:
    """The naive loop: PIL open → whole image through the network → save as PNG.

    Translation models get [-1, 1] inputs reflect-padded to their size multiple (cropped back);
    super-resolution models take [0, 1] inputs as they are.
    """
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    from translate.nets.layers import crop_to, pad_to_multiple
    from translate.runtime import Precision

    if args.task == "sr":
        net = model.networks["G"].to(device).eval()

        def forward(x: torch.Tensor) -> torch.Tensor:  # (1, 3, h, w) → (1, 3, s h, s w)
            return net(x).float().clamp(0, 1)
    else:
        net = model.networks[model.meta["directions"]["a2b"]].to(device).eval()
        multiple = int(model.meta.get("size_multiple", 4))

        def forward(x: torch.Tensor) -> torch.Tensor:  # (1, 3, H, W) → (1, 3, H, W)
            padded, size = pad_to_multiple(x * 2 - 1, multiple)
            return ((crop_to(net(padded).float(), size) + 1) / 2).clamp(0, 1)

    autocast = Precision(args.precision, device).autocast
    files = sorted(p for p in Path(args._input).iterdir() if p.suffix.lower() in (".jpg", ".png"))
    out = Path(args._output)
    out.mkdir(parents=True, exist_ok=True)
    first = to_tensor(Image.open(files[0]).convert("RGB")).unsqueeze(0).to(device)
    with torch.no_grad(), autocast():  # warm-up, untimed
        forward(first)
    sync(device)
    start = time.perf_counter()
    for path in files:
        x = to_tensor(Image.open(path).convert("RGB")).unsqueeze(0).to(device)
        with torch.no_grad(), autocast():
            y = forward(x)
        array = np.rint(y[0].permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
        Image.fromarray(array).save(out / f"{path.stem}.png")
    sync(device)
    return time.perf_counter() - start


def run_pipeline(args: argparse.Namespace, model: Any, device: torch.device) -> float:
    from PIL import Image
    from torchvision.transforms.functional import to_tensor

    from translate.infer import SRPipeline, TranslationPipeline, run_folder

    if args.task == "sr":
        pipe = SRPipeline(model, device, args.precision, tile=args.tile)
    else:
        pipe = TranslationPipeline(model, "a2b", device, args.precision,
                                   **PIPELINE_OPTIONS[args._variant])
    first = sorted(Path(args._input).iterdir())[0]
    x = to_tensor(Image.open(first).convert("RGB")).unsqueeze(0)
    pipe(x.expand(args.batch_size, -1, -1, -1).contiguous())  # warm-up, untimed
    sync(device)
    start = time.perf_counter()
    report = run_folder(pipe, args._input, args._output, batch_size=args.batch_size, ext=".png",
                        num_workers=args.workers, show_progress=False)
    sync(device)
    seconds = time.perf_counter() - start
    if not report.ok or report.written != report.total:
        raise SystemExit(f"pipeline: {report.written}/{report.total} written, "
                         f"failures {report.failures[:3]}")
    return seconds


def runner_for(variant: str):
    """The folder loop a variant times: the naive one, or ``run_folder`` for every pipeline-*
    variant (each with its own options, ``PIPELINE_OPTIONS``)."""
    return run_naive if variant == "naive" else run_pipeline


def child(args: argparse.Namespace) -> None:
    import translate
    from translate.modelfile import load_model
    from translate.perf import tune_allocator
    from translate.runtime import resolve_device

    if args._variant != "naive":
        tune_allocator()  # as the translate command does at start-up (translate/perf.py)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = load_model(args._model, device=device, task=("cyclegan", "sr"))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run = runner_for(args._variant)
    cpu_start = time.process_time()
    with MemorySampler() as sampler, UtilisationSampler(device) as utilisation:
        seconds = run(args, model, device)  # includes the warm-up forward (a few ms on a GPU)
    cpu_seconds = time.process_time() - cpu_start  # all threads; includes the warm-up forward
    n = len(list(Path(args._output).glob("*.png")))
    result = {
        "variant": args._variant,
        "images": n,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "images_per_s": n / seconds,
        "peak_rss_mib": peak_rss_mib(),
        "peak_tree_mib": sampler.peak,
        "cuda_peak_mib": (torch.cuda.max_memory_allocated(device) / 2**20
                          if device.type == "cuda" else None),
        "gpu_util_mean": utilisation.mean,
        "torch_threads": torch.get_num_threads(),
        "translate": str(Path(translate.__file__).parent),
    }
    Path(args._result).write_text(json.dumps(result) + "\n")


# ── The parent: set up, run the children, compare, report.




def forward_args(args: argparse.Namespace) -> list[str]:
    out = ["--device", args.device, "--precision", args.precision,
           "--batch-size", str(args.batch_size), "--task", args.task, "--tile", str(args.tile)]
    if args.workers is not None:
        out += ["--workers", str(args.workers)]
    if args.threads:
        out += ["--threads", str(args.threads)]
    return out


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=None,
                   help="images in the generated folder (default: 40 on CPU, 400 on CUDA)")
    p.add_argument("--sizes", default="256",
                   help="image sizes, S or WxH, comma-separated (in contiguous blocks)")
    p.add_argument("--format", choices=("jpg", "png"), default="jpg", help="input file format")
    p.add_argument("--batch-size", type=int, default=1,
                   help="pipeline batch, as translate infer's --batch-size (naive: always 1)")
    p.add_argument("--workers", type=int, default=None,
                   help="pipeline decode workers (default: run_folder's own choice)")
    p.add_argument("--precision", default="auto",
                   help="auto (bf16 on a GPU that has it, fp32 on CPU), fp32, bf16, fp16")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--task", choices=("translation", "sr"), default="translation",
                   help="translation: ResnetGenerator; sr: SRGenerator (pipeline = translate "
                        "infer's SRPipeline, variants naive and pipeline only)")
    p.add_argument("--scale", type=int, default=4, help="sr: the upscaling factor")
    p.add_argument("--tile", type=int, default=0,
                   help="sr: the pipeline's --tile (LR tile side; 0 = whole image)")
    p.add_argument("--ngf", type=int, default=64, help="generator width (sr: nf)")
    p.add_argument("--n-blocks", type=int, default=None,
                   help="residual blocks (default 9 for translation, 16 for sr)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per variant")
    p.add_argument("--repeat", type=int, default=2,
                   help="runs per variant, in the order naive, pipeline, pipeline, naive, …; "
                        "the median is reported")
    p.add_argument("--tol", type=int, default=None,
                   help="pixel check tolerance in 8-bit levels (default: 1 for fp32, 4 for "
                        "bf16/fp16, whose rounding depends on batch size and memory format)")
    p.add_argument("--variants", default=DEFAULT_VARIANTS,
                   help=f"comma-separated, from {', '.join(VARIANTS)} (naive is always run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--quick", action="store_true",
                   help="smoke setting: 12 images of 64², ngf 16, 2 blocks, one run each")
    for hidden in ("--_variant", "--_input", "--_output", "--_model", "--_result"):
        p.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._variant:
        child(args)
        return
    if args.quick:  # new defaults; options given explicitly still win
        p.set_defaults(n=12, sizes="64", ngf=16, n_blocks=2, repeat=1)
        args = p.parse_args()
    sizes = parse_sizes(args.sizes)
    if args.n_blocks is None:
        args.n_blocks = 16 if args.task == "sr" else 9
    if args.task == "sr" and set(args.variants.split(",")) - {"naive", "pipeline"}:
        args.variants = "naive,pipeline"  # the other variants are translation options
    variants = ("naive", *(v for v in PIPELINE_OPTIONS if v in args.variants.split(",")))
    unknown = set(args.variants.split(",")) - set(VARIANTS)
    if unknown or len(variants) < 2:
        raise SystemExit(f"--variants: give at least one of {', '.join(PIPELINE_OPTIONS)}"
                         + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else ""))

    from translate.runtime import Precision, resolve_device

    device = resolve_device(args.device)
    args.n = args.n if args.n is not None else (400 if device.type == "cuda" else 40)
    if args.n < 1 or args.batch_size < 1 or args.repeat < 1:
        raise SystemExit("--n, --batch-size and --repeat must be >= 1")
    precision = Precision(args.precision, device).name
    tol = args.tol if args.tol is not None else (1 if precision == "fp32" else 4)
    header = machine(device)
    print("machine: " + ", ".join(f"{k}={v}" for k, v in header.items()), flush=True)
    busy = header["load_average_start"][0]
    if device.type == "cpu" and busy > 0.5:
        print(f"note: load average {busy:.2f} before starting — other processes share these "
              f"{os.cpu_count()} cores; absolute times are inflated", flush=True)
    size_text = ", ".join(f"{w}x{h}" for h, w in sizes)
    net = (f"SRGenerator x{args.scale} nf {args.ngf}, {args.n_blocks} blocks, pipeline tile "
           f"{args.tile or 'none'}" if args.task == "sr"
           else f"ResnetGenerator ngf {args.ngf}, {args.n_blocks} blocks")
    print(f"{args.n} {args.format.upper()} inputs ({size_text}); {net}; "
          f"precision {precision}; pipeline batch {args.batch_size}, "
          f"workers {'auto' if args.workers is None else args.workers}", flush=True)

    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="bench_infer_") as tmp:
        tmp = Path(tmp)
        write_inputs(tmp / "in", args.n, sizes, args.format, args.seed)
        write_model(tmp / "model", args.ngf, args.n_blocks, args.seed, args.task, args.scale)
        for rep in range(args.repeat):
            order = variants if rep % 2 == 0 else variants[::-1]
            for variant in order:
                out, result = tmp / f"out_{variant}_{rep}", tmp / f"{variant}_{rep}.json"
                cmd = [sys.executable, str(Path(__file__).resolve()), "--_variant", variant,
                       "--_input", str(tmp / "in"), "--_output", str(out),
                       "--_model", str(tmp / "model"), "--_result", str(result),
                       *forward_args(args)]
                print(f"[{variant}] run {rep + 1}/{args.repeat}", flush=True)
                subprocess.run(cmd, check=True)
                runs[variant].append(json.loads(result.read_text()))
                r = runs[variant][-1]
                print(f"  {r['images']} images in {r['seconds']:.2f} s = "
                      f"{r['images_per_s']:.3f} img/s", flush=True)
        last = args.repeat - 1
        checks = {v: compare(tmp / f"out_naive_{last}", tmp / f"out_{v}_{last}")
                  for v in variants[1:]}

    summary = {}
    for variant, rs in runs.items():
        med = statistics.median(r["seconds"] for r in rs)
        summary[variant] = {
            "images": rs[0]["images"],
            "seconds": med,
            "cpu_seconds": statistics.median(r["cpu_seconds"] for r in rs),
            "images_per_s": rs[0]["images"] / med,
            "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
            "peak_tree_mib": max((r["peak_tree_mib"] or 0.0) for r in rs) or None,
            "cuda_peak_mib": rs[0]["cuda_peak_mib"],
            "gpu_util_mean": rs[0].get("gpu_util_mean"),
            "runs": rs,
        }
    main_variant = variants[1]  # "pipeline" unless left out
    ratio = summary[main_variant]["images_per_s"] / summary["naive"]["images_per_s"]
    passes = {v: bool(c.get("same_files")) and c.get("max_abs_levels", 99) <= tol
              for v, c in checks.items()}
    ok = all(passes.values())

    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=140)
    table = Table(title=f"folder inference, {args.n} images ({size_text}) — {device} "
                        f"({header['device_name']})", title_justify="left")
    for col in ("variant", "images", "s", "images/s", "vs naive", "CPU s", "peak RSS MiB",
                "peak MiB incl. workers", "CUDA peak MiB"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for variant in variants:
        s = summary[variant]
        rel = s["images_per_s"] / summary["naive"]["images_per_s"]
        table.add_row(variant, str(s["images"]), f"{s['seconds']:.2f}",
                      f"{s['images_per_s']:.3f}", f"{rel:.2f}×", f"{s['cpu_seconds']:.1f}",
                      f"{s['peak_rss_mib']:.0f}",
                      fmt(s["peak_tree_mib"], ".0f"),
                      fmt(s["cuda_peak_mib"], ".0f"))
    console.print(table)
    console.print(f"{main_variant} / naive throughput: {ratio:.2f}× (median of {args.repeat} "
                  f"run(s) "
                  f"each; folder loop only: decode, compute, encode, write; model load and one "
                  f"warm-up forward excluded)")
    console.print("CPU s: the variant's process time, all its threads (the folder loop and the "
                  "warm-up; a machine shared with other jobs inflates wall time, less so this).")
    console.print("peak RSS: each variant's own subprocess (getrusage). Incl. workers: its RSS "
                  "plus its DataLoader workers' private memory, sampled every 0.1 s from /proc.")
    for variant, check in checks.items():
        if check.get("same_files") is False and "reason" in check:
            console.print(f"same pixels as naive, {variant}: FAIL ({check['reason']})")
            continue
        console.print(
            f"same pixels as naive, {variant}: {'PASS' if passes[variant] else 'FAIL'} — max "
            f"|Δ| {check['max_abs_levels']}/255 over {check['files']} vs {check['files_other']} "
            f"outputs; {check['values_differing']} of {check['values']} values differ, "
            f"{check['values_over_1_level']} by more than 1 level (tolerance {tol}/255)")
    header["load_average_end"] = list(os.getloadavg())
    print(f"load average start {header['load_average_start']}, end {header['load_average_end']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": header,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if not k.startswith("_")},
            "precision": precision,
            f"ratio_{main_variant}_over_naive": ratio,
            "pixel_check": {v: {**c, "tolerance_levels": tol, "pass": passes[v]}
                            for v, c in checks.items()},
            "variants": summary,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
