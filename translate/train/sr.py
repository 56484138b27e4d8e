"""Super-resolution on the shared core: stage 1 L1 (G step only), stage 2 L1 + adversarial.

Stage 1 (PSNR-oriented, ``loss.gan: false``) has no discriminator, so the core runs the G step
alone (as for the VAE) on ``λ_1 ‖G(x_LR) − x_HR‖₁`` (EDSR trains on L1, Lim et al. 2017 Sec. 4.2).

Stage 2 (``loss.gan: true``) starts from a stage-1 run's weights (``model.init_from``) and adds
the PatchGAN through the core's alternating step with ``train.gan_loss``, by default the
relativistic average loss of ESRGAN (Wang et al. 2018, Eqn. 1–2; ``"ragan"``):

    L_G = λ_1 ‖G(x_LR) − x_HR‖₁ + λ_adv L_G^Ra,       L_D = L_D^Ra

``loss.perceptual > 0`` adds ESRGAN's perceptual term, ``λ_p ‖φ(G(x_LR)) − φ(x_HR)‖₁ / 255``, with
φ the offline VGG16 (HED) features of :mod:`translate.train.perceptual` (ESRGAN uses an ImageNet
VGG19, which does not ship offline here). An EMA of G is kept when ``train.ema > 0`` and is what
samples and exports use.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import make_grid

from translate.config import SrConfig, SrModelConfig
from translate.data.sr import SRDataset, collate
from translate.errors import TranslateError
from translate.io.weights import read_state_dict
from translate.modelfile import load_model
from translate.nets.external import ExternalNet, UnsupportedNetwork, from_state_dict
from translate.nets.patchgan import PatchDiscriminator
from translate.nets.sr import SRGenerator
from translate.train.adversarial import d_loss, generator_adv_loss
from translate.train.loop import Task, adam, evaluating, maybe_compile
from translate.train.perceptual import PerceptualLoss, load_perceptual

GRID_IMAGES = 4  # rows in a training sample grid


WEIGHTS_FILES = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")


def is_weights_file(path: str) -> bool:
    """Whether ``model.init_from`` names a weights file (a Real-ESRGAN .pth …), not a run."""
    return Path(path).suffix.lower() in WEIGHTS_FILES


def _check_external(net: ExternalNet, path: str, scale: int) -> ExternalNet:
    if net.task != "sr" or net.scale < 2:
        raise TranslateError(f"model.init_from {path}: a {net.architecture} {net.purpose} model, "
                             "not a super-resolution network")
    if net.scale != scale:
        raise TranslateError(f"model.init_from {path}: a ×{net.scale} {net.architecture} "
                             f"network; the config's model.scale is {scale}")
    return net.train().requires_grad_(True)


def external_generator(path: str, scale: int) -> ExternalNet:
    """The SR network in a weights file people share (any architecture spandrel detects, e.g.
    Real-ESRGAN's RRDBNet), with its weights, to fine-tune: read as tensors only. The file's
    network decides its own shape, so model.nf / n_blocks / block / gc / upsampler /
    image_skip are not read.

    Raises:
        TranslateError: an unreadable or unknown file, not a super-resolution network, or
            another scale than ``model.scale``.
    """
    if not Path(path).exists():
        raise TranslateError(f"model.init_from {path}: no such file (a run fine-tuned from a "
                             "weights file reads it again to resume: keep it there)")
    try:
        net = from_state_dict(read_state_dict(Path(path)))
    except UnsupportedNetwork as e:
        raise TranslateError(f"model.init_from {path}: {e}") from None
    return _check_external(net, path, scale)


def initial_generator(path: str, m: SrModelConfig) -> SRGenerator | ExternalNet:
    """The generator a run starts from with ``model.init_from``: a weights file's network
    (:func:`external_generator`); an imported or fine-tuned model folder's network (a copy,
    fine-tuned again); or a translate SR run's generator (stage 2), which must have the
    config's arguments.

    Raises:
        TranslateError: no model there, a model of another task, other network arguments.
    """
    if is_weights_file(path):
        return external_generator(path, m.scale)
    source = load_model(path, task="sr").networks["G"]
    if isinstance(source, ExternalNet):
        return _check_external(copy.deepcopy(source), path, m.scale)
    G = SRGenerator(m.scale, m.nf, m.n_blocks, image_skip=m.image_skip, upsampler=m.upsampler,
                    block=m.block, gc=m.gc)
    if source.config != G.config:
        raise TranslateError(
            f"model.init_from {path}: its generator {source.config} differs from the "
            f"config's {G.config}"
        )
    G.load_state_dict(source.state_dict())
    return G


class SrTask(Task):
    """SRGenerator (+ PatchGAN in stage 2) trained on pairs made by :class:`SRDataset`."""

    name = "sr"

    def __init__(self, cfg: SrConfig, device: torch.device):
        m, d, t, loss = cfg.model, cfg.data, cfg.train, cfg.loss
        self.device = device
        self.cfg_init_from = m.init_from
        self.dataset = SRDataset(
            d.root, m.scale, d.hr_size, repeat=d.repeat, flip=d.flip, rot90=d.rot90,
            cache=d.cache, blur=d.blur, noise=d.noise, jpeg=d.jpeg,
            degrade_prob=d.degrade_prob, seed=t.seed,
        )
        self.collate_fn = collate
        self.G: SRGenerator | ExternalNet
        if m.init_from:  # stage 2, or fine-tuning a network people have (e.g. Real-ESRGAN)
            self.G = initial_generator(m.init_from, m)
        else:
            self.G = SRGenerator(m.scale, m.nf, m.n_blocks, image_skip=m.image_skip,
                                 upsampler=m.upsampler, block=m.block, gc=m.gc)
        self.G.to(device)
        self.generators = [self.G]
        self.D: PatchDiscriminator | None = None
        self.discriminators: list[nn.Module] = []
        if loss.gan:
            self.D = PatchDiscriminator(3, m.ndf, m.n_layers, norm="none",
                                        spectral_norm=m.spectral_norm).to(device)
            self.discriminators = [self.D]
        # NHWC weights (and inputs, in to_device) with train.channels_last, before the EMA copy.
        self.use_fast_conv(t, *self.generators, *self.discriminators)
        self.use_channels_last(t.channels_last, *self.generators, *self.discriminators)
        self.opt_g = adam(self.G.parameters(), t, device)
        self.opt_d = adam(self.D.parameters(), t, device) if self.D is not None else None
        self.make_schedulers(t)
        self.loss, self.gan_loss = loss, t.gan_loss
        # Fixed, not saved with the run: rebuilt from its weights file on resume.
        self.perceptual: PerceptualLoss | None = None
        if loss.perceptual > 0:
            self.perceptual = load_perceptual(loss.perceptual_weights, loss.perceptual_block)
            self.perceptual.to(device)
        self.make_emas(t.ema, "G")
        # Forward passes may go through torch.compile; state is saved from the plain modules.
        self.f_G = maybe_compile(self.G, t.compile)
        self.f_D = maybe_compile(self.D, t.compile) if self.D is not None else None
        # Fixed sample inputs: item i of epoch 0 (the dataset's own RNG, not the global one).
        grid = [self.dataset.item(i, epoch=0) for i in range(min(GRID_IMAGES, len(self.dataset)))]
        self.grid_lr = torch.stack([g["lr"] for g in grid]).to(device)
        self.grid_hr = torch.stack([g["hr"] for g in grid]).to(device)

    def networks(self) -> dict[str, nn.Module]:
        nets: dict[str, nn.Module] = {"G": self.G}
        if self.D is not None:
            nets["D"] = self.D
        if self.emas:
            nets["G_ema"] = self.emas["G"].model
        return nets

    # ── The core's three calls.

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return self.in_memory_format(super().to_device(batch), "lr", "hr")

    def generate(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.f_G(batch["lr"])  # (B, 3, H, W)

    def discriminator_losses(self, batch, fake) -> dict[str, torch.Tensor]:
        # Real HR → 1, detached SR → 0, relativistic by default (ESRGAN Eqn. 2).
        return {"D": d_loss(self.gan_loss, self.f_D(batch["hr"]), self.f_D(fake))}

    def generator_losses(self, batch, fake) -> dict[str, torch.Tensor]:
        hr = batch["hr"]
        losses = {"l1": self.loss.l1_weight * F.l1_loss(fake.float(), hr.float())}
        if self.perceptual is not None:
            losses["percep"] = self.loss.perceptual * self.perceptual(fake, hr)
        if self.f_D is not None:  # D frozen by the core
            losses["adv"] = self.loss.gan_weight * generator_adv_loss(
                self.gan_loss, self.f_D, fake, hr)
        return losses

    # ── Samples and export.

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        """Rows: bicubic-upscaled LR | SR | HR for fixed training crops."""
        net = self.inference_generator("G")
        with evaluating(net):
            sr = net(self.grid_lr).float().clamp(0, 1)
        up = F.interpolate(self.grid_lr, size=sr.shape[-2:], mode="bicubic",
                           align_corners=False).clamp(0, 1)
        rows = [torch.stack(t) for t in zip(up, sr, self.grid_hr, strict=True)]
        return make_grid(torch.cat(rows), nrow=3, padding=2)

    def export(self) -> tuple[dict[str, nn.Module], dict[str, Any]]:
        external = {}
        if isinstance(self.G, ExternalNet):  # what an imported network's model.json holds
            external = {"tile_multiple": self.G.tile_multiple, "precisions": self.G.precisions,
                        "fine_tuned_from": Path(self.cfg_init_from).name}
        return {"G": self.inference_generator("G")}, {
            "value_range": [0.0, 1.0],
            "scale": self.G.scale,
            "channels": 3,
            "receptive_radius": self.G.receptive_radius,
            **external,
            "ema": bool(self.emas),
            "gan": self.D is not None,
        }
