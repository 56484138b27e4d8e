"""``translate import``: CycleGAN generator weights from other implementations → a model folder.

The reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix) saves each generator's
``state_dict`` (``latest_net_G_A.pth``, the pretrained ``horse2zebra.pth`` …) with the
generator's ``nn.Sequential`` indices as keys:

```
model.1            Conv2d(in, ngf, 7)              after ReflectionPad2d(3) at model.0
model.2            norm                            (ReLU at model.3)
model.4, model.7   Conv2d(k3, s2, p1)              2 downsamplings, norms at model.5, model.8
model.10 … 10+n-1  ResnetBlock: conv_block.1 conv, .2 norm, .5 conv, .6 norm
                   (with dropout: .6 conv, .7 norm — the Dropout sits at .4)
model.10+n, +3     ConvTranspose2d(k3, s2, p1, output_padding=1), norms at +1, +4
model.10+n+7       Conv2d(ngf, out, 7)             after ReflectionPad2d(3), then Tanh
```

That is translate's own :class:`~translate.nets.resnet.ResnetGenerator`, module for module, so
importing is a renaming of keys. Two layouts are known, told apart by the residual blocks' key:
``reference`` (``model.N.conv_block.M``) and ``vintagify`` (``model.N.block.M``, the vintagify
package's generator). Norms are instance norm, without parameters (the reference's default,
``InstanceNorm2d(affine=False)``) or with them (``affine=True`` → translate's
``norm="instance_affine"``); running statistics that very old PyTorch saved for InstanceNorm are
dropped, as the reference's own loader does. Width, block count, affine and dropout are read
from the keys and shapes; anything else (missing or unexpected keys, a wrong shape) is refused
with a one-line :class:`TranslateError` naming what did not match.

Files are read with ``torch.load(path, map_location="cpu", weights_only=True)`` only: a pickle
that needs arbitrary code to load is refused, never run.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from translate.errors import TranslateError
from translate.io.paths import is_run_folder
from translate.io.weights import read_state_dict, sha256_of
from translate.modelfile import build_external, save_model
from translate.nets.external import LICENCES, ExternalNet, UnsupportedNetwork, from_state_dict
from translate.nets.resnet import ResnetGenerator

# The residual blocks' Sequential attribute in each known layout.
LAYOUTS = {"conv_block": "reference", "block": "vintagify"}
# Names in model.json, as translate's CycleGAN export writes them.
NETWORK = {"a2b": "G_AB", "b2a": "G_BA"}
_STATS = ("running_mean", "running_var", "num_batches_tracked")
_KEY = re.compile(r"model\.(\d+)\.(?:(\w+)\.(\d+)\.)?(\w+)")


@dataclass(frozen=True)
class GeneratorSpec:
    """What a state dict holds, read from its keys and shapes."""

    layout: str  # "reference" or "vintagify"
    in_ch: int
    out_ch: int
    ngf: int
    n_blocks: int
    affine: bool
    dropout: bool

    @property
    def norm(self) -> str:
        return "instance_affine" if self.affine else "instance"


def _shape(state: dict[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    t = state.get(key)
    return None if t is None else tuple(t.shape)


def _keys_message(path: Path, spec: GeneratorSpec, missing: list[str], unexpected: list[str]
                  ) -> str:
    def some(keys: list[str]) -> str:
        return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

    parts = [f"missing keys {some(missing)}"] if missing else []
    parts += [f"unexpected keys {some(unexpected)}"] if unexpected else []
    return (f"{path}: not a {spec.layout}-layout ResNet generator (ngf {spec.ngf}, "
            f"{spec.n_blocks} blocks, {'affine' if spec.affine else 'plain'} instance norm): "
            + "; ".join(parts))


def describe(state: dict[str, torch.Tensor], path: Path) -> GeneratorSpec:
    """Read the layout, widths, block count and norm of a generator state dict.

    Raises:
        TranslateError: the keys are not those of a known ResNet generator layout.
    """
    foreign = sorted(k for k in state if not _KEY.fullmatch(k))
    if foreign:
        raise TranslateError(f"{path}: not a CycleGAN ResNet generator state dict "
                             f"(keys like model.N.weight); unexpected keys "
                             f"{', '.join(foreign[:4])}" + (" …" if len(foreign) > 4 else ""))
    blocks: dict[str, set[int]] = {}
    for key in state:
        m = _KEY.fullmatch(key)
        if m and m.group(2):
            blocks.setdefault(m.group(2), set()).add(int(m.group(1)))
    names = sorted(blocks)
    if len(names) != 1 or names[0] not in LAYOUTS:
        found = ", ".join(names) or "none"
        raise TranslateError(f"{path}: residual blocks not in a known layout (model.N.conv_block"
                             f" = reference, model.N.block = vintagify); found: {found}")
    block = names[0]
    n_blocks = len(blocks[block])
    stem = _shape(state, "model.1.weight")
    if stem is None or len(stem) != 4 or stem[2:] != (7, 7):
        raise TranslateError(f"{path}: model.1.weight should be the 7x7 stem conv "
                             f"(ngf, in, 7, 7); it is {stem or 'missing'}")
    if "model.1.bias" not in state:
        raise TranslateError(f"{path}: model.1 has no bias, so the norms are not instance norm "
                             "(batch norm or none); only instance-norm generators import")
    ngf, in_ch = stem[0], stem[1]
    affine = "model.2.weight" in state
    second = _shape(state, f"model.10.{block}.6.weight")  # conv after dropout, or 2nd norm
    dropout = second is not None and len(second) == 4
    up = _shape(state, f"model.{10 + n_blocks}.weight")
    if up is not None and up == (2 * ngf, 4 * ngf, 3, 3):
        raise TranslateError(f"{path}: model.{10 + n_blocks} is a Conv2d (resize-convolution "
                             "upsampling); its interpolation mode is not in the weights, so it "
                             "cannot be imported exactly — only ConvTranspose2d decoders import")
    final = _shape(state, f"model.{17 + n_blocks}.weight")
    out_ch = final[0] if final is not None and len(final) == 4 else 3
    spec = GeneratorSpec(LAYOUTS[block], in_ch, out_ch, ngf, n_blocks, affine, dropout)
    if (in_ch, out_ch) != (3, 3):
        raise TranslateError(f"{path}: a {in_ch}→{out_ch}-channel generator; translate infer "
                             "works on RGB (3→3)")
    return spec


def key_map(spec: GeneratorSpec) -> dict[str, str]:
    """Source key → translate ``ResnetGenerator`` key, for every parameter ``spec`` has."""
    block = {v: k for k, v in LAYOUTS.items()}[spec.layout]
    params = ("weight", "bias")
    norm = params if spec.affine else ()
    modules: list[tuple[str, str, tuple[str, ...]]] = []  # (source, translate, parameters)
    for i in (1, 4, 7):  # stem conv and the two downsamplings, each followed by a norm
        modules += [(f"model.{i}", f"trunk.layers.{i}", params),
                    (f"model.{i + 1}", f"trunk.layers.{i + 1}", norm)]
    conv2, norm2 = (6, 7) if spec.dropout else (5, 6)  # the Dropout shifts the second half
    for n in range(10, 10 + spec.n_blocks):
        src, dst = f"model.{n}.{block}", f"trunk.layers.{n}.block"
        modules += [(f"{src}.1", f"{dst}.1", params), (f"{src}.2", f"{dst}.2", norm),
                    (f"{src}.{conv2}", f"{dst}.5", params), (f"{src}.{norm2}", f"{dst}.6", norm)]
    base = 10 + spec.n_blocks
    for d in (0, 3):  # the two transposed convs, each followed by a norm
        modules += [(f"model.{base + d}", f"decoder.layers.{d}", params),
                    (f"model.{base + d + 1}", f"decoder.layers.{d + 1}", norm)]
    modules.append((f"model.{base + 7}", "decoder.layers.7", params))
    return {f"{src}.{p}": f"{dst}.{p}" for src, dst, ps in modules for p in ps}


def _norm_stats(spec: GeneratorSpec) -> set[str]:
    """Running-statistics keys old PyTorch saved for InstanceNorm (the reference drops them)."""
    with_norms = key_map(dataclasses.replace(spec, affine=True))
    without = key_map(dataclasses.replace(spec, affine=False))
    norms = {k.rsplit(".", 1)[0] for k in with_norms.keys() - without.keys()}
    return {f"{m}.{s}" for m in norms for s in _STATS}


def to_generator(state: dict[str, torch.Tensor], path: Path) -> tuple[ResnetGenerator,
                                                                       GeneratorSpec]:
    """Build translate's generator with the weights of ``state`` (a known layout).

    Raises:
        TranslateError: a layout, key or shape that does not match (named in the message).
    """
    spec = describe(state, path)
    mapping = key_map(spec)
    present = set(state) - _norm_stats(spec)
    missing = [k for k in mapping if k not in present]
    unexpected = sorted(present - set(mapping), key=_natural)
    if missing or unexpected:
        raise TranslateError(_keys_message(path, spec, missing, unexpected))
    net = ResnetGenerator(spec.in_ch, spec.out_ch, spec.ngf, spec.n_blocks, norm=spec.norm)
    own = net.state_dict()
    for src, dst in mapping.items():
        t = state[src]
        if tuple(t.shape) != tuple(own[dst].shape):
            raise TranslateError(f"{path}: {src} has shape {tuple(t.shape)}; a {spec.layout} "
                                 f"generator at ngf {spec.ngf} needs {tuple(own[dst].shape)}")
        if not t.is_floating_point():
            raise TranslateError(f"{path}: {src} holds {t.dtype} values, not floats")
        if not torch.isfinite(t).all():
            raise TranslateError(f"{path}: {src} holds NaN or infinite values")
    net.load_state_dict({dst: state[src].float() for src, dst in mapping.items()}, strict=True)
    return net.eval(), spec


def _natural(key: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in key.split(".")]


@dataclass
class Imported:
    """What :func:`import_generators` or :func:`import_external` wrote."""

    out: Path
    specs: dict[str, GeneratorSpec]  # CycleGAN generators, by direction
    parameters: int
    architecture: str = "ResnetGenerator"
    task: str = "cyclegan"
    scale: int = 1


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise TranslateError(f"--out {out} is a file, not a folder")
    _refuse_run_folder(out)
    if (out / "model.json").exists() and not overwrite:
        raise TranslateError(f"{out} already holds a model; pass --overwrite to replace it")


def _write(out: Path, task: str, networks: dict[str, torch.nn.Module], meta: dict[str, Any]
           ) -> None:
    """Save the model folder; a folder this call created is removed again if that fails."""
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        save_model(out, task, networks, meta)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def import_generators(files: dict[str, Path], out: Path, *, name: str | None = None,
                      overwrite: bool = False,
                      states: dict[str, dict[str, torch.Tensor]] | None = None) -> Imported:
    """Write ``out/model.safetensors`` + ``out/model.json`` for one or both directions.

    Args:
        files: direction (``a2b``/``b2a``) → the generator weights translating that way (the
            reference's ``G_A`` is a2b, ``G_B`` b2a).
        out: the model folder to write (created; nothing is left there if anything fails).
        name: a label recorded in model.json (default: the first file's stem).
        overwrite: replace a model already in ``out``.
        states: state dicts already read from some of ``files`` (by direction), not read again.

    Raises:
        TranslateError: an unreadable or foreign file (one line naming what did not match), or
            ``out`` already holding a model without ``overwrite``.
    """
    if not files or set(files) - set(NETWORK):
        raise TranslateError(f"directions to import must be among {', '.join(NETWORK)}")
    _check_out(out, overwrite)
    # Read and check everything before the folder is touched, so a bad file leaves nothing.
    networks: dict[str, torch.nn.Module] = {}
    specs: dict[str, GeneratorSpec] = {}
    sources: dict[str, dict[str, Any]] = {}
    for direction, path in files.items():
        state = (states or {}).get(direction) or read_state_dict(path)
        net, spec = to_generator(state, path)
        networks[NETWORK[direction]] = net
        specs[direction] = spec
        sources[direction] = {
            "file": path.name, "sha256": sha256_of(path), "bytes": path.stat().st_size,
            "layout": spec.layout, "network": NETWORK[direction],
            "ngf": spec.ngf, "n_blocks": spec.n_blocks, "norm": spec.norm,
            "dropout": spec.dropout,  # inactive at inference, so not part of the network
        }
    meta = {
        "name": name or next(iter(files.values())).stem,
        "value_range": [-1.0, 1.0],
        "directions": {d: NETWORK[d] for d in files},
        "size_multiple": 4,
        "channels": 3,
        "ema": False,
        "imported": {"from": sources,
                     "at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }
    _write(out, "cyclegan", networks, meta)
    parameters = sum(p.numel() for net in networks.values() for p in net.parameters())
    return Imported(out=out, specs=specs, parameters=parameters)


# ── The field's architectures, through spandrel (translate/nets/external.py).

# The largest scale an imported model may have (8x ESRGANs exist; model.json allows it).
MAX_SCALE = 8


def is_cyclegan_layout(state: dict[str, torch.Tensor]) -> bool:
    """Whether ``state``'s keys are a CycleGAN ResNet generator's (``model.N…`` with residual
    blocks ``model.N.conv_block.M`` or ``model.N.block.M``), the layout :func:`describe` reads."""
    if not all(_KEY.fullmatch(k) for k in state):
        return False
    return any((m := _KEY.fullmatch(k)) is not None and m.group(2) in LAYOUTS for k in state)


def _size_requirements(net: ExternalNet) -> dict[str, Any]:
    rule = net.size_rule
    return {"minimum": rule.minimum, "multiple_of": rule.multiple_of, "square": rule.square}


def external_meta(net: ExternalNet, path: Path, name: str) -> dict[str, Any]:
    """model.json's fields for an imported network (besides ``task`` and ``networks``)."""
    return {
        "name": name,
        "value_range": [0.0, 1.0],
        "scale": net.scale,
        "channels": 3,
        "size_multiple": 1,  # the network pads to its own size requirements
        "receptive_radius": net.receptive_radius,
        "tile_multiple": net.tile_multiple,
        "precisions": net.precisions,
        "ema": False,
        "imported": {
            "from": {"file": path.name, "sha256": sha256_of(path), "bytes": path.stat().st_size},
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "by": "spandrel",
            "architecture": net.architecture,
            "purpose": net.purpose,
            "tags": net.tags,
            "licence": LICENCES.get(net.architecture, "unknown: see the architecture's "
                                    "repository and the weights' own terms"),
            "size_requirements": _size_requirements(net),
            "tiling": net.tiling,
            "parameters": sum(p.numel() for p in net.parameters()),
        },
    }


def to_external(state: dict[str, torch.Tensor], path: Path) -> ExternalNet:
    """spandrel's network for ``state``, or a one-line error naming the file."""
    try:
        net = from_state_dict(state)
    except UnsupportedNetwork as e:
        raise TranslateError(f"{path}: {e}") from None
    if not 1 <= net.scale <= MAX_SCALE:
        raise TranslateError(f"{path}: a {net.architecture} model of scale {net.scale}; "
                             f"translate runs scales 1 to {MAX_SCALE}")
    return net


def _refuse_run_folder(out: Path) -> None:
    """A training run's folder is never an import's destination: its state, config and samples
    belong to the model trained there."""
    if is_run_folder(out):
        raise TranslateError(f"{out} holds a training run (state/, config.yaml); import into "
                             "another folder")


def _seeded_output(net: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor | None
                   ) -> torch.Tensor:
    """``net``'s output with the global RNG seeded (some networks draw noise, e.g. AuraSR)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        return net(x, mask)


def check_round_trip(net: ExternalNet, path: Path) -> None:
    """The network model.safetensors will hold, rebuilt by spandrel from exactly those bytes as
    ``load_model`` will, gives the imported network's output on a small seeded input.

    Raises:
        TranslateError: it does not, or the network's output is not finite.
    """
    tensors = {f"G.{k}": t.detach().contiguous() for k, t in net.state_dict().items()}
    stored = safetensors_load(safetensors_save(tensors))
    rebuilt = build_external(str(path), net.architecture,
                             {k[len("G."):]: v for k, v in stored.items()})
    g = torch.Generator().manual_seed(0)
    side = max(net.size_rule.minimum, 24)
    x = torch.rand(1, 3, side, side, generator=g)
    holes = (torch.rand(1, 1, side, side, generator=g) > 0.7).float()
    mask = holes if net.task == "inpaint" else None
    want = _seeded_output(net, x, mask)
    if not torch.isfinite(want).all():
        raise TranslateError(f"{path}: the {net.architecture} network gives NaN or infinite "
                             "values on a test image (damaged weights?)")
    if not torch.equal(want, _seeded_output(rebuilt, x, mask)):
        raise TranslateError(f"{path}: the {net.architecture} network rebuilt from the weights "
                             "translate would store does not give spandrel's output")


def import_external(path: Path, out: Path, *, name: str | None = None, overwrite: bool = False,
                    state: dict[str, torch.Tensor] | None = None) -> Imported:
    """Write ``out/model.safetensors`` + ``out/model.json`` for a network spandrel detects
    (Real-ESRGAN, SwinIR, HAT, DAT, SPAN, OmniSR, SCUNet, LaMa …).

    The model folder is an ``sr`` model (super-resolution; restoration at scale 1) or an
    ``inpaint`` model, which every command takes. Before anything is written, the weights as
    they will be stored are rebuilt and checked to give the network's output
    (:func:`check_round_trip`).

    Args:
        path: the weights (``.pth``, ``.pt``, ``.ckpt``, ``.safetensors``).
        out: the model folder to write (nothing is left there if anything fails).
        name: a label recorded in model.json (default: the file's stem).
        overwrite: replace a model already in ``out`` (never a training run's).
        state: the state dict already read from ``path`` (:func:`read_state_dict`).

    Raises:
        TranslateError: an unreadable, unknown or unsupported file, or ``out`` not writable.
    """
    _check_out(out, overwrite)
    state = read_state_dict(path) if state is None else state
    net = to_external(state, path)
    check_round_trip(net, path)
    meta = external_meta(net, path, name or path.stem)
    _write(out, net.task, {"G": net}, meta)
    params = meta["imported"]["parameters"]
    return Imported(out=out, specs={}, parameters=params, architecture=net.architecture,
                    task=net.task, scale=net.scale)


def import_model(path: Path, out: Path, *, name: str | None = None, overwrite: bool = False
                 ) -> Imported:
    """Import any weights file translate reads: a CycleGAN generator (one direction, a2b) or a
    network spandrel detects (:func:`import_external`)."""
    _check_out(out, overwrite)
    state = read_state_dict(path)
    if is_cyclegan_layout(state):
        return import_generators({"a2b": path}, out, name=name, overwrite=overwrite,
                                 states={"a2b": state})
    return import_external(path, out, name=name, overwrite=overwrite, state=state)
