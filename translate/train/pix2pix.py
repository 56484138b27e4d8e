"""pix2pix (Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks",
CVPR 2017) on the shared adversarial core: paired A → B.

G is the U-Net (``nets.unet``), D a conditional PatchGAN that sees the input together with an
output, (A, B) real or (A, G(A)) fake, concatenated to 6 channels (Sec. 2.1: "both the
generator and discriminator observe the input edge map"). Per iteration the core's D step
trains D on real (1) versus the detached fake (0), halved as the reference does; its G step
trains G through the frozen D with the fake labelled 1, plus the L1 term:

    G* = arg min_G max_D  L_cGAN(G, D) + λ L_L1(G),   L_L1 = ‖B − G(A)‖₁          (Eqn. 4, 3)

λ = ``loss.l1`` (100); the GAN term is weighted by ``loss.adversarial`` (1); at 0 there is no
D step at all and G learns from L1 alone (the paper's "L1" baseline, Table 1). The GAN loss is
``train.gan_loss`` (the reference's "vanilla" is ``bce`` on logits). Dropout in G is pix2pix's
only noise (Sec. 3.2) and draws from the global RNG, which checkpoints capture.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.utils import make_grid

from translate.config import Pix2PixConfig
from translate.data.paired import PairedDataset
from translate.nets.patchgan import PatchDiscriminator
from translate.nets.unet import unet
from translate.train.adversarial import d_loss, generator_adv_loss
from translate.train.loop import Task, adam, evaluating, maybe_compile

GRID_IMAGES = 4  # rows of a training sample grid


class Pix2PixTask(Task):
    name = "pix2pix"

    def __init__(self, cfg: Pix2PixConfig, device: torch.device):
        m, d, t = cfg.model, cfg.data, cfg.train
        self.device = device
        self.direction = d.direction
        self.dataset = PairedDataset(d.root, "train", direction=d.direction,
                                     load_size=d.load_size, crop_size=d.crop_size, flip=d.flip,
                                     seed=t.seed, layout=d.layout)
        self.G = unet(m.net, 3, 3, m.ngf, m.norm, m.dropout).to(device)
        self.D = PatchDiscriminator(6, m.ndf, m.n_layers, m.norm).to(device)  # (A, B): 6 ch
        self.use_fast_conv(t, self.G, self.D)  # its precision; it has no convs to convert
        self.use_channels_last(t.channels_last, self.G, self.D)
        self.generators = [self.G]
        # Without the adversarial term D cannot affect G: the core runs the G step alone (D is
        # still saved, so a run resumed with the term back on continues it).
        self.discriminators = [self.D] if cfg.loss.adversarial > 0 else []
        self.opt_g = adam(self.G.parameters(), t, device)
        self.opt_d = adam(self.D.parameters(), t, device)
        self.make_schedulers(t)
        self.loss, self.weights = t.gan_loss, cfg.loss
        self.make_emas(t.ema, "G")
        # Forward passes may go through torch.compile; state is saved from the plain modules.
        self.f_G, self.f_D = maybe_compile(self.G, t.compile), maybe_compile(self.D, t.compile)
        grid = [self.dataset.item(i, epoch=0, augment=False)
                for i in range(min(GRID_IMAGES, len(self.dataset)))]
        self.grid_A = torch.stack([g["A"] for g in grid]).to(device)
        self.grid_B = torch.stack([g["B"] for g in grid]).to(device)

    def networks(self) -> dict[str, nn.Module]:
        nets = {"G": self.G, "D": self.D}
        if self.emas:
            nets["G_ema"] = self.emas["G"].model
        return nets

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return self.in_memory_format(super().to_device(batch), "A", "B")

    # ── The core's three calls.

    def generate(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.f_G(batch["A"])  # (B, 3, H, W) in [-1, 1]

    def judge(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """D's logits for the pair (a, b): the condition and an output, (B, 6, H, W) in."""
        return self.f_D(torch.cat([a, b.to(a.dtype)], dim=1))

    def discriminator_losses(self, batch, fake) -> dict[str, torch.Tensor]:
        # Real pair (A, B) → 1, fake pair (A, G(A)) → 0; halved as the reference (D learns more
        # slowly than G).
        a = batch["A"]
        return {"D": 0.5 * d_loss(self.loss, self.judge(a, batch["B"]), self.judge(a, fake))}

    def generator_losses(self, batch, fake) -> dict[str, torch.Tensor]:
        a, b = batch["A"], batch["B"]
        w = self.weights
        losses = {"l1": w.l1 * F.l1_loss(fake.float(), b.float())}  # λ ‖B − G(A)‖₁ (Eqn. 3)
        if w.adversarial > 0:  # D frozen by the core; the fake pair labelled 1
            losses["adv"] = w.adversarial * generator_adv_loss(
                self.loss, lambda x: self.judge(a, x), fake, b)
        return losses

    # ── Samples, export.

    def inference_generators(self) -> dict[str, nn.Module]:
        return {"G": self.inference_generator("G")}

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        """Rows: input A | G(A) | target B for fixed training pairs (resized, not cropped)."""
        net = self.inference_generator("G")
        with evaluating(net):
            fake = net(self.grid_A).float()
        rows = [torch.stack(t) for t in zip(self.grid_A, fake, self.grid_B, strict=True)]
        return make_grid((torch.cat(rows) + 1) / 2, nrow=3, padding=2)

    def export(self) -> tuple[dict[str, nn.Module], dict[str, Any]]:
        return self.inference_generators(), {
            "value_range": [-1.0, 1.0],
            "size_multiple": self.G.size_multiple,
            "padding": "mirror",  # infer.wrap.padding: pads longer than small images
            "channels": 3,
            "trained_direction": self.direction,  # which folder was the input: AtoB or BtoA
            "ema": bool(self.emas),
        }
