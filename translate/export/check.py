"""An export before it is written: run it and compare it with PyTorch.

Each exporter (``onnx.py``, ``torchscript.py``, ``safetensors.py``) returns a :class:`Built`: a
way to run the exported thing and a way to serialise it with metadata. :func:`check_export`
runs it against the PyTorch wrapper on odd-sized inputs; an error beyond :data:`TOLERANCE`
refuses the export before anything is written.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from translate.errors import TranslateError
from translate.signals import check as check_stop

TOLERANCE = 1e-3  # max |export − PyTorch| accepted, in the network's own value range


@dataclass
class Built:
    """An exported network in memory, not yet checked or written.

    Attributes:
        run: example inputs → the exported network's output (numpy).
        serialise: metadata (str → str) → the file's bytes.
        exporter: ``"dynamo"``, ``"torchscript"`` (the legacy ONNX exporter), ``"trace"`` or
            ``"safetensors"``.
        seconds: export time, without the check.
        meta: metadata this format adds (before the check).
        note: why a fallback exporter was used.
    """

    run: Callable[[tuple[torch.Tensor, ...]], np.ndarray]
    serialise: Callable[[dict[str, str]], bytes]
    exporter: str
    seconds: float
    meta: dict[str, str] = field(default_factory=dict)
    note: str = ""


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The exporters print progress and tracer warnings, and torch.export logs its failures
    (``E… _trace.py … always_classified is unsupported``) before raising them; the CLI shows
    its own summary, or one error line."""
    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(before)


def reason(e: BaseException) -> str:
    """One line for an exporter's exception: its root cause's first line, without the colour
    codes torch.export puts in its messages."""
    while e.__cause__ is not None:
        e = e.__cause__
    lines = [x for x in re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines() if x.strip()]
    return f"{type(e).__name__}: {lines[0].strip()[:200] if lines else ''}"


def shape_key(tensors: tuple[torch.Tensor, ...]) -> str:
    return "x".join(str(s) for s in tensors[0].shape)


def max_error(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise TranslateError(f"exported output has shape {a.shape}, PyTorch's {b.shape}")
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def check_export(run: Callable[[tuple[torch.Tensor, ...]], np.ndarray], wrapper: nn.Module,
                 shapes: list[tuple[int, tuple[int, int]]], make: Callable[..., tuple],
                 label: str) -> list[dict[str, Any]]:
    """The maximum absolute error of ``run`` against ``wrapper`` at each (batch, (h, w)).

    Args:
        make: (batch, (h, w), generator) → example inputs; seeded per shape.
        label: names the export in the error ("G_AB: the onnx export").

    Raises:
        TranslateError: the export fails on an input, or differs by more than
            :data:`TOLERANCE` (nothing is written then).
    """
    results = []
    for i, (batch, size) in enumerate(shapes):
        check_stop()  # a stop signal, between the shapes checked (nothing is written yet)
        inputs = make(batch, size, torch.Generator().manual_seed(1000 + i))
        with torch.no_grad():
            reference = wrapper(*inputs).numpy()
            try:
                exported = run(inputs)
            except Exception as e:  # e.g. onnxruntime refusing the shape
                raise TranslateError(f"the export fails on a {shape_key(inputs)} input "
                                     f"({reason(e)}); nothing written") from None
        results.append({"shape": shape_key(inputs),
                        "max_abs_error": max_error(exported, reference)})
    worst = max((c["max_abs_error"] for c in results), default=0.0)
    if worst > TOLERANCE:
        raise TranslateError(f"{label} export differs from PyTorch by {worst:.3g} "
                             f"(> {TOLERANCE}); nothing written")
    return results
