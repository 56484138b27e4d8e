"""Export every exportable network and print how closely the exports match PyTorch, and how long
exporting took, in one table (the figures the export issue's closing note quotes).

For each network (full size by default: the CycleGAN ResNet-9 at ngf 64, the MLP GAN generator,
the ×4 SR generator at nf 64 / 16 blocks, the gated inpainting generator at ngf 64 / 8 blocks)
a model folder is written with ``save_model`` (seeded random weights, or ``--run RUN``'s trained
CycleGAN) and exported through ``translate.export.export_model`` as:

* ``onnx dynamic`` with the dynamo exporter (torch.export), then the same with the older
  TorchScript-based exporter, side by side;
* ``onnx 256²``: fixed shape (CycleGAN only);
* ``torchscript`` (trace) and ``safetensors`` (one network + metadata).

Errors are max |export − PyTorch| in the network's value range, at the export's own check sizes
(odd, two sizes through one graph) and, for the CycleGAN generator, also at 1×3×256×256 and
1×3×255×257. For the CycleGAN generator the script also times one 256² forward pass, PyTorch
eager against onnxruntime (CPUExecutionProvider), median of ``--repeats``, in the same process.

    python scripts/export_check.py               # full size (minutes on 2 CPU cores)
    python scripts/export_check.py --quick       # tiny widths, a smoke run
    python scripts/export_check.py --run runs/sw --json export_check.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine  # noqa: E402

from translate.export import EXPORTS, export_model  # noqa: E402
from translate.modelfile import load_model, save_model  # noqa: E402
from translate.nets.inpaint import InpaintGenerator  # noqa: E402
from translate.nets.mlp import MLPGenerator  # noqa: E402
from translate.nets.resnet import ResnetGenerator  # noqa: E402
from translate.nets.sr import SRGenerator  # noqa: E402


def _models(root: Path, quick: bool, run: Path | None) -> dict[str, Path]:
    """Model folders to export: name → folder."""
    torch.manual_seed(0)
    w = 8 if quick else 64
    folders = {}
    if run is None:
        g = ResnetGenerator(ngf=w, n_blocks=2 if quick else 9)
        save_model(root / "cyclegan", "cyclegan", {"G_AB": g},
                   {"value_range": [-1.0, 1.0], "size_multiple": 4, "channels": 3,
                    "directions": {"a2b": "G_AB"}})
        folders[f"cyclegan G_AB (ResNet-{2 if quick else 9}, ngf {w})"] = root / "cyclegan"
    else:
        folders[f"cyclegan G_AB ({run})"] = run
    hidden = (16, 32) if quick else (256, 512, 1024)
    save_model(root / "gan", "gan", {"G": MLPGenerator(hidden=hidden)},
               {"value_range": [-1.0, 1.0], "latent_dim": 100})
    folders[f"gan MLP generator {hidden}"] = root / "gan"
    blocks = 2 if quick else 16
    save_model(root / "sr", "sr", {"G": SRGenerator(scale=4, nf=w, n_blocks=blocks)},
               {"value_range": [0.0, 1.0], "scale": 4, "channels": 3})
    folders[f"sr ×4 (nf {w}, {blocks} blocks)"] = root / "sr"
    blocks = 2 if quick else 8
    save_model(root / "inpaint", "inpaint", {"G": InpaintGenerator(ngf=w, n_blocks=blocks)},
               {"value_range": [-1.0, 1.0], "size_multiple": 4, "channels": 3})
    folders[f"inpaint gated (ngf {w}, {blocks} blocks)"] = root / "inpaint"
    return folders


def _extra_errors(path: Path, folder: Path, shapes: list[tuple[int, ...]]) -> list[dict]:
    """Max abs error of an ONNX export of a CycleGAN generator at more sizes."""
    import onnxruntime as ort

    model = load_model(folder)
    wrapper = EXPORTS["cyclegan"].wrap(model.networks["G_AB"], model.meta).eval()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = []
    for shape in shapes:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(5)) * 2 - 1
        with torch.no_grad():
            ref = wrapper(x).numpy()
        try:
            (y,) = session.run(None, {"image": x.numpy()})
            err = float(np.abs(y - ref).max())
        except Exception as e:  # a fixed-shape export refuses other sizes
            err = f"refused ({type(e).__name__})"
        out.append({"shape": "x".join(map(str, shape)), "max_abs_error": err})
    return out


def _speed(path: Path, folder: Path, repeats: int, size: int) -> dict[str, float]:
    """Median seconds of one 1×3×size² forward pass: PyTorch eager vs onnxruntime."""
    import onnxruntime as ort

    model = load_model(folder)
    wrapper = EXPORTS["cyclegan"].wrap(model.networks["G_AB"], model.meta).eval()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, size, size) * 2 - 1
    feed = {"image": x.numpy()}

    def timed(fn) -> float:
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    with torch.no_grad():
        torch_s = timed(lambda: wrapper(x))
    ort_s = timed(lambda: session.run(None, feed))
    return {"pytorch_s": torch_s, "onnxruntime_s": ort_s, "ratio": torch_s / ort_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Tiny widths (a smoke run).")
    parser.add_argument("--run", type=Path, help="A trained CycleGAN run (its G_AB) instead.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed forward passes.")
    parser.add_argument("--json", type=Path, help="Also write the rows here.")
    args = parser.parse_args()
    info = machine(torch.device("cpu"))
    import onnxruntime

    info["onnxruntime"] = onnxruntime.__version__
    print(f"# {info['cpu']} × {info['cpu_count']}, torch {info['torch']}, "
          f"onnxruntime {info['onnxruntime']}, load {info['load_average_start']}")
    rows: list[dict[str, Any]] = []
    speed = None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for label, folder in _models(root, args.quick, args.run).items():
            direction = "a2b" if label.startswith("cyclegan") else None
            variants = [("onnx dynamic", dict(fmt="onnx", dynamic=True)),
                        ("onnx dynamic", dict(fmt="onnx", dynamic=True,
                                              onnx_exporter="torchscript"))]
            if label.startswith("cyclegan"):
                variants.append(("onnx 256²", dict(fmt="onnx", size=(256, 256))))
            variants += [("torchscript", dict(fmt="torchscript")),
                         ("safetensors", dict(fmt="safetensors"))]
            for i, (kind, kwargs) in enumerate(variants):
                out = root / "out" / f"{len(rows)}-{i}"
                out.mkdir(parents=True)
                suffix = {"onnx": ".onnx", "torchscript": ".pt"}.get(kwargs["fmt"], ".st")
                [r] = export_model(folder, out=out / f"model{suffix}", direction=direction,
                                   **kwargs)
                check = list(r.check)
                if label.startswith("cyclegan") and kwargs["fmt"] == "onnx":
                    seen = {c["shape"] for c in check}
                    check += _extra_errors(r.path, folder, [
                        s for s in [(1, 3, 256, 256), (1, 3, 255, 257)]
                        if "x".join(map(str, s)) not in seen])
                    if kind == "onnx dynamic" and r.exporter == "dynamo":
                        speed = _speed(r.path, folder, args.repeats, 256)
                rows.append({"network": label, "format": kind, "exporter": r.exporter,
                             "export_s": round(r.seconds, 2), "check": check, "note": r.note})
                errs = ", ".join(
                    f"{c['shape']}: {c['max_abs_error']:.1e}" if isinstance(c["max_abs_error"],
                                                                           float)
                    else f"{c['shape']}: {c['max_abs_error']}" for c in check)
                print(f"| {label} | {kind} | {r.exporter} | {r.seconds:.1f} s | {errs} |",
                      flush=True)
    if speed:
        print(f"# CycleGAN G_AB, one 1×3×256×256 forward pass (median of {args.repeats}): "
              f"PyTorch {speed['pytorch_s'] * 1000:.0f} ms, onnxruntime "
              f"{speed['onnxruntime_s'] * 1000:.0f} ms, ratio {speed['ratio']:.2f}×")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "rows": rows, "speed": speed},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
