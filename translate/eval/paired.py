"""Evaluating a paired translation model (pix2pix) against its ground truth.

Test pairs are two folders matched by relative path without extension
(``translate.data.paired.pair_by_path``; an unmatched file is an error naming it). Each input is
translated at its own size (or a fixed ``size``) by the PyTorch pipeline ``translate infer``
runs, at fp32, and rounded to 8-bit levels (scored as saved). The model translates as it was
trained: model.json's ``trained_direction`` AtoB takes ``--a`` as input and ``--b`` as target,
BtoA the other way round.

Per column (the model; optionally a baseline run, e.g. the same U-Net trained with L1 only;
and the input as is, the score of a model that changes nothing):

* **PSNR / SSIM** (``translate.eval.image_metrics``: RGB, no border crop) and **L1** (mean
  absolute difference, 0–1 scale) of each output against its ground truth, averaged over pairs;
* **FID / KID** (``translate.eval.translation.fid_kid``: ``FID-VGG16`` offline, Inception-v3 FID
  with a local weights file) of the outputs against the real targets.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from translate import console as ui
from translate.data.paired import pair_by_path
from translate.errors import TranslateError
from translate.eval.features import fast_feature_net
from translate.eval.image_metrics import psnr, ssim
from translate.eval.translation import (
    FEATURE_BATCH,
    _describe,
    _load,
    _quantize,
    _uint8_hwc,
    features_in_order,
    fid_kid,
)
from translate.infer import TranslationPipeline
from translate.modelfile import Model
from translate.signals import check as check_stop

RESULT_FILE = "eval_paired.json"
PSNR_CAP = 100.0  # dB for an exact match, so the mean (and the JSON) stays finite


@dataclass
class ColumnScores:
    """One column of the table: the model, a baseline model or the input as is."""

    name: str
    psnr: float  # dB, mean over pairs
    ssim: float
    l1: float  # mean |output − target|, 0–1 scale
    fid: float  # outputs vs the real targets
    kid_mean: float
    kid_std: float


@dataclass
class PairedEval:
    """What ``translate eval`` writes to ``RUN/eval_paired.json``."""

    metric: str  # "FID-VGG16" or "FID"
    features: str
    inputs: str  # the folder translated
    targets: str  # its ground truth
    direction: str  # the model's trained direction
    n: int  # pairs scored
    size: int | None
    device: str
    seconds: float
    columns: dict[str, ColumnScores] = field(default_factory=dict)
    baseline: str | None = None  # the baseline model's folder, if any

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def scored_pairs(inputs: Path, targets: Path, n_max: int | None
               ) -> list[tuple[Path, Path]]:
    """Pairs (input, target) matched by relative path; at least 2.

    Raises:
        TranslateError: a missing folder, unmatched files (named), or fewer than 2 pairs.
    """
    pairing = pair_by_path(inputs, targets)
    unmatched = [p.relative_to(inputs).as_posix() for p in pairing.only_a] + [
        p.relative_to(targets).as_posix() for p in pairing.only_b]
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (f" and {len(unmatched) - 5} more"
                                            if len(unmatched) > 5 else "")
        raise TranslateError(f"{len(unmatched)} test image(s) of {inputs} and {targets} have no "
                             f"partner of the same name: {shown}")
    pairs = pairing.pairs[:n_max] if n_max is not None else pairing.pairs
    if len(pairs) < 2:
        raise TranslateError(f"{inputs} and {targets}: need at least 2 pairs, found {len(pairs)}")
    return pairs


def evaluate_paired(model: Model, dir_a: Path, dir_b: Path, features: nn.Module, metric: str,
                    baseline: Model | None = None, baseline_name: str = "baseline",
                    size: int | None = None, n_max: int | None = None,
                    device: str | torch.device = "cpu", show_progress: bool = True,
                    feature_batch: int = FEATURE_BATCH) -> PairedEval:
    """Translate the test inputs with ``model`` (and ``baseline``) and score every column.

    Args:
        model, baseline: loaded pix2pix models (``baseline`` optional, shown beside).
        dir_a, dir_b: the test folders of domains A and B, paired by relative path.
        features, metric: see :func:`translate.eval.features.feature_extractor`.
        size: resize every image to size×size first; None keeps each image's size.
        n_max: at most the first ``n_max`` pairs (sorted by path).

    Raises:
        TranslateError: bad folders or pairs (see :func:`scored_pairs`), an input and its
            target of different sizes, or scores that are not finite.
    """
    started = time.perf_counter()
    device = torch.device(device)
    direction = model.meta.get("trained_direction", "AtoB")
    inputs, targets = (Path(dir_a), Path(dir_b)) if direction != "BtoA" else (Path(dir_b),
                                                                            Path(dir_a))
    pairs = scored_pairs(inputs, targets, n_max)
    pipes = {"model": TranslationPipeline(model, "a2b", device, precision="fp32")}
    if baseline is not None:
        pipes[baseline_name] = TranslationPipeline(baseline, "a2b", device, precision="fp32")
    columns = [*pipes, "input as is"]
    features = fast_feature_net(features.to(device).eval(), device)
    images: dict[str, list[torch.Tensor]] = {c: [] for c in [*columns, "target"]}
    scores: dict[str, list[tuple[float, float, float]]] = {c: [] for c in columns}
    progress = ui.progress_bar(transient=True)
    with progress if show_progress else contextlib.nullcontext():
        bar = progress.add_task("eval", total=len(pairs), rate="", info="")
        for source, truth in pairs:
            check_stop()  # a stop signal, between pairs
            x, y = _load(source, size), _load(truth, size)
            if x.shape != y.shape:
                raise TranslateError(f"{source} is {x.shape[-1]}×{x.shape[-2]} but its target "
                                     f"{truth} is {y.shape[-1]}×{y.shape[-2]}; give --size to "
                                     "resize both")
            outputs = {name: _quantize(pipe(x)).cpu() for name, pipe in pipes.items()}
            outputs["input as is"] = x
            target = _uint8_hwc(y)
            for name, out in outputs.items():
                image = _uint8_hwc(out)
                l1 = float(np.abs(image.astype(np.float64) - target).mean() / 255)
                scores[name].append((min(psnr(image, target), PSNR_CAP), ssim(image, target), l1))
                images[name].append(out)
            images["target"].append(y)
            progress.update(bar, advance=1, info=source.name)
    feats = {name: torch.stack(features_in_order(features, imgs, device, feature_batch))
             for name, imgs in images.items()}
    result = PairedEval(metric=metric, features=_describe(features, metric), inputs=str(inputs),
                        targets=str(targets), direction=direction, n=len(pairs), size=size,
                        device=str(device), seconds=0.0,
                        baseline=str(baseline.path) if baseline is not None else None)
    for name in columns:
        fid, kid_mean, kid_std = fid_kid(feats["target"], feats[name])
        p, s, l1 = (float(np.mean(v)) for v in zip(*scores[name], strict=True))
        result.columns[name] = ColumnScores(name, p, s, l1, fid, kid_mean, kid_std)
    for column in result.columns.values():
        for key, value in asdict(column).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise TranslateError(f"{column.name} {key} is {value}: the outputs or the "
                                     "features are not finite")
    result.seconds = time.perf_counter() - started
    return result


def paired_rows(result: PairedEval) -> list[list[str]]:
    """[metric, one value per column] rows of the terminal table."""
    cols = list(result.columns.values())
    m = result.metric
    return [
        ["PSNR (dB)", *(f"{c.psnr:.2f}" for c in cols)],
        ["SSIM", *(f"{c.ssim:.4f}" for c in cols)],
        ["L1 (0–1)", *(f"{c.l1:.4f}" for c in cols)],
        [m, *(f"{c.fid:.2f}" for c in cols)],
        ["KID × 10³", *(f"{1e3 * c.kid_mean:.2f} ± {1e3 * c.kid_std:.2f}" for c in cols)],
    ]


def print_paired_table(result: PairedEval, title: str) -> None:
    """The rich table ``translate eval`` prints for a pix2pix model."""
    from rich.table import Table

    table = Table(title=title, caption=(
        f"{result.n} pairs {result.inputs} → {result.targets}; PSNR, SSIM, L1 against the ground "
        f"truth, {result.metric} and KID against the real targets"))
    table.add_column("metric")
    for name in result.columns:
        table.add_column(name, justify="right")
    for row in paired_rows(result):
        table.add_row(*row)
    ui.console.print(table)
