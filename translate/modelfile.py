"""Inference model files: ``model.safetensors`` (weights) + ``model.json`` (how to rebuild them).

``model.json`` names the task, each network's class and constructor arguments, and the value
range the networks work in; inference needs nothing else (no pickle, no training state).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from translate.config import Range
from translate.errors import TranslateError
from translate.io.atomic import atomic_write, atomic_write_text
from translate.io.regular import check_regular
from translate.nets.external import ExternalNet, UnsupportedNetwork, from_state_dict
from translate.nets.inpaint import InpaintGenerator
from translate.nets.mlp import MLPDiscriminator, MLPGenerator
from translate.nets.patchgan import PatchDiscriminator
from translate.nets.resnet import ResnetGenerator
from translate.nets.sr import SRGenerator
from translate.nets.unet import UnetGenerator
from translate.nets.vae import VAE
from translate.tasks import TASKS, current_keys, current_names
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
    "UnetGenerator": UnetGenerator,
    # The field's networks (translate import): spandrel rebuilds them from the weights, so
    # model.json records only which architecture they must be (args {"architecture": ID}).
    "ExternalNet": ExternalNet,
}
FORMAT = "translate-model"
EXPORT_FORMAT = "translate-export"  # the ``format`` key of every exported file's metadata
VERSION = 1

# ── What a model file may say, checked before anything is built (a file is user input: an
# edited or damaged one must end in one line, never in a traceback, an allocation of hundreds of
# gigabytes or meaningless images).

MAX_PARAMETERS = 500_000_000  # per network built from a file (2 GB in fp32); the largest here: 11 M
_WIDTH = Range(1, 4096)
# Constructor argument → its range (ints; each item of a list argument). The type comes from the
# constructor's default; string choices are the constructors' own checks (ValueError).
ARG_RANGES: dict[str, Range] = {
    "in_ch": Range(1, 4), "out_ch": Range(1, 4), "ngf": _WIDTH, "ndf": _WIDTH, "nf": _WIDTH,
    "gc": _WIDTH, "hidden": Range(1, 65536), "latent_dim": Range(1, 65536),
    "n_blocks": Range(1, 1000), "n_down": Range(0, 8), "n_layers": Range(1, 8),
    "scale": Range(2, 4), "img_shape": Range(1, 4096),
    "num_downs": Range(5, 10),  # UnetGenerator: a multiple of at most 2**10, as size_multiple
}
# model.json's keys besides the networks that inference reads → (type, range). ONNX and
# safetensors exports carry the same keys as strings (:func:`export_meta`).
META_FIELDS: dict[str, tuple[type, Range | None]] = {
    "scale": (int, Range(1, 8)),  # imported models go to 8 (translate's own: 2 to 4)
    "size_multiple": (int, Range(1, 1024)),
    "channels": (int, Range(1, 4)),
    "latent_dim": (int, ARG_RANGES["latent_dim"]),
    "receptive_radius": (int, Range(0, 10_000)),
    "tile_multiple": (int, Range(1, 1024)),  # SR tiles start on this grid (window attention)
    "max_side": (int, Range(1, 65536)),
    "ema": (bool, None),
    "gan": (bool, None),
}


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _check_number(where: str, key: str, value: Any, kind: type, valid: Range | None) -> None:
    """``value`` is a ``kind`` (int: not a bool; float: an int will do), finite and in ``valid``."""
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        raise TranslateError(f"{where}: '{key}' must be {'a' if kind is not int else 'an'} "
                             f"{kind.__name__}, got {_kind(value)} {value!r}")
    if kind is not bool and not math.isfinite(value):
        raise TranslateError(f"{where}: '{key}' must be a finite number, got {value}")
    if valid is not None and kind is not bool and value not in valid:
        raise TranslateError(f"{where}: '{key}' must be {valid}, got {value}")


def check_value_range(where: str, value: Any) -> tuple[float, float]:
    """``value_range``: two finite numbers, lo < hi (else every output is meaningless)."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise TranslateError(f"{where}: 'value_range' must be [lo, hi], got {value!r}")
    for bound in value:
        _check_number(where, "value_range", bound, float, None)
    lo, hi = float(value[0]), float(value[1])
    if not lo < hi:
        raise TranslateError(f"{where}: 'value_range' must have lo < hi, got [{lo:g}, {hi:g}]")
    return lo, hi


