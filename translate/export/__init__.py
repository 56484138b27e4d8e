"""Export a trained model's inference networks to ONNX, TorchScript or a single safetensors file.

``spec.py``         the per-task table (:data:`EXPORTS`), example inputs, the files' metadata
``onnx.py``         ONNX (dynamo exporter, TorchScript-based fallback), checked in onnxruntime
``torchscript.py``  a ``torch.jit.trace`` of the wrapper
``safetensors.py``  one network's weights; :func:`load_exported_network` rebuilds it
``check.py``        run the export and compare it with PyTorch before anything is written

What is exported is the network as inference runs it (``translate.infer.wrap.PadCrop``: pad to
the size multiple → network → crop), so one graph takes any H × W. Every exported file carries
the metadata ``translate infer`` needs (``spec.export_metadata``): task, direction, value range,
size multiple, scale, channels, the translate version and the whole ``model.json``.

Before a file is written, its outputs are compared with PyTorch's on odd-sized inputs (with
``dynamic``: two different sizes through one exported graph); the maximum absolute error is
printed, kept in the file's metadata (``check``) and in ``RUN/export.json``. A file whose error
exceeds ``check.TOLERANCE`` is not written. Writes are atomic (``translate.io.atomic``).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from translate.errors import TranslateError
from translate.export.check import check_export
from translate.export.onnx import build_onnx
from translate.export.safetensors import build_safetensors, load_exported_network
from translate.export.spec import EXPORTS, ExportSpec, export_metadata, select_networks
from translate.export.torchscript import build_torchscript
from translate.infer.wrap import value_range
from translate.io.atomic import atomic_write, atomic_write_text
from translate.modelfile import Model, load_model

__all__ = ["EXPORTS", "FORMATS", "Exported", "export_model", "load_exported_network",
           "parse_size"]

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}


@dataclass
class Exported:
    """One exported file and what was measured on it."""

    path: Path
    network: str
    direction: str | None
    format: str
    exporter: str  # "dynamo", "torchscript" (the legacy ONNX exporter), "trace" or "safetensors"
    seconds: float  # export (and ONNX optimisation) time, without the check
    check: list[dict[str, Any]] = field(default_factory=list)  # shape → max abs error
    note: str = ""  # why the fallback exporter was used

    @property
    def max_error(self) -> float:
        return max((c["max_abs_error"] for c in self.check), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "network": self.network, "direction": self.direction,
                "format": self.format, "exporter": self.exporter, "seconds": self.seconds,
                "check": self.check, "max_abs_error": self.max_error, "note": self.note}


def export_model(run_dir: str | Path, fmt: str, dynamic: bool = False,
                 out: str | Path | None = None, direction: str | None = None,
                 size: tuple[int, int] = (256, 256), onnx_exporter: str = "dynamo"
                 ) -> list[Exported]:
    """Export the inference networks of the model in ``run_dir``.

    Args:
        run_dir: run directory or model folder (``model.json`` + ``model.safetensors``).
        fmt: ``"onnx"``, ``"torchscript"`` or ``"safetensors"``.
        dynamic: ONNX only: dynamic batch, height and width (else the shape is fixed at batch
            1 and ``size``).
        out: the output file when one network is exported, a folder when several are;
            default ``RUN/export/NETWORK.onnx|.pt|.safetensors``.
        direction: ``"a2b"``, ``"b2a"`` or ``"both"`` (default) for a CycleGAN.
        size: (height, width) of a fixed-shape ONNX export.
        onnx_exporter: ``"dynamo"`` (torch.export; falls back to the TorchScript-based
            exporter when it fails) or ``"torchscript"`` (that one only; for comparisons).

    Returns:
        One :class:`Exported` per file written, with its check.

    Raises:
        TranslateError: unknown format, missing run, a task that cannot be exported, a
            mismatch beyond ``check.TOLERANCE`` (then nothing is written).
    """
    if fmt not in FORMATS:
        raise TranslateError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if dynamic and fmt != "onnx":
        raise TranslateError("--dynamic applies to --format onnx only (TorchScript and "
                             "safetensors exports take any size already)")
    model = load_model(run_dir)
    spec = EXPORTS.get(model.task)
    if spec is None:
        raise TranslateError(f"{model.path} holds a '{model.task}' model, which cannot be "
                             f"exported (exportable: {', '.join(EXPORTS)})")
    pairs = select_networks(model, spec, direction)
    folder = model.path / "export"
    if out is not None and len(pairs) > 1:
        folder = Path(out)
    results = []
    for direction_, name in pairs:
        path = Path(out) if out is not None and len(pairs) == 1 else folder / (name + FORMATS[fmt])
        results.append(_export_one(model, spec, name, direction_, fmt, dynamic, path, size,
                                   onnx_exporter))
    _log(model.path / "export.json", results)
    return results


def _export_one(model: Model, spec: ExportSpec, name: str, direction: str | None, fmt: str,
                dynamic: bool, path: Path, size: tuple[int, int],
                onnx_exporter: str = "dynamo") -> Exported:
    """Build one file, check it against PyTorch, then write it (nothing when the check fails)."""
    net = model.networks[name].cpu().eval()
    wrapper = spec.wrap(net, model.meta).eval()
    lo, hi = value_range(model)

    def make(batch: int, hw: tuple[int, int], g: torch.Generator) -> tuple[torch.Tensor, ...]:
        return spec.inputs(net, batch, hw, g, lo, hi)

    static_shape = [(1, tuple(size))]
    shapes = list(spec.check_shapes) if dynamic or fmt != "onnx" else static_shape
    example_shape = spec.example if dynamic or fmt != "onnx" else static_shape[0]
    example = make(example_shape[0], example_shape[1], torch.Generator().manual_seed(0))
    meta = export_metadata(model, name, direction)
    if spec.max_side is not None:
        meta["max_side"] = str(spec.max_side)
    if fmt == "onnx":
        built = build_onnx(wrapper, example, spec, dynamic, int(meta["scale"]), onnx_exporter)
    elif fmt == "torchscript":
        built = build_torchscript(wrapper, example)
    else:
        built = build_safetensors(net, meta, lambda rebuilt: spec.wrap(rebuilt, model.meta),
                                  str(path))
    check = check_export(built.run, wrapper, shapes, make, f"{name}: the {fmt}")
    data = built.serialise({**meta, **built.meta, "check": json.dumps(check)})
    atomic_write(path, lambda f: f.write(data))
    return Exported(path=path, network=name, direction=direction, format=fmt,
                    exporter=built.exporter, seconds=built.seconds, check=check, note=built.note)


def parse_size(text: str) -> tuple[int, int]:
    """``"256"`` → (256, 256); ``"192x256"`` → (192, 256) (height × width).

    Raises:
        TranslateError: anything else, or a side below 1.
    """
    parts = text.lower().split("x")
    if len(parts) in (1, 2) and all(p.strip().isdigit() and int(p) > 0 for p in parts):
        h, w = int(parts[0]), int(parts[-1])
        return h, w
    raise TranslateError(f"--size {text!r}: expected HxW or N, e.g. 256x192")


def _log(path: Path, results: list[Exported]) -> None:
    """Merge this export's results into ``RUN/export.json`` (keyed by file), atomically."""
    log: dict[str, Any] = {}
    if path.is_file():
        with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
            log = json.loads(path.read_text("utf-8"))
    for r in results:
        log[str(r.path)] = r.as_dict()
    atomic_write_text(path, json.dumps(log, indent=2) + "\n")
