"""Inference model files: ``model.safetensors`` (weights) + ``model.json`` (how to rebuild them).

``model.json`` names the task, each network's class and constructor arguments, and the value
range the networks work in; inference needs nothing else (no pickle, no training state).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from translate.errors import TranslateError
from translate.io.atomic import atomic_write, atomic_write_text
from translate.nets.inpaint import InpaintGenerator
from translate.nets.mlp import MLPDiscriminator, MLPGenerator
from translate.nets.patchgan import PatchDiscriminator
from translate.nets.resnet import ResnetGenerator
from translate.nets.sr import SRGenerator
from translate.nets.vae import VAE
from translate.version import __version__

# Class name in model.json → constructor. Explicit on purpose: no scanning, no string imports.
NETWORKS: dict[str, type[torch.nn.Module]] = {
    "MLPGenerator": MLPGenerator,
    "MLPDiscriminator": MLPDiscriminator,
    "VAE": VAE,
    "ResnetGenerator": ResnetGenerator,
    "PatchDiscriminator": PatchDiscriminator,
    "SRGenerator": SRGenerator,
    "InpaintGenerator": InpaintGenerator,
}
FORMAT = "translate-model"
EXPORT_FORMAT = "translate-export"  # the ``format`` key of every exported file's metadata
VERSION = 1


@dataclass
class Model:
    """A loaded inference model: the task, its networks (eval mode) and the metadata."""

    task: str
    networks: dict[str, torch.nn.Module]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save_model(
    folder: str | Path,
    task: str,
    networks: dict[str, torch.nn.Module],
    meta: dict[str, Any] | None = None,
) -> None:
    """Write ``folder/model.safetensors`` then ``folder/model.json``, each atomically."""
    folder = Path(folder)
    tensors = {
        f"{name}.{key}": t.detach().to("cpu").contiguous()
        for name, net in networks.items()
        for key, t in net.state_dict().items()
    }
    description = {
        "format": FORMAT,
        "version": VERSION,
        "translate_version": __version__,
        "task": task,
        "networks": {
            name: {"class": type(net).__name__, "args": getattr(net, "config", {})}
            for name, net in networks.items()
        },
        **(meta or {}),
    }
    for name, net in networks.items():
        if type(net).__name__ not in NETWORKS:
            raise TypeError(f"{type(net).__name__} ({name}) is not in translate.modelfile.NETWORKS")
    atomic_write(folder / "model.safetensors", lambda f: f.write(save(tensors)))
    atomic_write_text(folder / "model.json", json.dumps(description, indent=2) + "\n")


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a run directory, a model folder, or the path of its model.json/model.safetensors."""
    path = Path(path)
    if path.is_file() and path.name in ("model.json", "model.safetensors"):
        path = path.parent
    if not path.exists():
        raise TranslateError(f"model not found: {path}")
    if not (path / "model.json").is_file() or not (path / "model.safetensors").is_file():
        raise TranslateError(
            f"{path} holds no model (model.json + model.safetensors); train one first"
        )
    return path


def load_model(
    path: str | Path, device: str | torch.device = "cpu", task: str | tuple[str, ...] | None = None
) -> Model:
    """Rebuild the networks from ``model.json`` and load ``model.safetensors`` into them.

    Args:
        task: if given, the task (or tasks) the caller can use; another task is an error.
    """
    folder = resolve_model_dir(path)
    try:
        description = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TranslateError(f"{folder / 'model.json'} is not valid JSON") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise TranslateError(f"{folder / 'model.json'} is not a translate model description")
    model_task = description.get("task")
    wanted = (task,) if isinstance(task, str) else task
    if wanted and model_task not in wanted:
        raise TranslateError(
            f"{folder} holds a '{model_task}' model; this command needs {' or '.join(wanted)}"
        )
    try:
        tensors = load_file(folder / "model.safetensors", device="cpu")
    except (SafetensorError, OSError) as e:
        raise TranslateError(f"cannot read {folder / 'model.safetensors'}: {e}") from None
    networks = {}
    for name, spec in description.get("networks", {}).items():
        cls = NETWORKS.get(spec.get("class"))
        if cls is None:
            raise TranslateError(
                f"{folder / 'model.json'}: unknown network class {spec.get('class')!r}"
            )
        try:
            net = cls(**spec.get("args", {}))
        except TypeError as e:
            raise TranslateError(
                f"{folder / 'model.json'}: bad arguments for {cls.__name__}: {e}"
            ) from None
        prefix = f"{name}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        load_module_state(net, state, f"{folder / 'model.safetensors'} ({name})")
        networks[name] = net.to(device).eval()
    return Model(task=model_task, networks=networks, meta=description, path=folder)


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
