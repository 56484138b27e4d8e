"""The prepared device check (issue 14): the GPU tests and the CUDA benchmarks in one command,
within a time budget, writing what it has to ``OUT/gpu_check.json`` and ``OUT/gpu_check.md``
after every part (so a run cut short still leaves its figures).

Parts, in order of value (a part that would start past the budget is skipped, saying so):

1. ``gpu-tests``: ``pytest -m gpu tests/test_gpu.py`` (every task 50 steps at bf16 and fp16,
   the fp16 overflow step, channels_last/compile vs eager, GPU ↔ CPU resume, ``translate infer``
   on CUDA vs the CPU, ONNX from a GPU-trained model). Without CUDA they skip, each with its
   reason, and the summary lists them.
2. ``infer``: ``scripts/bench_infer.py``: a folder of 256² JPEGs, naive loop vs the pipeline,
   images/s, peak device memory, GPU utilisation in the timed window.
3. ``train-b8`` / ``train-b1``: ``scripts/bench_train.py`` at 256², fp32, tf32, bf16,
   bf16+cl, bf16+cl+compile: pairs/s, TFLOP/s, MFU against the GPU's stated peak, the
   equal-quality check.
4. ``sr-whole`` / ``sr-tiled``: ``bench_infer.py --task sr`` at 1024², ×4, whole vs 256 tiles.

``--device cpu --quick`` runs the same script on the CPU (CI): the tests skip, the benchmarks
run as small smoke runs, and the summary names what a GPU would add.

    python scripts/gpu_check.py --out gpucheck                    # on a GPU, ~6 min budget
    python scripts/gpu_check.py --device cpu --quick --out /tmp/gpucheck
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
TRAIN_CONFIGS = "fp32,tf32,bf16,bf16+cl,bf16+cl+compile"


@dataclass
class Part:
    name: str
    what: str
    command: list[str]
    budget: float  # seconds this part may take at most
    status: str = "not run"  # passed, failed, skipped, timed out
    reason: str = ""
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    log_tail: str = ""


def machine_line(device: str) -> str:
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    text = f"CPU {cpu} ({os.cpu_count()} cores)"
    if device != "cpu":
        import torch

        if torch.cuda.is_available():
            text += f"; GPU {torch.cuda.get_device_name(0)}"
    return text


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def plan(args: argparse.Namespace, gpu: bool) -> list[Part]:
    py = sys.executable
    out = args.out
    dev = "cuda" if gpu else "cpu"
    parts = [Part("gpu-tests", "pytest -m gpu (tests/test_gpu.py)",
                  [py, "-m", "pytest", "-m", "gpu", str(REPO / "tests" / "test_gpu.py"), "-q",
                   "-rs", "-p", "no:cacheprovider", f"--junitxml={out / 'gpu_tests.xml'}"],
                  budget=240 if gpu else 60)]
    if gpu:
        parts += [
            Part("infer", "bench_infer: 2,000 256² JPEGs, naive vs pipeline, batch 64",
                 [py, str(SCRIPTS / "bench_infer.py"), "--device", dev, "--n", "2000",
                  "--batch-size", "64", "--repeat", "1", "--variants", "naive,pipeline",
                  "--json", str(out / "infer.json")], budget=120),
            Part("train-b8", f"bench_train 256² batch 8: {TRAIN_CONFIGS}",
                 [py, str(SCRIPTS / "bench_train.py"), "--device", dev, "--batch", "8",
                  "--configs", TRAIN_CONFIGS, "--steps", "20", "--warmup", "3",
                  "--json", str(out / "train_b8.json")], budget=150),
            Part("train-b1", f"bench_train 256² batch 1: {TRAIN_CONFIGS}",
                 [py, str(SCRIPTS / "bench_train.py"), "--device", dev, "--batch", "1",
                  "--configs", TRAIN_CONFIGS, "--steps", "20", "--warmup", "3",
                  "--json", str(out / "train_b1.json")], budget=150),
            Part("sr-whole", "bench_infer --task sr: 20 1024² JPEGs ×4, whole image",
                 [py, str(SCRIPTS / "bench_infer.py"), "--device", dev, "--task", "sr",
                  "--sizes", "1024", "--n", "20", "--repeat", "1",
                  "--json", str(out / "sr_whole.json")], budget=60),
            Part("sr-tiled", "bench_infer --task sr: 20 1024² JPEGs ×4, 256 tiles",
                 [py, str(SCRIPTS / "bench_infer.py"), "--device", dev, "--task", "sr",
                  "--sizes", "1024", "--n", "20", "--repeat", "1", "--tile", "256",
                  "--json", str(out / "sr_tiled.json")], budget=60),
        ]
    else:  # smoke runs: the same scripts and code paths, at sizes the CPU does in seconds
        parts += [
            Part("infer", "bench_infer --quick on the CPU (smoke: 12 64² JPEGs)",
                 [py, str(SCRIPTS / "bench_infer.py"), "--device", dev, "--quick",
                  "--variants", "naive,pipeline", "--threads", "1",
                  "--json", str(out / "infer.json")], budget=60),
            Part("train-b1", "bench_train --quick on the CPU (smoke: 64², fp32 and bf16)",
                 [py, str(SCRIPTS / "bench_train.py"), "--device", dev, "--quick",
                  "--configs", "fp32,bf16", "--steps", "1", "--threads", "1",
                  "--json", str(out / "train_b1.json")], budget=60),
        ]
    return parts


GPU_ONLY = [
    ("the GPU tests themselves", "they skip without CUDA (each listed above with its reason)"),
    ("train-b8 / train-b1 at 256²: fp32, tf32, bf16, bf16+cl, bf16+cl+compile",
     "CUDA only: TF32, MFU against a GPU's peak; on this CPU bench_train runs as a smoke run"),
    ("infer: 2,000 256² JPEGs decoded by nvJPEG, batch 64, GPU utilisation",
     "CUDA only: device JPEG decoding, pinned copies; on this CPU bench_infer runs as a smoke run"),
    ("sr-whole / sr-tiled at 1024² ×4", "CUDA only: too slow for a CPU check"),
]


def run_part(part: Part, deadline: float, env: dict[str, str]) -> None:
    left = deadline - time.monotonic()
    if left < 10:
        part.status, part.reason = "skipped", "the --timeout budget was spent before it started"
        return
    limit = min(part.budget, left)
    print(f"[gpu_check] {part.name}: {' '.join(part.command[1:])} (limit {limit:.0f} s)",
          flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(part.command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=limit)
        part.status = "passed" if proc.returncode == 0 else "failed"
        if proc.returncode:
            part.reason = f"exit code {proc.returncode}"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the part and its workers, nothing else
        output, _ = proc.communicate()
        part.status, part.reason = "timed out", f"killed after {limit:.0f} s"
    part.seconds = time.monotonic() - started
    part.log_tail = "\n".join((output or "").splitlines()[-25:])


def read_figures(part: Part, out: Path) -> None:
    """The figures each part's JSON holds, flattened for the summary."""
    if part.name == "gpu-tests":
        part.figures = junit(out / "gpu_tests.xml")
        return
    path = out / {"infer": "infer.json", "train-b8": "train_b8.json",
                  "train-b1": "train_b1.json", "sr-whole": "sr_whole.json",
                  "sr-tiled": "sr_tiled.json"}[part.name]
    if not path.is_file():
        return
    data = json.loads(path.read_text())
    if part.name.startswith("train"):
        part.figures = {
            "flops_per_step": data.get("flops_per_step"),
            "configs": [{k: r.get(k) for k in ("label", "status", "pairs_per_s", "tflops",
                                                "mfu", "peak_name", "cuda_peak_mib",
                                                "max_loss_diff")}
                        for r in data["results"]]}
    else:
        part.figures = {
            "precision": data.get("precision"),
            "pixel_check": {v: c.get("pass") for v, c in data.get("pixel_check", {}).items()},
            "variants": {v: {k: s.get(k) for k in ("images", "images_per_s", "cuda_peak_mib",
                                                     "gpu_util_mean", "peak_rss_mib")}
                         for v, s in data["variants"].items()}}