def check_meta(where: str, meta: dict[str, Any]) -> None:
    """The keys of :data:`META_FIELDS` and ``value_range`` that ``meta`` holds, each checked."""
    if "value_range" in meta:
        check_value_range(where, meta["value_range"])
    for key, (kind, valid) in META_FIELDS.items():
        if key in meta:
            _check_number(where, key, meta[key], kind, valid)


def check_description(where: str, description: Any) -> None:
    """model.json before anything is built from it: its format, task, networks (class and
    arguments: types and ranges) and the fields inference reads.

    Raises:
        TranslateError: one line naming the file and the key at fault.
    """
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise TranslateError(f"{where} is not a translate model description")
    task = description.get("task")
    if not isinstance(task, str) or task not in TASKS:
        raise TranslateError(f"{where}: unknown task {task!r} (one of {', '.join(TASKS)})")
    networks = description.get("networks")
    if not isinstance(networks, dict) or not networks:
        raise TranslateError(f"{where}: 'networks' must map each network's name to its class "
                             f"and arguments, got {_kind(networks)}")
    for name, spec in networks.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("args", {}), dict):
            raise TranslateError(f"{where}: network '{name}' must be "
                                 '{"class": NAME, "args": {...}}')
        cls = NETWORKS.get(spec["class"]) if isinstance(spec.get("class"), str) else None
        if cls is None:
            raise TranslateError(f"{where}: unknown network class {spec.get('class')!r}")
        if cls is ExternalNet:
            check_external_args(where, spec.get("args", {}))
        else:
            check_args(where, cls, spec.get("args", {}))
    directions = description.get("directions", {})
    if not isinstance(directions, dict) or any(
            d not in ("a2b", "b2a") or not isinstance(n, str) or n not in networks
            for d, n in directions.items()):
        raise TranslateError(f"{where}: 'directions' must map a2b/b2a to networks of the file "
                             f"({', '.join(networks)}), got {directions!r}")
    check_meta(where, description)
    for key, kind in TEXT_FIELDS.items():
        if key in description and not isinstance(description[key], kind):
            raise TranslateError(f"{where}: '{key}' must be {TEXT_KINDS[kind]}, got "
                                 f"{_kind(description[key])} {description[key]!r}")


# model.json's other fields, by JSON type: what a reader may index or compare without a
# TypeError (a list where a name belongs is unhashable). Their values are checked where read
# (``weights_of``: by :func:`weights_file`).
TEXT_FIELDS: dict[str, type] = {
    "padding": str, "trained_direction": str, "translate_version": str,
    "card": dict, "mask": str, "name": str,
}
TEXT_KINDS = {str: "a string", dict: "an object ({...})"}


def check_finite(tensors: dict[str, torch.Tensor], where: str) -> None:
    """Refuse weights holding NaN or ±inf: such a network loads and runs, and gives garbage
    (or NaN images) with exit 0. Integer tensors (counters) are passed over.

    Raises:
        TranslateError: naming ``where`` (the weights file) and the first tensor at fault.
    """
    for name, t in tensors.items():
        if (t.is_floating_point() or t.is_complex()) and t.numel() and not bool(
                torch.isfinite(t).all()):
            bad = "NaN" if bool(torch.isnan(t).any()) else "inf"
            raise TranslateError(f"{where}: tensor '{name}' holds {bad} values; the weights "
                                 "are damaged (retrain, or restore the file)")


