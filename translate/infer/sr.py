"""Super-resolution inference: a pipeline object for ``translate.infer.folder.run_folder``.

``SRPipeline(x)`` takes (B, 3, h, w) floats in [0, 1] on the CPU and returns
(B, 3, round(F·h), round(F·w)) in [0, 1] on the CPU, ``F`` = ``outscale`` (default: the model's
scale). With ``tile=N`` the image goes through the network in N×N LR tiles that overlap by
``tile_overlap`` pixels: only one tile is on the device at a time, and the outputs are blended
with linear ramp weights across the middle half of each overlap, so no seam shows and the
result matches the whole-image output (to within 1/255 once the overlap covers about twice the
network's receptive radius, ``model.json``'s ``receptive_radius``). Alpha, grayscale and
16-bit handling is the folder runner's (``translate.infer.folder``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from translate.errors import TranslateError
from translate.infer.wrap import PadCrop, size_multiple, value_range
from translate.modelfile import Model
from translate.runtime import Precision


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``length`` with at least ``overlap``.

    The stride is ``tile - overlap``; the last tile is moved back to end at ``length`` (it then
    overlaps its neighbour by more). One tile when ``length <= tile``.
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def ramp(size: int, ramp_in: int, ramp_out: int) -> torch.Tensor:
    """1-D blending weights of a tile: 1 inside, linear ramps across the overlaps.

    Across an overlap of ``n`` samples the weight is ~0 on the quarter next to the tile's edge
    (where the tile's own border padding, not the neighbouring image, shaped the output), rises
    linearly over the middle half and is 1 on the inner quarter. The neighbour's ramp mirrors it,
    so the two weights sum to 1. A floor of 1e-6 keeps every pixel's weight positive.
    """
    w = torch.ones(size)
    for n, side in ((ramp_in, slice(0, ramp_in)), (ramp_out, slice(size - ramp_out, size))):
        if n:
            rise = ((torch.arange(n) + 0.5 - n / 4) / (n / 2)).clamp(1e-6, 1.0)
            w[side] = torch.minimum(w[side], rise if side.start == 0 else rise.flip(0))
    return w


def _tile_ramps(starts: list[int], tile: int, scale: int) -> list[torch.Tensor]:
    """Each tile's 1-D output weights along one axis (:func:`ramp`): ramps only on sides that
    have a neighbour, as wide as the overlap with it actually is."""
    weights = []
    for i, start in enumerate(starts):
        before = (starts[i - 1] + tile - start) * scale if i > 0 else 0
        after = (start + tile - starts[i + 1]) * scale if i + 1 < len(starts) else 0
        weights.append(ramp(tile * scale, before, after))
    return weights


class SRPipeline:
    """An SR generator applied to whole images or to overlapping tiles.

    Args:
        model: a loaded ``sr`` model (``translate.modelfile.load_model``).
        device: where the network runs; inputs and outputs stay on the CPU.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (autocast).
        tile: LR tile side; 0 = the whole image at once.
        tile_overlap: LR pixels shared by neighbouring tiles (blended); default twice the
            model's ``receptive_radius`` (model.json), 16 if it has none.
        outscale: final size factor; differing from the model's scale, the output is resized
            (bicubic, antialiased when shrinking) to ``round(outscale · size)``.

    Raises:
        TranslateError: not an SR model, ``outscale <= 0``, a negative tile or overlap, or
            ``tile <= tile_overlap``.
    """

    def __init__(self, model: Model, device: str | torch.device = "cpu", precision: str = "auto",
                 tile: int = 0, tile_overlap: int | None = None,
                 outscale: float | None = None):
        if model.task != "sr":
            raise TranslateError(f"{model.path} holds a '{model.task}' model, not a "
                                 "super-resolution (sr) model")
        self.scale = int(model.meta["scale"])
        if tile_overlap is None:
            tile_overlap = 2 * int(model.meta.get("receptive_radius", 8))
        if outscale is not None and not outscale > 0:
            raise TranslateError(f"--outscale must be > 0, got {outscale}")
        if tile < 0 or tile_overlap < 0:
            raise TranslateError(f"--tile and --tile-overlap must be >= 0, got {tile} and "
                                 f"{tile_overlap}")
        if tile and tile <= tile_overlap:
            raise TranslateError(f"--tile {tile} must be larger than --tile-overlap "
                                 f"{tile_overlap}")
        self.outscale = float(outscale) if outscale is not None else float(self.scale)
        self.tile, self.overlap = tile, tile_overlap
        self.device = torch.device(device)
        self.net = model.networks["generator"].to(self.device).eval()
        self.precision = Precision(precision, self.device)
        self.wrapped = PadCrop(self.net, size_multiple(self.net, model.meta), self.scale,
                               value_range(model))

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 3, h, w) on the CPU -> (B, 3, s h, s w) float32 on the CPU, not clamped.
        with self.precision.autocast():
            y = self.wrapped(x.to(self.device, non_blocking=True))
        return y.cpu()

    def _tiled(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s, t, m = self.scale, self.tile, self.overlap
        out = torch.zeros(b, c, h * s, w * s)
        weight = torch.zeros(1, 1, h * s, w * s)
        th, tw = min(t, h), min(t, w)
        ys, xs = tile_starts(h, t, m), tile_starts(w, t, m)
        for y0, wy in zip(ys, _tile_ramps(ys, th, s), strict=True):
            for x0, wx in zip(xs, _tile_ramps(xs, tw, s), strict=True):
                wt = wy[:, None] * wx[None, :]  # (th s, tw s)
                y = self._run(x[..., y0 : y0 + th, x0 : x0 + tw])
                out[..., y0 * s : (y0 + th) * s, x0 * s : (x0 + tw) * s] += y * wt
                weight[..., y0 * s : (y0 + th) * s, x0 * s : (x0 + tw) * s] += wt
        return out / weight

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) in [0, 1] → (B, 3, round(F h), round(F w)) in [0, 1], on the CPU."""
        x = x.float().cpu()
        h, w = x.shape[-2:]
        if self.tile and min(h, w) < self.overlap:
            # Tiles cannot overlap by more than the image has; refused rather than guessed.
            raise ValueError(f"the image ({w}x{h}) is smaller than --tile-overlap {self.overlap}")
        if self.tile and (h > self.tile or w > self.tile):
            y = self._tiled(x)
        else:
            y = self._run(x)
        if self.outscale != self.scale:
            size = (max(1, round(h * self.outscale)), max(1, round(w * self.outscale)))
            shrink = self.outscale < self.scale
            y = F.interpolate(y, size=size, mode="bicubic", align_corners=False, antialias=shrink)
        return y.clamp_(0, 1)
