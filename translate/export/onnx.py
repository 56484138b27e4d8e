"""ONNX export: torch's dynamo exporter (torch.export), the TorchScript-based one as fallback.

The file keeps its metadata in ``metadata_props``; its dynamic axes are named ``batch``,
``height`` and ``width`` (SR outputs ``height*4`` …). The check runs it in onnxruntime.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from translate.errors import TranslateError
from translate.export.check import Built, quiet, reason
from translate.export.spec import ExportSpec

OPSET = 18  # ≥ 17 as asked; 18 is what torch 2.14's dynamo exporter targets natively


def build_onnx(wrapper: nn.Module, example: tuple[torch.Tensor, ...], spec: ExportSpec,
               dynamic: bool, scale: int, exporter: str = "dynamo") -> Built:
    """Export ``wrapper`` traced at ``example``; ``exporter`` ``"torchscript"`` skips dynamo."""
    started = time.perf_counter()
    proto, used, note = _onnx_proto(wrapper, example, spec, dynamic, exporter)
    seconds = time.perf_counter() - started
    _name_axes(proto, spec, scale)
    session = _ort_session(proto.SerializeToString())

    def run(inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
        feed = {n: t.numpy() for n, t in zip(spec.input_names, inputs, strict=True)}
        return session.run(None, feed)[0]

    def serialise(meta: dict[str, str]) -> bytes:
        del proto.metadata_props[:]
        for key, value in meta.items():
            proto.metadata_props.add(key=key, value=value)
        return proto.SerializeToString()

    meta = {"inputs": json.dumps(spec.input_names), "outputs": json.dumps(spec.output_names),
            "dynamic": json.dumps(dynamic), "exporter": used, "opset": str(OPSET)}
    return Built(run, serialise, used, seconds, meta, note)


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
            with quiet():
                program = torch.onnx.export(
                    wrapper, example, None, dynamo=True, opset_version=OPSET,
                    input_names=list(spec.input_names), output_names=list(spec.output_names),
                    dynamic_shapes=dynamic_shapes, optimize=True, verbose=False)
            return program.model_proto, "dynamo", ""
        except Exception as e:  # any failure of the new exporter: try the TorchScript one
            why = f"dynamo exporter failed: {reason(e)}"
    axes = {}
    if dynamic:
        axes = {n: a for n, a in zip(spec.input_names, spec.axes, strict=True)}
        axes.update({n: spec.axes[0] for n in spec.output_names})
    buffer = io.BytesIO()
    try:
        with quiet():
            torch.onnx.export(wrapper, example, buffer, dynamo=False, opset_version=OPSET,
                              input_names=list(spec.input_names),
                              output_names=list(spec.output_names), dynamic_axes=axes or None)
    except Exception as e:
        raise TranslateError(f"cannot export to ONNX: {why + '; ' if why else ''}"
                             f"TorchScript-based exporter: {reason(e)}") from None
    return onnx.load_from_string(buffer.getvalue()), "torchscript", why


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
