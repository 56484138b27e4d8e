"""Run N straight-vs-resumed comparisons, each in fresh processes, and count the identical ones.

Each comparison runs the CLI three times in a new folder, as ``tests/test_loop.py``'s fresh-process
resume test does: ``translate train TASK --set train.steps=S`` straight through, then the same for
``--split`` steps and ``--resume`` to S. It compares the two final ``state/last.pt`` bitwise
(every network tensor and every optimizer state tensor) and prints one line per comparison: the
run time, and for runs that parted the tensors that differ and by how much. A final line gives
how many of N were identical; the exit code is 1 if any parted.

The comparisons run one after another (never two at a time), so that whatever else loads the
machine is the only load. The tests compare once; this is the many-times check behind them.

    python scripts/resume_check.py                     # 50 comparisons, MLP GAN, 10 = 5 + 5 steps
    python scripts/resume_check.py -n 20 --steps 30    # the resume test's 30 = 15 + 15 steps
    python scripts/resume_check.py --task vae --json resume_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import finish, machine  # noqa: E402

from translate.train.checkpoint import load_checkpoint  # noqa: E402

# The tests' FAST settings: log every 5 steps, no samples or checkpoints before the last step.
FAST = ["train.log_every=5", "train.sample_every=1000", "train.checkpoint_every=1000"]


def _train(args: list[str], cwd: Path) -> None:
    cmd = [sys.executable, "-m", "translate", "train", *args, "-q"]
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed ({out.returncode}):\n{out.stderr}")


def _tensors(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Every tensor a comparison looks at, by a readable name."""
    found = {}
    for net, tensors in state["networks"].items():
        found |= {f"{net}.{key}": t for key, t in tensors.items()}
    for opt, st in state["optimizers"].items():
        for pid, entries in st["state"].items():
            found |= {f"{opt}[{pid}].{key}": t for key, t in entries.items()
                      if isinstance(t, torch.Tensor)}
    return found


def differences(straight: Path, resumed: Path) -> list[tuple[str, float]]:
    """(name, max |difference|) of every tensor that is not bitwise equal, largest first."""
    a, b = load_checkpoint(straight / "state/last.pt"), load_checkpoint(resumed / "state/last.pt")
    if a["step"] != b["step"]:
        return [("step", float(abs(a["step"] - b["step"])))]
    ta, tb = _tensors(a), _tensors(b)
    parted = [(name, float((t.double() - tb[name].double()).abs().max()))
              for name, t in ta.items() if not torch.equal(t, tb[name])]
    return sorted(parted, key=lambda x: -x[1])


def compare_once(task: str, steps: int, split: int, folder: Path) -> list[tuple[str, float]]:
    sets = [x for s in [*FAST, f"train.steps={steps}"] for x in ("--set", s)]
    _train([task, "--out", "straight", *sets], folder)
    _train([task, "--out", "split", *sets[:-1], f"train.steps={split}"], folder)
    _train([task, "--out", "split", "--resume", "--set", f"train.steps={steps}"], folder)
    return differences(folder / "straight", folder / "split")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=50, help="comparisons to run (default 50)")
    parser.add_argument("--task", default="gan", choices=["gan", "vae"])
    parser.add_argument("--steps", type=int, default=10, help="steps of each run (default 10)")
    parser.add_argument("--split", type=int, default=None,
                        help="where the resumed run stops and restarts (default steps // 2)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep each comparison's runs under this folder (default: deleted)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    split = args.steps // 2 if args.split is None else args.split
    if not 0 < split < args.steps:
        parser.error(f"--split must lie between 0 and --steps ({args.steps})")

    header = machine(torch.device("cpu"))
    header["env"] = {k: v for k, v in os.environ.items()
                     if k.startswith(("OMP_", "MKL_", "KMP_", "ONEDNN_", "TRANSLATE_"))}
    print(json.dumps(header))
    print(f"{args.n} × translate train {args.task}: {args.steps} steps straight vs "
          f"{split} + --resume to {args.steps}, each run a fresh process")
    results = []
    root = Path(tempfile.mkdtemp(prefix="resume_check-"))
    try:
        for i in range(args.n):
            folder = (args.keep or root) / f"c{i:03d}"
            folder.mkdir(parents=True)
            start = time.perf_counter()
            parted = compare_once(args.task, args.steps, split, folder)
            seconds = time.perf_counter() - start
            results.append({"identical": not parted, "seconds": round(seconds, 1),
                            "differs": parted[:5], "n_differing": len(parted)})
            shown = "identical" if not parted else (
                f"PARTED in {len(parted)} tensors, largest {parted[0][0]} by {parted[0][1]:.3g}")
            print(f"{i + 1:3d}/{args.n}  {seconds:5.0f} s  {shown}", flush=True)
            if args.keep is None:
                shutil.rmtree(folder)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    same = sum(r["identical"] for r in results)
    finish(header, {"machine": header, "task": args.task, "steps": args.steps, "split": split,
                    "identical": same, "n": args.n, "comparisons": results}, args.json,
           f"{same}/{args.n} comparisons identical")
    sys.exit(0 if same == args.n else 1)


if __name__ == "__main__":
    main()
