"""The one wrapper around an image network at inference: pad → network → crop, in [0, 1].

Every PyTorch pipeline (translation, super-resolution, inpainting) runs its network through
:class:`PadCrop`, and ``translate export`` exports the same module, so an exported graph is the
computation PyTorch inference runs. Exports keep the network's own value range at their inputs and
outputs (``value_range=None``; the range is in the file's metadata and the ONNX pipeline maps it
with :func:`to_network` / :func:`from_network`, as this module does).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from translate.errors import TranslateError
from translate.modelfile import Model
from translate.nets.layers import crop_to, mirror_pad_to_multiple, pad_to_multiple
from translate.runtime import Precision
from translate.tasks import TASKS


def value_range(model: Model) -> tuple[float, float]:
    """(lo, hi) of the values ``model``'s networks take and give: model.json's ``value_range``,
    else the task's (translate/tasks.py: [0, 1] for super-resolution, [-1, 1] (tanh) for the
    others)."""
    row = TASKS.get(model.task)
    lo, hi = model.meta.get("value_range", row.value_range if row else (-1.0, 1.0))
    return float(lo), float(hi)


def size_multiple(net: nn.Module, meta: dict[str, Any]) -> int:
    """The multiple H and W must have for ``net``: model.json's ``size_multiple``, else the
    network's own (a ResNet generator's ``2 ** n_down``), else 1."""
    return int(meta.get("size_multiple", getattr(net, "size_multiple", 1)))


PRECISIONS = ("fp32", "bf16", "fp16")


def model_precision(name: str, device: torch.device, meta: dict[str, Any]) -> Precision:
    """``Precision(name, device)`` within what the model runs in: model.json's ``precisions``
    (imported architectures: spandrel says which support bf16 and fp16), which ``auto`` chooses
    among (``Precision``'s ``allowed``).

    Raises:
        TranslateError: a precision asked for by name that the model does not run in, or a
            malformed ``precisions``.
    """
    allowed = meta.get("precisions", list(PRECISIONS))
    if (not isinstance(allowed, list) or "fp32" not in allowed
            or any(p not in PRECISIONS for p in allowed)):
        raise TranslateError(f"model.json: 'precisions' must list some of {', '.join(PRECISIONS)}"
                             f", fp32 among them, got {allowed!r}")
    precision = Precision(name, device, allowed=tuple(allowed))
    if precision.name not in allowed:
        raise TranslateError(f"--precision {precision.name}: this model runs only in "
                             f"{', '.join(allowed)} (its architecture does not support "
                             f"{precision.name})")
    return precision


def keeps_gray(task: str) -> bool:
    """Whether a grey input's result is written back grey: yes where the model changes an
    image's look but not its kind (SR, inpainting, CycleGAN: a style, a season); no for pix2pix,
    which maps A to the B it was trained on (edges → photo, grey → colour)."""
    return task != "pix2pix"


PADDINGS = {"reflect": pad_to_multiple, "mirror": mirror_pad_to_multiple}


def padding(meta: dict[str, Any]) -> str:
    """How images are padded to the size multiple: model.json's ``padding``, else ``reflect``
    (``layers.pad_to_multiple``: reflect, replicate where an image is too small to reflect);
    ``mirror`` (``layers.mirror_pad_to_multiple``: reflection repeated for pads longer than
    the image, one graph for every size) is what pix2pix's large U-Net multiples need.

    Raises:
        TranslateError: an unknown padding.
    """
    mode = meta.get("padding", "reflect")
    if mode not in PADDINGS:
        raise TranslateError(f"model.json: 'padding' must be one of {', '.join(PADDINGS)}, "
                             f"got {mode!r}")
    return mode


def to_network(x: Any, value_range: tuple[float, float]) -> Any:
    """[0, 1] → the network's range (a tensor or an array); [0, 1] itself is left as it is."""
    lo, hi = value_range
    return x if (lo, hi) == (0.0, 1.0) else x * (hi - lo) + lo


def from_network(y: Any, value_range: tuple[float, float]) -> Any:
    """The network's range → [0, 1] (not clamped); the inverse of :func:`to_network`."""
    lo, hi = value_range
    return y if (lo, hi) == (0.0, 1.0) else (y - lo) / (hi - lo)


class PadCrop(nn.Module):
    """An image network as inference runs it: any H × W in, ``scale`` · H × ``scale`` · W out.

    Maps the input from [0, 1] to the network's range, reflect-pads the bottom/right to
    ``multiple`` (``layers.pad_to_multiple``), runs the network and crops back
    (``layers.crop_to``), then maps the output to [0, 1] in float32 (not clamped: pipelines
    clamp once their last step is done, e.g. after blending SR tiles). So a network that needs
    multiples of 4 (two stride-2 convs) takes any size.

    ``forward(image)`` or, for an inpainting network ``net(image, mask)``, ``forward(image,
    mask)``: the mask (B, 1, H, W), 1 = hole, is padded alike and not mapped.

    Args:
        net: (B, C, H, W) → (B, C', scale·H, scale·W), H and W multiples of ``multiple``.
        multiple: the size multiple ``net`` needs (1: none).
        scale: output size / input size (super-resolution).
        value_range: (lo, hi) of the network's values; None: inputs and outputs stay in the
            network's range (what ``translate export`` writes).
        memory_format: ``torch.channels_last`` to hand the network NHWC inputs.
        padding: ``reflect`` or ``mirror`` (see :func:`padding`).
    """

    def __init__(self, net: nn.Module, multiple: int = 1, scale: int = 1,
                 value_range: tuple[float, float] | None = None,
                 memory_format: torch.memory_format = torch.contiguous_format,
                 padding: str = "reflect"):
        super().__init__()
        self.net, self.multiple, self.scale = net, multiple, scale
        self.pad = PADDINGS[padding]
        self.value_range, self.memory_format = value_range, memory_format

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.value_range is not None:
            image = to_network(image, self.value_range)
        padded, (h, w) = self.pad(image, self.multiple)  # (B, C, H', W')
        if self.memory_format is not torch.contiguous_format:
            padded = padded.contiguous(memory_format=self.memory_format)
        if mask is None:
            y = self.net(padded)
        else:
            y = self.net(padded, self.pad(mask, self.multiple)[0])  # mask (B, 1, H', W')
        y = crop_to(y, (h * self.scale, w * self.scale))
        if self.value_range is None:
            return y
        return from_network(y.float(), self.value_range)
