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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from translate import console as ui
from translate.errors import TranslateError
from translate.export.check import check_export
from translate.export.onnx import build_onnx
from translate.export.safetensors import build_safetensors, load_exported_network
from translate.export.spec import (
    EXPORTS,
    NOT_EXPORTABLE,
    ExportSpec,
    export_metadata,
    select_networks,
)
from translate.export.torchscript import build_torchscript
from translate.infer.wrap import value_range
from translate.io.atomic import atomic_write_all, atomic_write_text
from translate.io.oserrors import writing
from translate.io.paths import display, is_within, owning_model_folder, same_file
from translate.modelfile import Model, load_model
from translate.tasks import TASKS

__all__ = ["EXPORTS", "FORMATS", "NOT_EXPORTABLE", "Exported", "export_model",
           "load_exported_network", "parse_size"]

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
MAX_SIDE = 4096  # of a fixed-shape ONNX export (--size): its example input is run several times
LOG = "export.json"  # RUN/export.json: every export of the run and its check


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
                 size: tuple[int, int] | None = None, onnx_exporter: str = "dynamo",
                 overwrite: bool = False) -> list[Exported]:
    """Export the inference networks of the model in ``run_dir``.

    Args:
        run_dir: run directory or model folder (``model.json`` + ``model.safetensors``).
        fmt: ``"onnx"``, ``"torchscript"`` or ``"safetensors"``.
        dynamic: ONNX only: dynamic batch, height and width (else the shape is fixed at batch
            1 and ``size``).
        out: the output file when one network is exported (an existing folder: the file
            ``NETWORK.onnx|.pt|.safetensors`` inside it), a folder when several are; default
            ``RUN/export/NETWORK.onnx|.pt|.safetensors``.
        direction: ``"a2b"``, ``"b2a"`` or ``"both"`` (default) for a CycleGAN.
        size: (height, width) of a fixed-shape ONNX export of an image model (default
            256x256); refused for a model generated from a latent code (its input has no size).
        onnx_exporter: ``"dynamo"`` (torch.export; falls back to the TorchScript-based
            exporter when it fails) or ``"torchscript"`` (that one only; for comparisons).
        overwrite: replace export files that exist (never a file of the run itself).

    Every file is built and checked before any is written; then all are written together
    (temp files renamed into place, removed on failure), and the run's ``export.json`` after
    (a warning if it cannot be: a read-only model folder exported elsewhere).

    Returns:
        One :class:`Exported` per file written, with its check.

    Raises:
        TranslateError: unknown format, missing run, a task that cannot be exported, a
            destination that is a file of the run, exists (without ``overwrite``) or cannot be
            written, a ``size`` the network cannot take, a mismatch beyond
            ``check.TOLERANCE`` (then nothing is written).
    """
    if fmt not in FORMATS:
        raise TranslateError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if dynamic and fmt != "onnx":
        raise TranslateError("--dynamic applies to --format onnx only (TorchScript and "
                             "safetensors exports take any size already)")
    model = load_model(run_dir)
    spec = EXPORTS.get(model.task)
    if spec is None:
        why = f": {NOT_EXPORTABLE[model.task]}" if model.task in NOT_EXPORTABLE else ""
        raise TranslateError(f"{model.path} holds a '{model.task}' model, which cannot be "
                             f"exported{why} (exportable: {', '.join(EXPORTS)})")
    if size is not None and TASKS[model.task].kind == "latent":
        raise TranslateError(f"--size is for image models; a '{model.task}' model's input is a "
                             "latent vector")
    size = size or (256, 256)
    pairs = select_networks(model, spec, direction)
    paths = destinations(model, [name for _, name in pairs], fmt, out, overwrite)
    if fmt == "onnx" and not dynamic:
        for _, name in pairs:
            check_size(model, spec, name, size)
    built = [_export_one(model, spec, name, direction_, fmt, dynamic, path, size, onnx_exporter)
             for (direction_, name), path in zip(pairs, paths, strict=True)]
    results = [result for result, _ in built]
    shown = paths[0] if len(paths) == 1 else paths[0].parent
    with writing(shown):
        atomic_write_all({r.path: data for r, data in built})
    log = exports_home(model) / LOG
    try:
        with writing(log):
            _log(log, results)
    except TranslateError as e:  # a read-only model folder exported elsewhere: still done
        ui.warn(f"{e}; the export itself is written")
    return results


def exports_home(model: Model) -> Path:
    """Where a model's exports are logged (``export.json``): its folder, or for a bundled model
    ``export/NAME/`` under the current folder, which also holds its default export files."""
    from translate import models

    return models.outputs_folder(model.path, "export")