def check_args(where: str, cls: type, args: dict[str, Any]) -> None:
    """Constructor arguments of ``cls``: each known one of its default's type, in its range."""
    defaults = {n: p.default for n, p in inspect.signature(cls).parameters.items()}
    where = f"{where}: bad arguments for {cls.__name__}"
    if not isinstance(args, dict):
        raise TranslateError(f"{where}: 'args' must map names to values, got {_kind(args)}")
    for key, value in args.items():
        if key not in defaults:
            raise TranslateError(f"{where}: it takes no argument '{key}' (it takes "
                                 f"{', '.join(defaults)})")
        default, valid = defaults[key], ARG_RANGES.get(key)
        if isinstance(default, list | tuple):
            if not isinstance(value, list | tuple) or not value:
                raise TranslateError(f"{where}: '{key}' must be a list of integers, got "
                                     f"{value!r}")
            for item in value:
                _check_number(where, key, item, int, valid)
        elif isinstance(default, bool | int | float):
            _check_number(where, key, value, type(default), valid)
        elif isinstance(default, str) and not isinstance(value, str):
            raise TranslateError(f"{where}: '{key}' must be a string, got {_kind(value)} "
                                 f"{value!r}")


def check_external_args(where: str, args: Any) -> None:
    """An imported network's arguments: exactly ``{"architecture": ID}`` (spandrel's id)."""
    if (not isinstance(args, dict) or set(args) != {"architecture"}
            or not isinstance(args["architecture"], str) or not args["architecture"]):
        raise TranslateError(f"{where}: an ExternalNet's args must be "
                             f'{{"architecture": NAME}}, got {args!r}')


def build_external(where: str, architecture: str, state: dict[str, torch.Tensor]
                   ) -> ExternalNet:
    """The imported network ``state`` holds (its keys as ``ExternalNet.model`` names them),
    rebuilt by spandrel, which must find the ``architecture`` model.json names.

    Raises:
        TranslateError: spandrel cannot rebuild it, or finds another architecture.
    """
    inner = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    if len(inner) != len(state) or not inner:
        raise TranslateError(f"{where}: the weights are not those of an imported network "
                             "(keys model.*)")
    try:
        net = from_state_dict(inner)
    except UnsupportedNetwork as e:
        raise TranslateError(f"{where}: {e}") from None
    if net.architecture != architecture:
        raise TranslateError(f"{where}: the weights are a {net.architecture} network; model.json "
                             f"says {architecture}")
    return net


