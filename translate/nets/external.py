"""The field's own networks, rebuilt by spandrel from their weights (Real-ESRGAN, SwinIR, LaMa …).

spandrel (MIT) knows the architectures people train and share image-to-image weights for, and
detects which one a state dict holds, with its hyper-parameters, from the keys and shapes alone.
:func:`from_state_dict` asks it for a network and wraps it in :class:`ExternalNet`, which runs the
network exactly as spandrel's own call does — inputs in [0, 1], padded to the architecture's size
requirements (reflect, then replicate; minimum side, multiple, square), the output cropped back —
but as a plain module: no ``inference_mode`` and no clamping inside, so pipelines tile, blend and
clamp it as they do translate's own networks, and export can trace it.

Only whole-image models are accepted (``purpose``: super-resolution, restoration, inpainting) and
only RGB ones; face restorers need a detector and alignment first and are refused.

The weights are never read here from a file: the importer and ``load_model`` read them with
``torch.load(weights_only=True)`` or safetensors and hand the tensors over, so no pickled code can
run (spandrel's own file loader would also open TorchScript archives, which hold code).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Task = Literal["sr", "inpaint"]
# spandrel's purposes → translate's task. FaceSR (GFPGAN, CodeFormer …) is left out on purpose.
TASK_OF_PURPOSE: dict[str, Task] = {"SR": "sr", "Restoration": "sr", "Inpainting": "inpaint"}

# The licence of each architecture's reference code and released weights, as far as known (the
# repository each comes from). Weights a user trained may carry other terms: their own.
LICENCES: dict[str, str] = {
    "ESRGAN": "Apache-2.0 (xinntao/ESRGAN, Real-ESRGAN's RRDBNet: BSD-3-Clause)",
    "Compact": "BSD-3-Clause (xinntao/Real-ESRGAN, SRVGGNetCompact)",
    "SwinIR": "Apache-2.0 (JingyunLiang/SwinIR)",
    "Swin2SR": "Apache-2.0 (mv-lab/swin2sr)",
    "HAT": "Apache-2.0 (XPixelGroup/HAT)",
    "DAT": "Apache-2.0 (zhengchen1999/DAT)",
    "SPAN": "Apache-2.0 (hongyuanyu/SPAN)",
    "OmniSR": "Apache-2.0 (Francis0625/Omni-SR)",
    "SCUNet": "Apache-2.0 (cszn/SCUNet)",
    "LaMa": "Apache-2.0 (advimman/lama)",
    "RealCUGAN": "MIT (bilibili/ailab Real-CUGAN)",
    "DRCT": "MIT (ming053l/DRCT)",
    "ATD": "Apache-2.0 (LabShuHangGU/Adaptive-Token-Dictionary)",
    "SAFMN": "Apache-2.0 (sunny2109/SAFMN)",
    "PLKSR": "MIT (dslisleedh/PLKSR)",
    "RCAN": "MIT (yulunzhang/RCAN)",
    "NAFNet": "MIT (megvii-research/NAFNet)",
    "DnCNN": "MIT (cszn/KAIR)",
    "DRUNet": "MIT (cszn/KAIR)",
    "FBCNN": "Apache-2.0 (jiaxi-jiang/FBCNN)",
}


# Architectures whose tiles must start on a coarser grid than their attention window: SCUNet's
# windows of 8 sit at 1/8 resolution after three downsamplings (it pads to 64 itself).
TILE_MULTIPLES = {"SCUNet": 64}


def _sizes(value: object) -> list[int]:
    """The positive ints in an attribute that may be an int or a list/tuple of ints."""
    items = value if isinstance(value, list | tuple) else [value]
    return [int(v) for v in items if isinstance(v, int) and not isinstance(v, bool) and v > 0]


def tile_multiple(architecture: str, model: nn.Module, rule: SizeRule) -> int:
    """The grid tiles must start on for a tile to see what the whole image's pass sees: the
    least common multiple of the size multiple the network needs (its downsamplings), its pixel
    unshuffle (Real-ESRGAN x2plus: ``shuffle_factor``), its attention windows (``window_size``;
    DAT/RGT's ``split_size`` rectangles) and :data:`TILE_MULTIPLES`. Window-attention networks
    partition the image into windows counted from its corner, so a tile starting off that grid
    attends over other pixel groups."""
    sizes = [rule.multiple_of, TILE_MULTIPLES.get(architecture, 1)]
    for module in model.modules():  # the blocks hold their windows (DAT: only there)
        for attribute in ("window_size", "split_size", "shuffle_factor"):  # + pixel unshuffle
            sizes += _sizes(getattr(module, attribute, None))
    return math.lcm(*sizes)


# LR pixels of context assumed on each side of a tile (tile overlap = twice this): Real-ESRGAN's own
# tiling pads tiles by 10; a little more keeps seams below 1/255 in practice.
CONTEXT_RADIUS = 16


class UnsupportedNetwork(ValueError):
    """A state dict spandrel does not know, or a model translate cannot run as an image model."""


@dataclass(frozen=True)
class SizeRule:
    """spandrel's size requirements of an architecture: H and W at least ``minimum``, multiples
    of ``multiple_of``, equal when ``square``."""

    minimum: int = 0
    multiple_of: int = 1
    square: bool = False

    def padding(self, h: int, w: int) -> tuple[int, int]:
        """(pad_h, pad_w) to add at the bottom and right."""

        def up(n: int) -> int:
            n = max(self.minimum, n)
            return -(-n // self.multiple_of) * self.multiple_of

        ph, pw = up(h), up(w)
        if self.square:
            ph = pw = max(ph, pw)
        return ph - h, pw - w


def pad_image(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Bottom/right padding as spandrel's ``pad_tensor``: reflect as far as the image allows
    (at most side - 1), the rest by replicating the edge."""
    h, w = x.shape[-2:]
    rh, rw = min(pad_h, h - 1), min(pad_w, w - 1)
    if rh or rw:
        x = F.pad(x, (0, rw, 0, rh), mode="reflect")
    if pad_h - rh or pad_w - rw:
        x = F.pad(x, (0, pad_w - rw, 0, pad_h - rh), mode="replicate")
    return x


class ExternalNet(nn.Module):
    """A spandrel-built network as translate runs it: (B, 3, H, W) in [0, 1] (and for inpainting
    a (B, 1, H, W) mask, 1 = hole) → (B, 3, s·H, s·W), not clamped.

    Attributes:
        architecture: spandrel's id of the architecture (``ESRGAN``, ``SwinIR``, ``LaMa`` …).
        task: ``sr`` (super-resolution and restoration, scale 1 for the latter) or ``inpaint``.
        scale, size_rule, precisions, tiling, tags, purpose: what spandrel says of the network.
        tile_multiple: the grid tiles start on (:func:`tile_multiple`).
    """

    def __init__(self, descriptor: object):
        super().__init__()
        d = descriptor
        self.model = d.model  # type: ignore[attr-defined]
        self.architecture = str(d.architecture.id)  # type: ignore[attr-defined]
        self.purpose = str(d.purpose)  # type: ignore[attr-defined]
        self.task: Task = TASK_OF_PURPOSE[self.purpose]
        self.scale = int(d.scale)  # type: ignore[attr-defined]
        req = d.size_requirements  # type: ignore[attr-defined]
        self.size_rule = SizeRule(int(req.minimum), int(req.multiple_of), bool(req.square))
        supports = {"bf16": d.supports_bfloat16, "fp16": d.supports_half}  # type: ignore[attr-defined]
        self.precisions = ["fp32", *(name for name, ok in supports.items() if ok)]
        self.tiling = d.tiling.name.lower()  # type: ignore[attr-defined]
        self.tile_multiple = tile_multiple(self.architecture, self.model, self.size_rule)
        self.tags = [str(t) for t in d.tags]  # type: ignore[attr-defined]
        # spandrel's call of the network: model(x), or for a few restorers an architecture's own
        # function around it (e.g. a noise level as a second input). Private in spandrel 0.4;
        # the pinned version range keeps it there.
        self._call = d._call_fn  # type: ignore[attr-defined]

    @property
    def receptive_radius(self) -> int:
        """The context radius tiles are overlapped by (half the overlap), on the tile grid."""
        return max(CONTEXT_RADIUS, self.tile_multiple // 2)

    @property
    def config(self) -> dict[str, str]:
        """model.json's arguments: the architecture spandrel must find in the weights."""
        return {"architecture": self.architecture}

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h, w = image.shape[-2:]
        pad_h, pad_w = self.size_rule.padding(h, w)
        if pad_h or pad_w:
            image = pad_image(image, pad_h, pad_w)
            mask = None if mask is None else pad_image(mask, pad_h, pad_w)
        y = self._call(self.model, image) if mask is None else self._call(self.model, image, mask)
        if pad_h or pad_w:
            y = y[..., : h * self.scale, : w * self.scale]
        return y


def from_state_dict(state: dict[str, torch.Tensor]) -> ExternalNet:
    """Detect the architecture of ``state`` and build it with these weights (eval mode, CPU).

    Raises:
        UnsupportedNetwork: spandrel knows no architecture with these keys, the weights do not
            fit the one detected, or it is not an RGB whole-image model (one line, why).
    """
    from spandrel import MAIN_REGISTRY, UnsupportedModelError

    try:
        descriptor = MAIN_REGISTRY.load(dict(state))
    except UnsupportedModelError:
        keys = ", ".join(list(state)[:3]) + (" …" if len(state) > 3 else "")
        raise UnsupportedNetwork("not a network translate can import: neither a CycleGAN ResNet "
                                 f"generator nor an architecture spandrel knows (keys {keys})"
                                 ) from None
    except (RuntimeError, KeyError, ValueError, IndexError, TypeError, AssertionError) as e:
        first = next((s.strip() for s in str(e).splitlines() if s.strip()), type(e).__name__)
        raise UnsupportedNetwork(f"the keys look like a known architecture, but the weights do "
                                 f"not fit it: {type(e).__name__}: {first[:200]}") from None
    arch, purpose = str(descriptor.architecture.id), str(descriptor.purpose)
    if purpose not in TASK_OF_PURPOSE:
        raise UnsupportedNetwork(f"a {arch} model ({purpose}): it needs a face detector and "
                                 "alignment before it, so it is not a whole-image model")
    if (descriptor.input_channels, descriptor.output_channels) != (3, 3):
        raise UnsupportedNetwork(f"a {arch} model with {descriptor.input_channels} input and "
                                 f"{descriptor.output_channels} output channels; only RGB "
                                 "(3 → 3) models are imported")
    return ExternalNet(descriptor).eval()