def junit(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, reason = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                reason = (node.get("message") or "").splitlines()[0][:200] if node.get(
                    "message") else ""
        cases.append({"test": case.get("name"), "outcome": outcome, "reason": reason,
                      "seconds": float(case.get("time") or 0)})
    counts = {k: sum(c["outcome"] == k for c in cases)
              for k in ("passed", "failed", "error", "skipped")}
    return {"counts": counts, "cases": cases}


def fmt(x: Any, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def markdown(parts: list[Part], header: dict[str, Any]) -> str:
    lines = [f"# gpu_check — {header['device']}", "",
             f"- machine: {header['machine']}",
             f"- command: `{header['command']}`",
             f"- wall time: {header['seconds']:.0f} s of a {header['timeout']:.0f} s budget",
             f"- result: **{header['result']}**", "",
             "| part | what | status | s | note |", "|---|---|---|---|---|"]
    for p in parts:
        lines.append(f"| {p.name} | {p.what} | {p.status} | {p.seconds:.0f} | {p.reason} |")
    for p in parts:
        f = p.figures
        if p.name == "gpu-tests" and f:
            c = f["counts"]
            lines += ["", f"## GPU tests: {c['passed']} passed, {c['failed']} failed, "
                          f"{c['error']} errors, {c['skipped']} skipped", ""]
            for case in f["cases"]:
                if case["outcome"] != "passed":
                    lines.append(f"- {case['outcome']}: `{case['test']}` — {case['reason']}")
        elif p.name.startswith("train") and f:
            lines += ["", f"## {p.name}: {p.what}", "",
                      "| config | status | pairs/s | TFLOP/s | MFU | peak | CUDA MiB | "
                      "max Δloss |", "|---|---|---|---|---|---|---|---|"]
            for r in f["configs"]:
                mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
                lines.append(f"| {r['label']} | {r['status']} | {fmt(r['pairs_per_s'], '.2f')} "
                             f"| {fmt(r['tflops'], '.2f')} | {mfu} | {r['peak_name'] or '-'} | "
                             f"{fmt(r['cuda_peak_mib'], '.0f')} | "
                             f"{fmt(r['max_loss_diff'], '.2e')} |")
        elif f:
            lines += ["", f"## {p.name}: {p.what} (precision {f['precision']})", "",
                      "| variant | images | images/s | CUDA peak MiB | GPU util % | RSS MiB |"
                      " same pixels as naive |", "|---|---|---|---|---|---|---|"]
            for v, s in f["variants"].items():
                check = f["pixel_check"].get(v)
                lines.append(f"| {v} | {s['images']} | {fmt(s['images_per_s'], '.1f')} | "
                             f"{fmt(s['cuda_peak_mib'], '.0f')} | "
                             f"{fmt(s['gpu_util_mean'], '.0f')} | "
                             f"{fmt(s['peak_rss_mib'], '.0f')} | "
                             f"{'-' if check is None else ('pass' if check else 'FAIL')} |")
    if not header["gpu"]:
        lines += ["", "## What a GPU would add (skipped here)", ""]
        lines += [f"- {what}: {why}" for what, why in GPU_ONLY]
    failed = [p for p in parts if p.status in ("failed", "timed out")]
    for p in failed:
        lines += ["", f"## {p.name}: last lines of its output", "", "```", p.log_tail, "```"]
    return "\n".join(lines) + "\n"


def write(out: Path, parts: list[Part], header: dict[str, Any]) -> None:
    bad = [p for p in parts if p.status in ("failed", "timed out")]
    header["result"] = "FAIL" if bad else ("incomplete" if any(
        p.status in ("not run", "skipped") for p in parts) else "PASS")
    tmp = out / "gpu_check.json.tmp"
    tmp.write_text(json.dumps({"header": header, "parts": [asdict(p) for p in parts]},
                              indent=2) + "\n")
    tmp.replace(out / "gpu_check.json")
    tmp = out / "gpu_check.md.tmp"
    tmp.write_text(markdown(parts, header))
    tmp.replace(out / "gpu_check.md")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for the JSON and markdown")
    p.add_argument("--device", default="auto", help="auto (CUDA if visible), cuda or cpu")
    p.add_argument("--quick", action="store_true", help="smoke sizes (what CI runs on the CPU)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds for the whole check (default 360 on a GPU, 150 on the CPU); "
                        "parts that would start later are skipped, one running is cut off")
    args = p.parse_args()
    if args.device not in ("auto", "cuda", "cpu") and not args.device.startswith("cuda:"):
        print(f"error: --device {args.device}: expected auto, cuda or cpu", file=sys.stderr)
        return 2
    import torch

    gpu = args.device != "cpu" and torch.cuda.is_available()
    if args.device.startswith("cuda") and not gpu:
        print(f"error: --device {args.device}: no CUDA device is visible", file=sys.stderr)
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"error: cannot create {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    args.out = args.out.resolve()
    timeout = args.timeout if args.timeout is not None else (360.0 if gpu else 150.0)
    started = time.monotonic()
    deadline = started + timeout
    env = dict(os.environ)
    if not gpu:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU run is the CPU's, also on a GPU host
    device = "cuda" if gpu else "cpu"
    header = {"device": device, "gpu": gpu, "quick": args.quick,
              "machine": machine_line(device), "timeout": timeout, "seconds": 0.0,
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "result": ""}
    parts = plan(args, gpu)
    for part in parts:
        run_part(part, deadline, env)
        read_figures(part, args.out)
        header["seconds"] = time.monotonic() - started
        write(args.out, parts, header)
        print(f"[gpu_check] {part.name}: {part.status} ({part.seconds:.0f} s) {part.reason}",
              flush=True)
    print((args.out / "gpu_check.md").read_text())
    return 1 if header["result"] == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
