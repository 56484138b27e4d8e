"""TorchScript export: the wrapper ``torch.jit.trace``d, metadata in ``_extra_files``.

TorchScript is deprecated in torch 2.14 (``torch.jit.save``/``load`` emit FutureWarnings); the
trace is checked at two sizes, so a shape baked into it fails the check.
"""

from __future__ import annotations

import io
import json
import time

import torch
from torch import nn

from translate.export.check import Built, quiet


def build_torchscript(wrapper: nn.Module, example: tuple[torch.Tensor, ...]) -> Built:
    """Trace ``wrapper`` at ``example``; the file holds the metadata as ``translate.json``."""
    started = time.perf_counter()
    with quiet(), torch.no_grad():
        traced = torch.jit.trace(wrapper, example, check_trace=False)
    seconds = time.perf_counter() - started

    def serialise(meta: dict[str, str]) -> bytes:
        buffer = io.BytesIO()
        with quiet():  # torch 2.14 deprecates TorchScript (FutureWarning); it still works
            torch.jit.save(traced, buffer, _extra_files={"translate.json": json.dumps(meta)})
        return buffer.getvalue()

    return Built(lambda inputs: traced(*inputs).numpy(), serialise, "trace", seconds,
                 {"exporter": "trace"})
