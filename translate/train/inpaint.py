"""Free-form inpainting on the shared adversarial core.

G is ``InpaintGenerator`` (gated convolutions, DeepFill v2), D an SN-PatchGAN
(``PatchDiscriminator`` with spectral norm) that sees the completed image together with its
mask (4 channels), as DeepFill v2's discriminator does. Per iteration the core's D step trains
D on real (1) versus the detached composited fakes (0); its G step trains G through the frozen
D plus the reconstruction terms of Liu et al. 2018 ("Image Inpainting for Irregular Holes Using
Partial Convolutions", Eqns. 1–2 and the weights of Eqn. 7), on the raw prediction I_out:

    hole   λ_hole  · ‖M ⊙ (I_out − I_gt)‖₁ / N
    valid  λ_valid · ‖(1 − M) ⊙ (I_out − I_gt)‖₁ / N        (N = every element of I_gt)
    adv    λ_adv   · GAN loss of D(composite(I_out), M)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.utils import make_grid

from translate.config import InpaintConfig
from translate.data.inpaint import InpaintDataset
from translate.nets.inpaint import InpaintGenerator, composite
from translate.nets.patchgan import PatchDiscriminator
from translate.train.adversarial import d_loss, generator_adv_loss
from translate.train.loop import Task, adam, evaluating, maybe_compile

GRID_IMAGES = 4  # columns of a training sample grid


class InpaintTask(Task):
    name = "inpaint"

    def __init__(self, cfg: InpaintConfig, device: torch.device):
        m, d, t = cfg.model, cfg.data, cfg.train
        self.device = device
        presets = tuple(p.strip() for p in d.masks.split(","))
        self.dataset = InpaintDataset(d.root, d.crop_size, d.flip, presets, seed=t.seed)
        self.G = InpaintGenerator(m.ngf, m.n_blocks, m.gated, m.n_down, m.norm,
                                  m.prefill).to(device)
        # SN-PatchGAN: spectral norm in place of normalisation layers (Miyato et al. 2018).
        self.D = PatchDiscriminator(4, m.ndf, m.n_layers, "none" if m.spectral_norm else m.norm,
                                    spectral_norm=m.spectral_norm).to(device)
        self.use_fast_conv(t, self.G, self.D)
        self.use_channels_last(t.channels_last, self.G, self.D)
        self.generators = [self.G]
        # Without the adversarial term D cannot affect G: the core then runs the G step alone
        # (D, still saved, keeps its weights for a later run that turns the term back on).
        self.discriminators = [self.D] if cfg.loss.adversarial > 0 else []
        self.opt_g = adam(self.G.parameters(), t, device)
        self.opt_d = adam(self.D.parameters(), t, device)
        self.make_schedulers(t)
        self.loss, self.weights = t.gan_loss, cfg.loss
        self.make_emas(t.ema, "G")
        self.f_fill = maybe_compile(self.G.fill, t.compile)
        self.f_D = maybe_compile(self.D, t.compile)
        grid = [self.dataset.item(i, epoch=0) for i in range(min(GRID_IMAGES, len(self.dataset)))]
        self.grid_image = torch.stack([g["image"] for g in grid]).to(device)
        self.grid_mask = torch.stack([g["mask"] for g in grid]).to(device)

    def networks(self) -> dict[str, nn.Module]:
        nets = {"G": self.G, "D": self.D}
        if self.emas:
            nets["G_ema"] = self.emas["G"].model
        return nets

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return self.in_memory_format(super().to_device(batch), "image")

    # ── The core's three calls.

    def generate(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pred = self.f_fill(batch["image"], batch["mask"])  # raw, every pixel
        return {"pred": pred, "completed": composite(pred, batch["image"], batch["mask"])}

    def _judge(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.f_D(torch.cat([image, mask.to(image.dtype)], dim=1))

    def discriminator_losses(self, batch, fakes) -> dict[str, torch.Tensor]:
        real = self._judge(batch["image"], batch["mask"])
        fake = self._judge(fakes["completed"], batch["mask"])
        return {"D": d_loss(self.loss, real, fake)}

    def generator_losses(self, batch, fakes) -> dict[str, torch.Tensor]:
        image, mask = batch["image"].float(), batch["mask"].float()
        error = (fakes["pred"].float() - image).abs()  # (B, 3, H, W)
        w = self.weights
        losses = {
            "hole": w.hole * (mask * error).mean(),
            "valid": w.valid * ((1 - mask) * error).mean(),
        }
        if w.adversarial > 0:
            losses["adv"] = w.adversarial * generator_adv_loss(
                self.loss, lambda x: self._judge(x, batch["mask"]), fakes["completed"],
                batch["image"])
        return losses

    # ── Samples, export.

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        """Rows: input with holes (grey), completed image, ground truth."""
        net = self.inference_generator("G")
        with evaluating(net):
            completed = net(self.grid_image, self.grid_mask)
        holed = self.grid_image * (1 - self.grid_mask)
        rows = torch.cat([holed, completed.float(), self.grid_image])
        return make_grid((rows + 1) / 2, nrow=len(self.grid_image), padding=2)

    def export(self) -> tuple[dict[str, nn.Module], dict[str, Any]]:
        return {"G": self.inference_generator("G")}, {
            "value_range": [-1.0, 1.0],
            "size_multiple": self.G.size_multiple,
            "channels": 3,
            "mask": "second input (B, 1, H, W), 1 = hole; known pixels are returned unchanged",
            "ema": bool(self.emas),
        }
