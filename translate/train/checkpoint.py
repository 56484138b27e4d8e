"""Complete training state: networks, optimizers, schedulers, GradScaler, position, every RNG.

Written atomically (temp file in the same folder, fsync, ``os.replace``) so a crash at any moment
leaves the previous checkpoint loadable. Read only with ``torch.load(..., weights_only=True)``:
everything stored is tensors, numbers, strings and containers of them.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from translate.errors import TranslateError
from translate.io.atomic import atomic_open

FORMAT = 1


def capture_rng() -> dict[str, Any]:
    """Every RNG a training step may touch: python, numpy, torch CPU and each CUDA device."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    return {
        "python": [version, list(py_state), py_gauss],
        # numpy's key array goes in as a tensor: weights_only loading refuses numpy objects.
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    version, py_state, py_gauss = state["python"]
    random.setstate((version, tuple(py_state), py_gauss))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temp file beside ``path``, fsync, then rename over ``path``."""
    state = {"format": FORMAT, **state}
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        TranslateError: missing, unreadable or not a translate checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise TranslateError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or foreign files
        lines = [x.strip() for x in str(e).splitlines() if x.strip()]
        # torch's weights-only refusal says what it could not unpickle on its last line.
        detail = [x for x in lines if "WeightsUnpickler error" in x]
        reason = (detail or lines or [type(e).__name__])[-1 if detail else 0]
        raise TranslateError(f"cannot load checkpoint {path}: {reason}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise TranslateError(f"{path} is not a translate training checkpoint (format {FORMAT})")
    return state


def load_module_state(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """``load_state_dict`` with a one-line error naming the first mismatches."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(
                f"unexpected {', '.join(unexpected[:3])}{' …' if len(unexpected) > 3 else ''}"
            )
        if shapes:
            parts.append(f"shape {', '.join(shapes[:2])}{' …' if len(shapes) > 2 else ''}")
        raise TranslateError(f"{what} does not match the network: {'; '.join(parts)}")
    module.load_state_dict(state)