@contextlib.contextmanager
def _no_random_init_on_meta() -> Iterator[None]:
    """``Tensor.normal_`` does nothing to meta tensors in the block: its first call on the meta
    device loads torch's decompositions (~4 s on the 2-core CPU), and a meta tensor has no
    values to draw. Tensors on real devices draw as always (other threads included)."""
    original = torch.Tensor.normal_

    def normal_(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self if self.is_meta else original(self, *args, **kwargs)

    torch.Tensor.normal_ = normal_  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.normal_ = original  # type: ignore[method-assign]


def build_network(where: str, cls: type[torch.nn.Module], args: dict[str, Any]
                  ) -> torch.nn.Module:
    """``cls(**args)``, once the arguments are checked and the network, built first on the
    meta device (no memory), holds at most :data:`MAX_PARAMETERS` parameters.

    Raises:
        TranslateError: arguments the constructor refuses, or too many parameters.
    """
    check_args(where, cls, args)
    try:
        with torch.device("meta"), _no_random_init_on_meta():
            sized = cls(**args)
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TranslateError(f"{where}: bad arguments for {cls.__name__}: {first}") from None
    count = sum(p.numel() for p in sized.parameters())
    if count > MAX_PARAMETERS:
        raise TranslateError(f"{where}: {cls.__name__} with these arguments would have "
                             f"{count:,} parameters, over the {MAX_PARAMETERS:,} a model file "
                             "may ask for")
    return cls(**args)


EXPORT_REQUIRED = ("task", "value_range", "scale", "size_multiple")


def export_meta(where: str, meta: dict[str, str]) -> dict[str, Any]:
    """An export's str → str metadata (ONNX ``metadata_props``, safetensors header) with the
    fields inference reads parsed and checked as model.json's (:func:`check_meta`).

    Raises:
        TranslateError: a field missing (``task``, ``value_range``, ``scale``,
            ``size_multiple``: every export has them), that does not parse or is out of range,
            naming it.
    """
    missing = [k for k in EXPORT_REQUIRED if k not in meta]
    if missing:
        raise TranslateError(f"{where}: its metadata has no {', '.join(map(repr, missing))} "
                             "(damaged, or not made by `translate export`)")
    values: dict[str, Any] = {}
    try:
        values["value_range"] = json.loads(meta["value_range"])
        for key, (kind, _) in META_FIELDS.items():
            if meta.get(key, "") != "":
                values[key] = json.loads(meta[key]) if kind is bool else int(meta[key])
    except ValueError:
        bad = next(k for k in ("value_range", *META_FIELDS) if k in meta and k not in values)
        raise TranslateError(f"{where}: metadata '{bad}' is not a valid value: "
                             f"{meta[bad]!r}") from None
    check_meta(where, values)
    task = meta.get("task", "")
    if task not in TASKS:
        raise TranslateError(f"{where}: unknown task {task!r} in its metadata (one of "
                             f"{', '.join(TASKS)})")
    if meta.get("direction", "") not in ("", "a2b", "b2a"):
        raise TranslateError(f"{where}: metadata 'direction' must be a2b or b2a, got "
                             f"{meta['direction']!r}")
    return values


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


def weights_file(folder: Path, description: dict[str, Any]) -> Path:
    """The weights file of the model folder ``folder`` whose model.json is ``description``.

    Its own ``model.safetensors``, or, where model.json says ``"weights_of": NAME``, the sibling
    folder NAME's: one bundled CycleGAN run ships as two models (``monet2photo`` is
    ``photo2monet``'s weights with the directions swapped), stored once.
    """
    shared = description.get("weights_of")
    if shared is None:
        path = folder / "model.safetensors"
    elif (not isinstance(shared, str) or shared in ("", ".", "..")
          or Path(shared).name != shared):
        raise TranslateError(f"{folder / 'model.json'}: 'weights_of' must name a model folder "
                             f"beside this one, got {shared!r}")
    else:
        path = folder.parent / shared / "model.safetensors"
    check_regular(path, "weights file")  # a FIFO would block the read forever
    return path


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a run directory, a model folder, or the path of its model.json/model.safetensors."""
    path = Path(path)
    if path.is_file() and path.name in ("model.json", "model.safetensors"):
        path = path.parent
    if not path.exists():
        raise TranslateError(f"model not found: {path}")
    if not (path / "model.json").is_file() or not (
            (path / "model.safetensors").is_file() or _names_shared_weights(path)):
        raise TranslateError(
            f"{path} holds no model (model.json + model.safetensors); train one first"
        )
    return path


def _names_shared_weights(folder: Path) -> bool:
    """Whether ``folder/model.json`` names another folder's weights (:func:`weights_file`)."""
    try:
        description = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(description, dict) and "weights_of" in description


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
    if isinstance(description, dict) and isinstance(description.get("networks"), dict):
        # Files from before the one naming of networks load under today's names.
        description["networks"] = current_names(description.get("task"),
                                                description["networks"])
    check_description(str(folder / "model.json"), description)
    model_task = description.get("task")
    wanted = (task,) if isinstance(task, str) else task
    if wanted and model_task not in wanted:
        raise TranslateError(
            f"{folder} holds a '{model_task}' model; this command needs {' or '.join(wanted)}"
        )
    weights = weights_file(folder, description)
    try:
        tensors = load_file(weights, device="cpu")
    except (SafetensorError, OSError) as e:
        raise TranslateError(f"cannot read {weights}: {e}") from None
    # Files from before the one naming of networks load under today's names (translate/tasks.py).
    tensors = current_keys(model_task, tensors)
    check_finite(tensors, str(weights))
    networks = {}
    for name, spec in description["networks"].items():
        prefix = f"{name}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if NETWORKS[spec["class"]] is ExternalNet:
            net = build_external(f"{weights} ({name})", spec["args"]["architecture"], state)
            networks[name] = net.to(device).eval()
            continue
        net = build_network(str(folder / "model.json"), NETWORKS[spec["class"]],
                            spec.get("args", {}))
        load_module_state(net, state, f"{weights} ({name})")
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
