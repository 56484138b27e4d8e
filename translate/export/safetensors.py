"""Safetensors export: one network's weights, metadata in the header's ``__metadata__``.

The file is rebuilt from its own bytes (:func:`load_exported_network`) for the check, so what
is checked is what a reader of the file gets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from torch import nn

from translate.errors import TranslateError
from translate.export.check import Built
from translate.modelfile import (
    EXPORT_FORMAT,
    NETWORKS,
    build_network,
    export_meta,
    load_module_state,
)


def build_safetensors(net: nn.Module, meta: dict[str, str],
                      wrap: Callable[[nn.Module], nn.Module], label: str) -> Built:
    """``net``'s weights with ``meta``; the check runs ``wrap`` around the rebuilt network."""
    from safetensors.torch import save

    started = time.perf_counter()
    state = {k: t.detach().cpu().contiguous() for k, t in net.state_dict().items()}
    data = save(state, metadata=meta)
    seconds = time.perf_counter() - started
    rebuilt = wrap(load_exported_network(data, label)[0])

    def serialise(meta: dict[str, str]) -> bytes:
        return save(state, metadata=meta)

    return Built(lambda inputs: rebuilt(*inputs).numpy(), serialise, "safetensors", seconds)


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
    export_meta(label, meta)
    try:
        description = json.loads(meta["model_json"])
        cls = NETWORKS[meta["class"]]
        args = description["networks"][meta["network"]].get("args", {})
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise TranslateError(f"{label}: incomplete export metadata ({type(e).__name__}: {e})"
                             ) from None
    # The arguments are checked, and the size bounded, as model.json's before anything is built.
    net = build_network(f"{label} (model_json)", cls, args)
    load_module_state(net, tensors, label)
    return net.eval(), meta
