"""CycleGAN (Zhu et al. 2017) on the shared adversarial core: unpaired A ↔ B.

Two generators, G_AB: A → B and G_BA: B → A (ResnetGenerator, or a U-Net: model.net), and two
PatchGAN discriminators, D_A judging domain A and D_B judging domain B. Per iteration, the core's D
step trains D_A and D_B on real (1) versus pooled, detached fakes (0), halved as in the paper; its
G step trains both generators through the frozen discriminators with fakes labelled 1, plus

    cycle     λ_A ‖G_BA(G_AB(a)) − a‖₁ + λ_B ‖G_AB(G_BA(b)) − b‖₁            (Eqn. 2)
    identity  λ_idt (λ_B ‖G_AB(b) − b‖₁ + λ_A ‖G_BA(a) − a‖₁)                (Sec. 5.2)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.utils import make_grid

from translate.config import CycleGanConfig
from translate.data.unaligned import UnalignedDataset
from translate.nets.patchgan import PatchDiscriminator
from translate.nets.resnet import ResnetGenerator
from translate.nets.unet import unet
from translate.train.adversarial import d_loss, generator_adv_loss
from translate.train.loop import Task, adam, evaluating, maybe_compile

GRID_IMAGES = 3  # per domain in a training sample grid


class ImagePool:
    """A history of generated images (Shrivastava et al. 2017), as CycleGAN uses for D.

    Until full, every fake is stored and returned; then each fake is, with probability ½, swapped
    for a random stored one (which is returned instead). Draws from the global torch RNG, which
    checkpoints capture, and its contents go into the checkpoint, so resume stays exact.
    """

    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand(())) < 0.5:
                i = int(torch.randint(len(self.images), ()))
                out.append(self.images[i].clone())
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self) -> dict[str, Any]:
        return {"images": [t.cpu() for t in self.images]}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.images = [t.to(device) for t in state.get("images", [])]


def generator(m: Any) -> nn.Module:
    """One generator as ``model`` (a CycleGanModelConfig) says: the ResNet, or a U-Net without
    dropout (as the reference's CycleGAN runs its U-Nets)."""
    if m.net == "resnet":
        return ResnetGenerator(3, 3, m.ngf, m.n_blocks, m.norm, m.upsample)
    return unet(m.net, 3, 3, m.ngf, m.norm, dropout=False, upsample=m.upsample,
                input_skip=m.input_skip)


class CycleGanTask(Task):
    name = "cyclegan"

    def __init__(self, cfg: CycleGanConfig, device: torch.device):
        m, d, t, loss = cfg.model, cfg.data, cfg.train, cfg.loss
        self.device = device
        self.dataset = UnalignedDataset(d.root, "train", load_size=d.load_size,
                                        crop_size=d.crop_size, flip=d.flip, seed=t.seed)
        self.G_AB, self.G_BA = (generator(m).to(device) for _ in range(2))
        self.unet = m.net != "resnet"
        self.D_A = PatchDiscriminator(3, m.ndf, m.n_layers, m.norm).to(device)
        self.D_B = PatchDiscriminator(3, m.ndf, m.n_layers, m.norm).to(device)
        self.use_fast_conv(t, self.G_AB, self.G_BA, self.D_A, self.D_B)
        self.use_channels_last(t.channels_last, self.G_AB, self.G_BA, self.D_A, self.D_B)
        self.generators, self.discriminators = [self.G_AB, self.G_BA], [self.D_A, self.D_B]
        self.opt_g = adam([*self.G_AB.parameters(), *self.G_BA.parameters()], t, device)
        self.opt_d = adam([*self.D_A.parameters(), *self.D_B.parameters()], t, device)
        self.make_schedulers(t)
        self.loss, self.weights = t.gan_loss, loss
        self.pool_A, self.pool_B = ImagePool(loss.pool_size), ImagePool(loss.pool_size)
        self.make_emas(t.ema, "G_AB", "G_BA")
        # Forward passes may go through torch.compile; state is saved from the plain modules.
        self.f_G_AB, self.f_G_BA, self.f_D_A, self.f_D_B = (
            maybe_compile(net, t.compile) for net in (self.G_AB, self.G_BA, self.D_A, self.D_B))
        grid = [self.dataset.item(i, epoch=0, augment=False)
                for i in range(min(GRID_IMAGES, len(self.dataset)))]
        self.grid_A = torch.stack([g["A"] for g in grid]).to(device)
        self.grid_B = torch.stack([g["B"] for g in grid]).to(device)

    def networks(self) -> dict[str, nn.Module]:
        nets = {"G_AB": self.G_AB, "G_BA": self.G_BA, "D_A": self.D_A, "D_B": self.D_B}
        nets |= {f"{name}_ema": ema.model for name, ema in self.emas.items()}
        return nets

    def to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return self.in_memory_format(super().to_device(batch), "A", "B")

    # ── The core's three calls.

    def generate(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"fake_B": self.f_G_AB(batch["A"]), "fake_A": self.f_G_BA(batch["B"])}

    def discriminator_losses(self, batch, fakes) -> dict[str, torch.Tensor]:
        fake_A = self.pool_A.query(fakes["fake_A"])
        fake_B = self.pool_B.query(fakes["fake_B"])
        # Halved so D learns more slowly than G, as in the paper (Sec. 7.1).
        return {
            "D_A": 0.5 * d_loss(self.loss, self.f_D_A(batch["A"]), self.f_D_A(fake_A)),
            "D_B": 0.5 * d_loss(self.loss, self.f_D_B(batch["B"]), self.f_D_B(fake_B)),
        }

    def generator_losses(self, batch, fakes) -> dict[str, torch.Tensor]:
        real_A, real_B = batch["A"], batch["B"]
        fake_A, fake_B = fakes["fake_A"], fakes["fake_B"]
        w = self.weights
        losses = {
            "G_AB": generator_adv_loss(self.loss, self.f_D_B, fake_B, real_B),  # fakes → 1
            "G_BA": generator_adv_loss(self.loss, self.f_D_A, fake_A, real_A),
            "cycle_A": w.lambda_a * F.l1_loss(self.f_G_BA(fake_B).float(), real_A.float()),
            "cycle_B": w.lambda_b * F.l1_loss(self.f_G_AB(fake_A).float(), real_B.float()),
        }
        if w.lambda_identity > 0:
            idt_a, idt_b = self.f_G_BA(real_A).float(), self.f_G_AB(real_B).float()
            losses["idt_A"] = w.lambda_identity * w.lambda_a * F.l1_loss(idt_a, real_A.float())
            losses["idt_B"] = w.lambda_identity * w.lambda_b * F.l1_loss(idt_b, real_B.float())
        return losses

    # ── State, samples, export.

    def extra_state(self) -> dict[str, Any]:
        return {"pool_A": self.pool_A.state_dict(), "pool_B": self.pool_B.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.pool_A.load_state_dict(state.get("pool_A", {}), self.device)
        self.pool_B.load_state_dict(state.get("pool_B", {}), self.device)

    def inference_generators(self) -> dict[str, nn.Module]:
        """The EMA generators where kept, else the trained ones."""
        return {name: self.inference_generator(name) for name in ("G_AB", "G_BA")}

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        """Rows: A → G_AB(A) → G_BA(G_AB(A)), then B → G_BA(B) → G_AB(G_BA(B))."""
        nets = self.inference_generators()
        with evaluating(*nets.values()):
            ab = nets["G_AB"](self.grid_A)
            ba = nets["G_BA"](self.grid_B)
            aba, bab = nets["G_BA"](ab), nets["G_AB"](ba)
        rows = [torch.stack(t) for t in zip(self.grid_A, ab, aba, strict=True)]
        rows += [torch.stack(t) for t in zip(self.grid_B, ba, bab, strict=True)]
        return make_grid((torch.cat(rows).float() + 1) / 2, nrow=3, padding=2)

    def export(self) -> tuple[dict[str, nn.Module], dict[str, Any]]:
        return self.inference_generators(), {
            "value_range": [-1.0, 1.0],
            "directions": {"a2b": "G_AB", "b2a": "G_BA"},
            "size_multiple": self.G_AB.size_multiple if self.unet else 4,
            **({"padding": "mirror"} if self.unet else {}),  # U-Net multiples: up to 256
            "channels": 3,
            "ema": bool(self.emas),
        }
