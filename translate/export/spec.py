"""What leaves PyTorch, per task: the :data:`EXPORTS` table, example inputs and file metadata.

One explicit table says per task how a network is exported: the module that is exported (the
network as inference runs it, ``translate.infer.wrap.PadCrop``: reflect-padding to the size
multiple and cropping back), the example inputs, and the input/output names and axes. A new task
is one entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from translate.errors import TranslateError
from translate.infer.wrap import PadCrop, padding, size_multiple, value_range
from translate.modelfile import EXPORT_FORMAT, Model
from translate.version import __version__


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


def _as_inferred(net: nn.Module, meta: dict[str, Any]) -> nn.Module:
    """The image network as the PyTorch pipelines run it, in its own value range (the file's
    metadata names the range; ``translate.infer.onnx`` maps it)."""
    return PadCrop(net, size_multiple(net, meta), int(getattr(net, "scale", 1)),
                   padding=padding(meta))


def _latent(net: nn.Module, batch: int, size: tuple[int, int], g: torch.Generator,
            lo: float, hi: float) -> tuple[torch.Tensor, ...]:
    return (torch.randn(batch, net.latent_dim, generator=g),)  # (B, latent_dim)


def _image(net: nn.Module, batch: int, size: tuple[int, int], g: torch.Generator,
           lo: float, hi: float) -> torch.Tensor:
    channels = net.config.get("in_ch", 3)
    return torch.rand(batch, channels, *size, generator=g) * (hi - lo) + lo  # (B, C, H, W)


def _images(net: nn.Module, batch: int, size: tuple[int, int], g: torch.Generator,
            lo: float, hi: float) -> tuple[torch.Tensor, ...]:
    return (_image(net, batch, size, g, lo, hi),)


def _image_and_mask(net: nn.Module, batch: int, size: tuple[int, int], g: torch.Generator,
                    lo: float, hi: float) -> tuple[torch.Tensor, ...]:
    image = _image(net, batch, size, g, lo, hi)  # (B, 3, H, W)
    mask = (torch.rand(batch, 1, *size, generator=g) > 0.7).float()  # (B, 1, H, W), 1 = hole
    return image, mask


INPAINT_MAX_SIDE = 8192

# Task name → how its networks are exported: this layer's part of the task table
# (translate/tasks.py); with NOT_EXPORTABLE it holds every task (tests/test_tasks.py).
EXPORTS: dict[str, ExportSpec] = {
    "cyclegan": ExportSpec(
        classes=("ResnetGenerator",), wrap=_as_inferred,
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
        classes=("SRGenerator", "ExternalNet"), wrap=_as_inferred,
        inputs=_images, input_names=("image",), output_names=("output",),
        axes=(_IMAGE_AXES,), check_shapes=((1, (37, 53)), (2, (21, 30))), example=(2, (23, 31)),
    ),
    "inpaint": ExportSpec(
        classes=("InpaintGenerator", "ExternalNet"), wrap=_as_inferred,
        inputs=_image_and_mask, input_names=("image", "mask"), output_names=("output",),
        axes=(_IMAGE_AXES, _IMAGE_AXES),
        # The push-pull prefill (nets/inpaint.py) halves the image until it is 1 pixel: a loop
        # whose count, ceil(log2(longest side)), every exporter fixes at the example's. Levels
        # past 1×1 are identities (2×2 ceil-mode pooling of 1×1 is itself, and so is the pull
        # step), so the example has the longest side supported: the graph is then exact for
        # every image up to it. An example of 37×53 (6 levels) was off by 2e-4 at 29×70.
        example=(2, (9, INPAINT_MAX_SIDE - 1)), max_side=INPAINT_MAX_SIDE,
    ),
    "pix2pix": ExportSpec(
        # The U-Net's multiple (2**num_downs: 128, 256) exceeds small images: the graph pads by
        # repeated reflection (layers.mirror_pad_to_multiple), the same for every size.
        classes=("UnetGenerator",), wrap=_as_inferred,
        inputs=_images, input_names=("image",), output_names=("output",),
        axes=(_IMAGE_AXES,),
    ),
}


# Task name → why it has no export.
NOT_EXPORTABLE: dict[str, str] = {
    "vae": "sampling and interpolation use its encoder and decoder apart, and no export of "
           "them is defined",
}


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
        "value_range": json.dumps(list(value_range(model))),
        "size_multiple": str(size_multiple(net, model.meta)),
        "scale": str(int(model.meta.get("scale", getattr(net, "scale", 1)))),
        "channels": str(int(channels)),
        "model_json": json.dumps(model.meta, sort_keys=True),
    }