def destinations(model: Model, names: list[str], fmt: str, out: str | Path | None,
                 overwrite: bool = False) -> list[Path]:
    """The file each network in ``names`` is exported to, checked before any work.

    ``out`` is the file for one network, or a folder: for several networks, and an existing
    folder for one (the file goes inside it). Default: ``RUN/export/NETWORK.EXT``; for a bundled
    model ``export/NAME/NETWORK.EXT`` under the current folder (:func:`exports_home`).

    Raises:
        TranslateError: a destination that is a folder, a file of the run (its model, config,
            checkpoint, logs: anything in the run folder but its ``export/`` files), or an
            existing file without ``overwrite``; ``out`` for several networks that is a file.
    """
    ext = FORMATS[fmt]
    if out is None:
        from translate import models

        folder = exports_home(model) if models.is_bundled(model.path) else model.path / "export"
        paths = [folder / (name + ext) for name in names]
    elif len(names) == 1 and not Path(out).is_dir():
        paths = [Path(out)]
    else:
        if Path(out).exists() and not Path(out).is_dir():
            raise TranslateError(f"--out {display(out)} is a file, not a folder: "
                                 f"{len(names)} networks are exported, each to its own file")
        if not Path(out).exists() and Path(out).suffix.lower() == ext:
            raise TranslateError(f"--out {display(out)} names one {ext} file, but "
                                 f"{len(names)} networks are exported ({', '.join(names)}): "
                                 "give a folder, or one --direction")
        paths = [Path(out) / (name + ext) for name in names]
    exports = model.path / "export"
    for path in paths:
        # By what the folders are (device, inode), not their spelling: a run reached through
        # a bind mount or a second mount of its volume is still the run.
        real = Path(os.path.realpath(path))
        log = real.name == LOG and same_file(real.parent, model.path)
        own = log or (is_within(path, model.path)
                      and not (exports.is_dir() and is_within(path, exports)))
        if own and (path.exists() or log):
            raise TranslateError(f"{display(path)} is a file of the run {display(model.path)}; an "
                                 "export never replaces one: choose another --out")
        if path.is_dir():
            raise TranslateError(f"{display(path)} is a folder; choose a file name for --out")
        holder = owning_model_folder(path) if path.exists() else None
        if holder is not None:  # another model's weights, model.json, a run's checkpoint …
            raise TranslateError(f"{display(path)} is a file of the model folder "
                                 f"{display(holder)}; an export never replaces one: choose "
                                 "another --out")
        if path.exists() and not overwrite:
            raise TranslateError(f"{display(path)} exists; add --overwrite to replace it")
    return paths


def check_size(model: Model, spec: ExportSpec, name: str, size: tuple[int, int]) -> None:
    """Refuse a fixed export ``size`` the network cannot run at, before the exporter runs (its
    own errors come after pages of tracing): the smallest side it takes is named.

    Raises:
        TranslateError: a side over :data:`MAX_SIDE`, or one the PyTorch network cannot take.
    """
    h, w = size
    if max(h, w) > MAX_SIDE:
        raise TranslateError(f"--size {h}x{w}: each side must be at most {MAX_SIDE}")
    net = model.networks[name].cpu().eval()
    wrapper = spec.wrap(net, model.meta).eval()
    lo, hi = value_range(model)

    def runs(hw: tuple[int, int]) -> str | None:
        inputs = spec.inputs(net, 1, hw, torch.Generator().manual_seed(0), lo, hi)
        try:
            with torch.no_grad():
                wrapper(*inputs)
        except Exception as e:  # whatever the network raises at this size
            return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return None

    why = runs((h, w))
    if why is None:
        return
    least = next((side for side in range(1, 257) if runs((side, side)) is None), None)
    if least is not None and min(h, w) < least:
        raise TranslateError(f"--size {h}x{w} is too small for this network: each side must be "
                             f"at least {least}")
    raise TranslateError(f"--size {h}x{w}: the network cannot run at this size ({why})")


def _export_one(model: Model, spec: ExportSpec, name: str, direction: str | None, fmt: str,
                dynamic: bool, path: Path, size: tuple[int, int],
                onnx_exporter: str = "dynamo") -> tuple[Exported, bytes]:
    """Build one file and check it against PyTorch; its bytes, for ``path`` (written by the
    caller, with the other files, once every check has passed)."""
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
    return Exported(path=path, network=name, direction=direction, format=fmt,
                    exporter=built.exporter, seconds=built.seconds, check=check,
                    note=built.note), data


def parse_size(text: str) -> tuple[int, int]:
    """``"256"`` → (256, 256); ``"192x256"`` → (192, 256) (height × width).

    Raises:
        TranslateError: anything else, a side below 1 or above :data:`MAX_SIDE`.
    """
    parts = text.lower().split("x")
    if len(parts) in (1, 2) and all(p.strip().isdigit() and int(p) > 0 for p in parts):
        h, w = int(parts[0]), int(parts[-1])
        if max(h, w) > MAX_SIDE:
            raise TranslateError(f"--size {text!r}: each side must be at most {MAX_SIDE}")
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
