"""Super-resolution on the shared core: stage 1 L1 (G step only), stage 2 L1 + adversarial.

Stage 1 (PSNR-oriented, ``loss.gan: false``) has no discriminator, so the core runs the G step
alone (as for the VAE) on ``λ_1 ‖G(x_LR) − x_HR‖₁`` (EDSR trains on L1, Lim et al. 2017 Sec. 4.2).

Stage 2 (``loss.gan: true``) starts from a stage-1 run's weights (``model.init_from``) and adds
the PatchGAN through the core's alternating step with the relativistic average loss of ESRGAN
(Wang et al. 2018, Eqn. 1–2; ``d_loss``/``g_loss`` ``"ragan"``):

    L_G = λ_1 ‖G(x_LR) − x_HR‖₁ + λ_adv L_G^Ra,       L_D = L_D^Ra

ESRGAN also has a perceptual (VGG19 feature) term; no ImageNet VGG ships offline here, so it is
left out. An EMA of G is kept when ``train.ema > 0`` and is what samples and exports use.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import make_grid

from translate.config import SrConfig
from translate.data.sr import SRDataset, collate
from translate.errors import TranslateError
from translate.modelfile import load_model
from translate.nets.patchgan import PatchDiscriminator
from translate.nets.sr import SRGenerator
from translate.train.adversarial import adversarial_step, d_loss, g_loss
from translate.train.cyclegan import Ema
from translate.train.loop import Task, adam, linear_decay

GRID_IMAGES = 4  # rows in a training sample grid


def load_initial_generator(path: str, G: SRGenerator) -> None:
    """Copy the generator weights of an SR run (``model.safetensors``) into ``G`` (stage 2).

    Raises:
        TranslateError: no model there, a model of another task, or other network arguments.
    """
    model = load_model(path, task="sr")
    source = model.networks["generator"]
    if source.config != G.config:
        raise TranslateError(
            f"model.init_from {path}: its generator {source.config} differs from the "
            f"config's {G.config}"
        )
    G.load_state_dict(source.state_dict())


class SrTask(Task):
    """SRGenerator (+ PatchGAN in stage 2) trained on pairs made by :class:`SRDataset`."""

    name = "sr"

    def __init__(self, cfg: SrConfig, device: torch.device):
        m, d, t, loss = cfg.model, cfg.data, cfg.train, cfg.loss
        self.device = device
        self.dataset = SRDataset(
            d.root, m.scale, d.hr_size, repeat=d.repeat, flip=d.flip, rot90=d.rot90,
            cache=d.cache, blur=d.blur, noise=d.noise, jpeg=d.jpeg,
            degrade_prob=d.degrade_prob, seed=t.seed,
        )
        self.collate_fn = collate
        self.G = SRGenerator(m.scale, m.nf, m.n_blocks, image_skip=m.image_skip,
                             upsampler=m.upsampler, block=m.block, gc=m.gc)
        if m.init_from:
            load_initial_generator(m.init_from, self.G)
        self.G.to(device)
        self.generators = [self.G]
        self.opt_g = adam(self.G.parameters(), t, device)
        self.D: PatchDiscriminator | None = None
        self.discriminators: list[nn.Module] = []
        self.opt_d = None
        if loss.gan:
            self.D = PatchDiscriminator(3, m.ndf, m.n_layers, norm="none",
                                        spectral_norm=m.spectral_norm).to(device)
            self.discriminators = [self.D]
            self.opt_d = adam(self.D.parameters(), t, device)
        self.schedulers = {}
        if t.epochs:
            self.schedulers = {"opt_g": linear_decay(self.opt_g, t.epochs, t.epochs_decay)}
            if self.opt_d is not None:
                self.schedulers["opt_d"] = linear_decay(self.opt_d, t.epochs, t.epochs_decay)
        self.loss = loss
        self.ema = Ema(self.G, t.ema) if t.ema else None
        # Fixed sample inputs: item i of epoch 0 (the dataset's own RNG, not the global one).
        grid = [self.dataset.item(i, epoch=0) for i in range(min(GRID_IMAGES, len(self.dataset)))]
        self.grid_lr = torch.stack([g["lr"] for g in grid]).to(device)
        self.grid_hr = torch.stack([g["hr"] for g in grid]).to(device)

    def networks(self) -> dict[str, nn.Module]:
        nets: dict[str, nn.Module] = {"generator": self.G}
        if self.D is not None:
            nets["discriminator"] = self.D
        if self.ema is not None:
            nets["generator_ema"] = self.ema.model
        return nets

    # ── The core's three calls.

    def generate(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.G(batch["lr"])  # (B, 3, H, W)

    def discriminator_losses(self, batch, fake) -> dict[str, torch.Tensor]:
        # Real HR → 1, detached SR → 0, relativistic by default (ESRGAN Eqn. 2).
        return {"D": d_loss(self.loss.gan_loss, self.D(batch["hr"]), self.D(fake))}

    def generator_losses(self, batch, fake) -> dict[str, torch.Tensor]:
        hr = batch["hr"]
        losses = {"l1": self.loss.l1_weight * F.l1_loss(fake.float(), hr.float())}
        if self.D is not None:
            # D frozen by the core; the relativistic G loss also needs D's view of real images.
            real_logits = self.D(hr) if self.loss.gan_loss == "ragan" else None
            losses["adv"] = self.loss.gan_weight * g_loss(
                self.loss.gan_loss, self.D(fake), real_logits
            )
        return losses

    def train_step(self, batch, precision) -> dict[str, float]:
        logs = adversarial_step(self, batch, precision)
        if self.ema is not None:
            self.ema.update(self.G)
        return logs

    # ── Samples and export.

    def inference_generator(self) -> nn.Module:
        """The EMA generator where kept, else the trained one."""
        return self.ema.model if self.ema is not None else self.G

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        """Rows: bicubic-upscaled LR | SR | HR for fixed training crops."""
        net = self.inference_generator()
        was = net.training
        net.eval()
        try:
            sr = net(self.grid_lr).float().clamp(0, 1)
        finally:
            net.train(was)
        up = F.interpolate(self.grid_lr, size=sr.shape[-2:], mode="bicubic",
                           align_corners=False).clamp(0, 1)
        rows = [torch.stack(t) for t in zip(up, sr, self.grid_hr, strict=True)]
        return make_grid(torch.cat(rows), nrow=3, padding=2)

    def export(self) -> tuple[dict[str, nn.Module], dict[str, Any]]:
        G = self.inference_generator()
        return {"generator": G}, {
            "value_range": [0.0, 1.0],
            "scale": self.G.scale,
            "channels": 3,
            "receptive_radius": self.G.receptive_radius,
            "ema": self.ema is not None,
            "gan": self.D is not None,
        }
