"""Export a trained model's inference networks to ONNX, TorchScript or a single safetensors file.

One explicit table, :data:`EXPORTS`, says per task how a network leaves PyTorch: the wrapper
module that is exported (the generator plus what inference does around it: reflect-padding to
the size multiple and cropping back), the example inputs, and the input/output names and axes.
A new task is one entry.

Every exported file carries the metadata ``translate infer`` needs (:func:`export_metadata`):
task, direction, value range, size multiple, scale, channels, the translate version and the
whole ``model.json``. ONNX keeps it in ``metadata_props``, TorchScript in ``_extra_files``
(``translate.json``), safetensors in its header's ``__metadata__`` (str → str).

Before a file is written, its outputs are compared with PyTorch's on odd-sized inputs (with
``dynamic``: two different sizes through one exported graph); the maximum absolute error is
printed, kept in the file's metadata (``check``) and in ``RUN/export.json``. A file whose error
exceeds :data:`TOLERANCE` is not written. Writes are atomic (``translate.io.atomic``).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from translate import __version__
from translate.errors import TranslateError
from translate.io.atomic import atomic_write, atomic_write_text
from translate.modelfile import NETWORKS, Model, load_model
from translate.nets.layers import crop_to, pad_to_multiple

FORMATS = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}
EXPORT_FORMAT = "translate-export"  # the ``format`` key of every exported file's metadata
OPSET = 18  # ≥ 17 as asked; 18 is what torch 2.14's dynamo exporter targets natively
TOLERANCE = 1e-3  # max |ONNX − PyTorch| accepted, in the network's own value range


class PadCrop(nn.Module):
    """An image network as inference runs it: any H × W in, ``scale`` · H × ``scale`` · W out.

    Reflect-pads the bottom/right to ``multiple`` (``layers.pad_to_multiple``), runs the network
    and crops back (``layers.crop_to``), so the exported graph takes any size, not only the
    multiples of 4 a ResNet generator with two stride-2 convs needs.

    Args:
        net: (B, C, H, W) → (B, C', scale·H, scale·W), H and W multiples of ``multiple``.
        multiple: the size multiple ``net`` needs (1: none).
        scale: output size / input size (super-resolution).
    """

    def __init__(self, net: nn.Module, multiple: int = 1, scale: int = 1):
        super().__init__()
        self.net, self.multiple, self.scale = net, multiple, scale

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        padded, (h, w) = pad_to_multiple(image, self.multiple)  # (B, C, H', W')
        return crop_to(self.net(padded), (h * self.scale, w * self.scale))


class MaskedPadCrop(PadCrop):
    """:class:`PadCrop` for an inpainting network ``net(image, mask)``; the mask is padded alike."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        padded, size = pad_to_multiple(image, self.multiple)  # (B, 3, H', W')
        padded_mask, _ = pad_to_multiple(mask, self.multiple)  # (B, 1, H', W')
        return crop_to(self.net(padded, padded_mask), size)


def _image(net: nn.Module, batch: int, size: tuple[int, int], g: torch.Generator,
           lo: float, hi: float) -> torch.Tensor:
    channels = net.config.get("in_ch", 3)
    return torch.rand(batch, channels, *size, generator=g) * (hi - lo) + lo


@dataclass(frozen=True)
class ExportSpec:
    """How one task's networks are exported.

    Attributes:
        classes: network classes (``model.json`` names) this task exports.
        wrap: (network, model.json) → the module to export.
        inputs: (network, batch, (h, w), generator, value range) → example inputs, in order.
        input_names, output_names: graph names, in order.
        axes: per input, axis → name of the dynamic axes (with ``dynamic``).
        check_shapes: (batch, (h, w)) of the equivalence check with ``dynamic``; the first is
            odd-sized and the two differ, so one exported graph must serve both.
        example: (batch, (h, w)) of the example input traced with ``dynamic``; batch 2 (torch
            .export specialises a dimension whose example size is 0 or 1). Neither side may be
            a multiple of the size multiple: ``pad_to_multiple`` returns such input as it is,
            and a graph traced that way has no padding for the sizes that need it.
        max_side: the longest padded side the exported graph is right for, when the network
            has size-dependent control flow that exporting fixes (kept in the metadata; ONNX
            inference refuses larger images).
    """

    classes: tuple[str, ...]
    wrap: Callable[[nn.Module, dict[str, Any]], nn.Module]
    inputs: Callable[..., tuple[torch.Tensor, ...]]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    axes: tuple[dict[int, str], ...]
    check_shapes: tuple[tuple[int, tuple[int, int]], ...] = ((1, (37, 53)), (2, (29, 70)))
    example: tuple[int, tuple[int, int]] = (2, (37, 53))
    max_side: int | None = None


_IMAGE_AXES = {0: "batch", 2: "height", 3: "width"}


def _multiple(net: nn.Module, meta: dict[str, Any]) -> int:
    return int(meta.get("size_multiple", getattr(net, "size_multiple", 1)))


def _latent(net: nn.Module, batch: int, size: tuple[int, int], g: torch.Generator,
            lo: float, hi: float) -> tuple[torch.Tensor, ...]:
    return (torch.randn(batch, net.latent_dim, generator=g),)  # (B, latent_dim)


def _images(net: nn.Module, batch: int, size: tuple[int, int], g: torch.Generator,
            lo: float, hi: float) -> tuple[torch.Tensor, ...]:
    return (_image(net, batch, size, g, lo, hi),)  # (B, C, H, W)


def _image_and_mask(net: nn.Module, batch: int, size: tuple[int, int], g: torch.Generator,
                    lo: float, hi: float) -> tuple[torch.Tensor, ...]:
    image = torch.rand(batch, 3, *size, generator=g) * (hi - lo) + lo  # (B, 3, H, W)
    mask = (torch.rand(batch, 1, *size, generator=g) > 0.7).float()  # (B, 1, H, W), 1 = hole
    return image, mask


INPAINT_MAX_SIDE = 8192

# Task → how its networks are exported. Explicit on purpose (see DESIGN.md: one dict where the
# CLI needs names).
EXPORTS: dict[str, ExportSpec] = {
    "cyclegan": ExportSpec(
        classes=("ResnetGenerator",),
        wrap=lambda net, meta: PadCrop(net, _multiple(net, meta)),
        inputs=_images, input_names=("image",), output_names=("output",),
        axes=(_IMAGE_AXES,),
    ),
    "gan": ExportSpec(
        classes=("MLPGenerator",),
        wrap=lambda net, meta: net,
        inputs=_latent, input_names=("z",), output_names=("image",),
        axes=({0: "batch"},),
        check_shapes=((1, (0, 0)), (5, (0, 0))), example=(2, (0, 0)),
    ),
    "sr": ExportSpec(
        classes=("SRGenerator",),
        wrap=lambda net, meta: PadCrop(net, _multiple(net, meta), int(net.scale)),
        inputs=_images, input_names=("image",), output_names=("output",),
        axes=(_IMAGE_AXES,), check_shapes=((1, (37, 53)), (2, (21, 30))), example=(2, (23, 31)),
    ),
    "inpaint": ExportSpec(
        classes=("InpaintGenerator",),
        wrap=lambda net, meta: MaskedPadCrop(net, _multiple(net, meta)),
        inputs=_image_and_mask, input_names=("image", "mask"), output_names=("output",),
        axes=(_IMAGE_AXES, _IMAGE_AXES),
        # The push-pull prefill (nets/inpaint.py) halves the image until it is 1 pixel: a loop
        # whose count, ceil(log2(longest side)), every exporter fixes at the example's. Levels
        # past 1×1 are identities (2×2 ceil-mode pooling of 1×1 is itself, and so is the pull
        # step), so the example has the longest side supported: the graph is then exact for
        # every image up to it. An example of 37×53 (6 levels) was off by 2e-4 at 29×70.
        example=(2, (9, INPAINT_MAX_SIDE - 1)), max_side=INPAINT_MAX_SIDE,
    ),
}
# The value range a network works in when model.json does not say.
_DEFAULT_RANGE = {"sr": [0.0, 1.0]}


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


def value_range(model: Model) -> list[float]:
    return [float(v) for v in model.meta.get("value_range", _DEFAULT_RANGE.get(model.task,
                                                                              [-1.0, 1.0]))]


def select_networks(model: Model, spec: ExportSpec, direction: str | None
                    ) -> list[tuple[str | None, str]]:
    """(direction, network name) pairs to export.

    A model with ``directions`` in model.json (CycleGAN) exports one of them or, by default or
    with ``"both"``, all; other models export their networks of the spec's classes.

    Raises:
        TranslateError: an unknown direction, or a direction for a model that has none.
    """
    directions: dict[str, str] = model.meta.get("directions", {})
    if directions:
        if direction in (None, "both"):
            return list(directions.items())
        if direction not in directions:
            raise TranslateError(f"the model has no direction {direction!r} "
                                 f"(it has: {', '.join(directions)}, both)")
        return [(direction, directions[direction])]
    if direction not in (None, "both"):
        raise TranslateError(f"a '{model.task}' model has no directions; leave out --direction")
    names = [name for name, spec_ in model.meta.get("networks", {}).items()
             if spec_.get("class") in spec.classes]
    if not names:
        raise TranslateError(f"{model.path} has no {' or '.join(spec.classes)} to export")
    return [(None, name) for name in names]


def export_metadata(model: Model, network: str, direction: str | None) -> dict[str, str]:
    """The str → str metadata every exported file carries (what ``translate infer`` reads)."""
    net = model.networks[network]
    config = getattr(net, "config", {})
    channels = model.meta.get("channels") or config.get("out_ch") or (
        config.get("img_shape") or [3])[0]
    return {
        "format": EXPORT_FORMAT,
        "translate_version": __version__,
        "task": model.task,
        "network": network,
        "class": type(net).__name__,
        "direction": direction or "",
        "value_range": json.dumps(value_range(model)),
        "size_multiple": str(_multiple(net, model.meta)),
        "scale": str(int(model.meta.get("scale", getattr(net, "scale", 1)))),
        "channels": str(int(channels)),
        "model_json": json.dumps(model.meta, sort_keys=True),
    }


def _shape_key(tensors: tuple[torch.Tensor, ...]) -> str:
    return "x".join(str(s) for s in tensors[0].shape)


def _max_error(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise TranslateError(f"exported output has shape {a.shape}, PyTorch's {b.shape}")
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


@contextlib.contextmanager
def _quiet() -> Any:
    """The exporters print progress and tracer warnings; the CLI shows its own summary."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _onnx_proto(wrapper: nn.Module, example: tuple[torch.Tensor, ...], spec: ExportSpec,
                dynamic: bool, exporter: str = "dynamo") -> tuple[Any, str, str]:
    """Export with the dynamo exporter (torch.export), or the TorchScript one if it fails
    (or if ``exporter`` is ``"torchscript"``).

    Returns (onnx.ModelProto, exporter name, why the fallback was needed).
    """
    import onnx

    dynamic_shapes = None
    if dynamic:
        # Dim.DYNAMIC rather than named Dims with ranges: with named Dims torch 2.14's constraint
        # solver dies on the inpainting net (AssertionError "Cannot create Dim with inconsistent
        # min=-1, max=-4096" while deriving H' = 4·⌈H/4⌉ for the padding); the axes are named
        # afterwards (_name_axes).
        dynamic_shapes = tuple({axis: torch.export.Dim.DYNAMIC for axis in axes}
                               for axes in spec.axes)
    why = ""
    if exporter == "dynamo":
        try:
            with _quiet():
                program = torch.onnx.export(
                    wrapper, example, None, dynamo=True, opset_version=OPSET,
                    input_names=list(spec.input_names), output_names=list(spec.output_names),
                    dynamic_shapes=dynamic_shapes, optimize=True, verbose=False)
            return program.model_proto, "dynamo", ""
        except Exception as e:  # any failure of the new exporter: try the TorchScript one
            why = f"dynamo exporter failed: {_reason(e)}"
    axes = {}
    if dynamic:
        axes = {n: a for n, a in zip(spec.input_names, spec.axes, strict=True)}
        axes.update({n: spec.axes[0] for n in spec.output_names})
    buffer = io.BytesIO()
    try:
        with _quiet():
            torch.onnx.export(wrapper, example, buffer, dynamo=False, opset_version=OPSET,
                              input_names=list(spec.input_names),
                              output_names=list(spec.output_names), dynamic_axes=axes or None)
    except Exception as e:
        raise TranslateError(f"cannot export to ONNX: {why + '; ' if why else ''}"
                             f"TorchScript-based exporter: {_reason(e)}") from None
    return onnx.load_from_string(buffer.getvalue()), "torchscript", why


def _reason(e: BaseException) -> str:
    """One line for an exporter's exception: its root cause's first line, without the colour
    codes torch.export puts in its messages."""
    while e.__cause__ is not None:
        e = e.__cause__
    lines = [x for x in re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines() if x.strip()]
    return f"{type(e).__name__}: {lines[0].strip()[:200] if lines else ''}"


def _name_axes(proto: Any, spec: ExportSpec, scale: int) -> None:
    """Name the dynamic axes ``batch``, ``height``, ``width`` (outputs of an SR net:
    ``height*4`` …) instead of the exporter's symbols (``s31``, ``Min(height, 4*(…))``)."""
    graph = proto.graph
    inputs = [i for i in graph.input if i.name in spec.input_names]
    for value, axes, factor in [*[(i, a, 1) for i, a in zip(inputs, spec.axes, strict=True)],
                                *[(o, spec.axes[0], scale) for o in graph.output]]:
        dims = value.type.tensor_type.shape.dim
        for axis, name in axes.items():
            if axis < len(dims) and not dims[axis].HasField("dim_value"):
                dims[axis].dim_param = name if factor == 1 or axis == 0 else f"{name}*{factor}"


def _ort_session(data: bytes, providers: list[str] | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: a failing check is reported as one line
    return ort.InferenceSession(data, options, providers=providers or ["CPUExecutionProvider"])


def _check(run: Callable[[tuple[torch.Tensor, ...]], np.ndarray], wrapper: nn.Module,
           shapes: list[tuple[int, tuple[int, int]]], make: Callable[..., tuple]
           ) -> list[dict[str, Any]]:
    results = []
    for i, (batch, size) in enumerate(shapes):
        inputs = make(batch, size, torch.Generator().manual_seed(1000 + i))
        with torch.no_grad():
            reference = wrapper(*inputs).numpy()
            try:
                exported = run(inputs)
            except Exception as e:  # e.g. onnxruntime refusing the shape
                raise TranslateError(f"the export fails on a {_shape_key(inputs)} input "
                                     f"({_reason(e)}); nothing written") from None
        results.append({"shape": _shape_key(inputs),
                        "max_abs_error": _max_error(exported, reference)})
    return results


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
            mismatch beyond :data:`TOLERANCE` (then nothing is written).
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
    started = time.perf_counter()
    if fmt == "onnx":
        proto, exporter, note = _onnx_proto(wrapper, example, spec, dynamic,
                                              onnx_exporter)
        seconds = time.perf_counter() - started
        _name_axes(proto, spec, int(meta["scale"]))
        session = _ort_session(proto.SerializeToString())

        def run(inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
            feed = {n: t.numpy() for n, t in zip(spec.input_names, inputs, strict=True)}
            return session.run(None, feed)[0]

        check = _check(run, wrapper, shapes, make)
        meta.update(inputs=json.dumps(spec.input_names), outputs=json.dumps(spec.output_names),
                    dynamic=json.dumps(dynamic), exporter=exporter, opset=str(OPSET),
                    check=json.dumps(check))
        del proto.metadata_props[:]
        for key, value in meta.items():
            proto.metadata_props.add(key=key, value=value)
        data = proto.SerializeToString()
    elif fmt == "torchscript":
        exporter, note = "trace", ""
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(wrapper, example, check_trace=False)
        seconds = time.perf_counter() - started
        check = _check(lambda inputs: traced(*inputs).numpy(), wrapper, shapes, make)
        meta.update(exporter=exporter, check=json.dumps(check))
        buffer = io.BytesIO()
        with _quiet():  # torch 2.14 deprecates TorchScript (FutureWarning); it still works
            torch.jit.save(traced, buffer, _extra_files={"translate.json": json.dumps(meta)})
        data = buffer.getvalue()
    else:
        from safetensors.torch import save

        exporter, note = "safetensors", ""
        state = {k: t.detach().cpu().contiguous() for k, t in net.state_dict().items()}
        data = save(state, metadata=meta)
        seconds = time.perf_counter() - started
        rebuilt, _ = load_exported_network(data, str(path))
        check = _check(lambda inputs: spec.wrap(rebuilt, model.meta)(*inputs).numpy(),
                       wrapper, shapes, make)
        meta["check"] = json.dumps(check)
        data = save(state, metadata=meta)
    result = Exported(path=path, network=name, direction=direction, format=fmt,
                      exporter=exporter, seconds=seconds, check=check, note=note)
    if result.max_error > TOLERANCE:
        raise TranslateError(f"{name}: the {fmt} export differs from PyTorch by "
                             f"{result.max_error:.3g} (> {TOLERANCE}); nothing written")
    atomic_write(path, lambda f: f.write(data))
    return result


def load_exported_network(data: bytes | str | Path, label: str | None = None
                          ) -> tuple[nn.Module, dict[str, str]]:
    """Rebuild the network of a safetensors export (bytes or a path) from its own metadata.

    Returns:
        The network (eval mode, CPU) and the file's metadata.

    Raises:
        TranslateError: not a translate export, or weights that do not fit.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    from translate.train.checkpoint import load_module_state

    label = label or str(data)
    try:
        raw = data if isinstance(data, bytes) else Path(data).read_bytes()
        tensors = load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        meta = json.loads(raw[8:8 + header_len]).get("__metadata__") or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise TranslateError(f"cannot read {label}: {e}") from None
    if meta.get("format") != EXPORT_FORMAT:
        raise TranslateError(f"{label} is not a translate export (no metadata)")
    try:
        description = json.loads(meta["model_json"])
        cls = NETWORKS[meta["class"]]
        net = cls(**description["networks"][meta["network"]].get("args", {}))
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise TranslateError(f"{label}: incomplete export metadata ({type(e).__name__}: {e})"
                             ) from None
    load_module_state(net, tensors, label)
    return net.eval(), meta


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
