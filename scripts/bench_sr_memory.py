"""Super-resolution memory, side by side in one run: peak RSS and wall time of ``translate infer``
on a large photo, whole image vs automatic tiles (issue 16).

Each variant runs ``python -m translate infer`` in a fresh process; its peak RSS is that child's
``ru_maxrss`` (``os.wait4``), its time the child's wall time (start-up and the JPEG encode
included). The photo is a real one (``../shared/data``) resized to the size asked, written under
``--work``, never into the repository. Two models: the issue's ×4 net of width 8 (random
weights, "lite" upsampler) on the 12 MP photo, and the bundled ``sr-x4`` (width 64, 16 blocks)
on a smaller one (its whole 12 MP pass would take ~15 minutes on one core).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_sr_memory.py [--work /tmp/bench_sr_memory]
    .venv/bin/python scripts/bench_sr_memory.py --churn   # user vs system time, tuned vs not
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import cpu_model  # noqa: E402

from translate.infer.memory import default_budget, format_bytes, parse_bytes  # noqa: E402
from translate.infer.sr import SRPipeline  # noqa: E402
from translate.modelfile import load_model, save_model  # noqa: E402
from translate.nets.sr import SRGenerator  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO.parent / "shared" / "data" / "sr" / "Set14" / "baboon.png"
BUNDLED = REPO / "translate" / "models" / "sr-x4"


def make_photo(folder: Path, size: tuple[int, int]) -> Path:
    """``PHOTO`` resized (bicubic) to ``size`` (w, h), as a quality-95 JPEG alone in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "photo.jpg"
    if not path.exists():
        Image.open(PHOTO).convert("RGB").resize(size, Image.Resampling.BICUBIC).save(
            path, quality=95)
    return path


def width8_model(folder: Path) -> Path:
    """The issue's model: ×4, width 8, random weights."""
    if not (folder / "model.json").exists():
        torch.manual_seed(0)
        net = SRGenerator(4, nf=8, n_blocks=2, upsampler="lite")
        save_model(folder, "sr", {"G": net}, {"value_range": [0.0, 1.0], "scale": 4,
                                              "channels": 3,
                                              "receptive_radius": net.receptive_radius})
    return folder


def run(model: Path, photo_dir: Path, out: Path, options: list[str],
        env: dict[str, str] | None = None) -> dict:
    """One ``translate infer`` in a fresh process: exit code, peak RSS, wall time, the user
    and system CPU time (the kernel's share is page-fault churn) and minor page faults."""
    cmd = [sys.executable, "-m", "translate", "infer", str(model), str(photo_dir), str(out),
           "--device", "cpu", "--precision", "fp32", "--overwrite", "-q",
           "--max-pixels", "200000000", *options]  # the ×4 output is 192 MP
    started = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env={**os.environ, **(env or {})})
    output = child.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    return {"options": " ".join(options) or "(defaults)", "exit": child.returncode,
            "peak_rss_mib": usage.ru_maxrss / 1024, "seconds": seconds,
            "user_s": usage.ru_utime, "system_s": usage.ru_stime,
            "minor_faults": usage.ru_minflt,
            "last_line": output.strip().splitlines()[-1] if output.strip() else ""}


def churn(work: Path) -> list[dict]:
    """Issue 27's page-fault churn: the width-8 ×4 on the 12 MP photo at ``--max-memory 2G``
    and at the default budget, with the allocator as ``translate`` tunes it and as glibc
    leaves it (``TRANSLATE_MALLOC=default``), side by side; the output files must be the same
    bytes."""
    model, photo_dir = width8_model(work / "width8"), make_photo(work / "in_4000x3000",
                                                                   (4000, 3000)).parent
    rows = []
    # The default budget is half of MemAvailable when a run starts: computed once here and
    # given to both runs, so that they plan the same tiles and their outputs can be compared.
    default = f"{default_budget() // 2**20}M"
    for budget, label in (("2G", "--max-memory 2G"), (default, f"default ({default})")):
        outputs = {}
        for allocator in ("tuned", "default"):
            out = work / f"out_{budget}_{allocator}"
            env = {"TRANSLATE_MALLOC": "default"} if allocator == "default" else {}
            result = run(model, photo_dir, out, ["--max-memory", budget], env)
            result |= {"allocator": allocator, "options": label,
                       "plan": plan(model, (4000, 3000), None, budget)}
            outputs[allocator] = (out / "photo.jpg").read_bytes()
            rows.append(result)
            print(f"{result['options']:18} allocator {allocator:8} [{result['plan']}]\n    "
                  f"exit {result['exit']}  "
                  f"{result['seconds']:6.1f} s  user {result['user_s']:6.1f} s  system "
                  f"{result['system_s']:6.1f} s ({result['system_s'] / result['user_s']:.1%})  "
                  f"{result['minor_faults']:,} minor faults  peak RSS "
                  f"{result['peak_rss_mib']:.0f} MiB", flush=True)
        same = outputs["tuned"] == outputs["default"]
        print(f"    outputs {'identical' if same else 'DIFFER'}", flush=True)
        rows[-1]["same_output"] = rows[-2]["same_output"] = same
    return rows


def plan(model: Path, size: tuple[int, int], tile: int | None, budget: str | None) -> str:
    """What the pipeline plans for the photo (the same estimate the child makes)."""
    pipe = SRPipeline(load_model(model), "cpu", "fp32", tile=tile, max_pixels=200_000_000,
                      max_memory=parse_bytes(budget) if budget else None)
    w, h = size
    try:
        t = pipe.plan(1, h, w)
    except ValueError as e:
        return f"refused ({e})"
    need = pipe.estimate(1, h, w, t)
    return (f"{'whole' if t == 0 else f'tiles of {t}'}, estimate {format_bytes(need)} of "
            f"{format_bytes(pipe.max_memory)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_sr_memory"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--churn", action="store_true",
                        help="only issue 27's page-fault comparison (tuned vs glibc's allocator)")
    args = parser.parse_args()
    work = args.work
    if args.churn:
        print(f"CPU: {cpu_model()}; torch threads {torch.get_num_threads()}")
        rows = churn(work)
        if args.json:
            args.json.write_text(json.dumps({"cpu": cpu_model(), "rows": rows}, indent=2) + "\n")
        return
    big, small = (4000, 3000), (1000, 750)
    cases = [
        ("x4 width 8", width8_model(work / "width8"), big, [
            (0, "20G"), (None, None), (None, "2G"), (0, "2G")]),
        ("sr-x4 (bundled)", BUNDLED, small, [(0, "8G"), (None, "1G")]),
    ]
    print(f"CPU: {cpu_model()}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
          f"torch threads {torch.get_num_threads()}; default budget "
          f"{format_bytes(default_budget())} (half of MemAvailable now)")
    rows = []
    for name, model, size, variants in cases:
        photo_dir = make_photo(work / f"in_{size[0]}x{size[1]}", size).parent
        for tile, budget in variants:
            options = (["--tile", str(tile)] if tile is not None else []) + (
                ["--max-memory", budget] if budget else [])
            planned = plan(model, size, tile, budget)
            result = run(model, photo_dir, work / "out", options)
            result |= {"model": name, "input": f"{size[0]}×{size[1]}", "plan": planned}
            rows.append(result)
            print(f"{name:16} {result['input']:10} {result['options']:28} exit {result['exit']}"
                  f"  peak RSS {result['peak_rss_mib']:7.0f} MiB  {result['seconds']:6.1f} s"
                  f"  [{planned}]", flush=True)
            if result["exit"]:
                print(f"    {result['last_line']}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_model(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
