"""Super-resolution inference: a pipeline object for ``translate.infer.folder.run_folder``.

``SRPipeline(x)`` takes (B, 3, h, w) floats in [0, 1] on the CPU and returns
(B, 3, round(F·h), round(F·w)) in [0, 1] on the CPU, ``F`` = ``outscale`` (default: the model's
scale); ``SRPipeline.pixels(x, bit_depth)`` returns the same as (B, H, W, 3) ``uint8`` /
``uint16`` pixels (what the folder runner writes), made without any full-size float copy.

Memory is bounded by ``max_memory`` (default: half the memory available when the pipeline is
made, ``translate.infer.memory``). Before a batch runs, :meth:`SRPipeline.plan` estimates what
it needs: the network's activations (measured once on the ``meta`` device, per LR pixel, times
``memory.SAFETY``), the decoded input, the result and the float rows being blended. With
``tile=None`` (automatic) the whole image runs at once when that fits, else the largest LR tile
that does; ``tile=0`` forces the whole image and ``tile=N`` tiles of N, and either is refused
(``ValueError``: a failure of that file, naming the estimate and the budget) when it does not
fit, rather than left to the kernel's OOM killer.

Tiles overlap by ``tile_overlap`` LR pixels and are blended with linear ramp weights across the
middle half of each overlap, so no seam shows and the result matches the whole-image output (to
within 1/255 once the overlap covers about twice the network's receptive radius, ``model.json``'s
``receptive_radius``). They are assembled one tile row at a time: a float band as tall as a tile
collects the weighted tiles of a row; the rows no later tile touches are normalised (the weights
are separable, so their sum is a product of two 1-D sums) and handed on, and only the rows the
next tile row overlaps are carried over. ``pixels`` quantises finished rows straight into the
preallocated integer result; with ``outscale`` it resizes them as they come (:class:`_RowResize`,
PyTorch's bicubic weights). Alpha, grayscale and 16-bit handling is the folder runner's
(``translate.infer.folder``).

A large image is not one unit of work: inside a ``translate.signals.StopSignals`` block (the
folder runner's, a command's) SIGINT/SIGTERM are acted on before each tile
(``translate.signals.Stopped`` is raised; the image is dropped, never half-written), and
``on_tile(done, total)`` reports each tile done, so progress moves within one image. An image
run whole is one forward pass: a stop waits for it to end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from translate.errors import TranslateError
from translate.infer.memory import SAFETY, default_budget, format_bytes, forward_bytes
from translate.infer.wrap import PadCrop, model_precision, size_multiple, value_range
from translate.modelfile import Model
from translate.perf import MMAP_THRESHOLDS, retain_blocks_below
from translate.signals import check as check_stop

CALIBRATION = 96  # LR side of the meta-device forward that measures activations per pixel
CHUNK = 64  # output rows quantised (or resized) at a time
# Share of the budget the folder runner may fill with results waiting to be encoded; their
# encoders' copies take as much again, so a batch plans with the rest.
PENDING_SHARE = 8
# The largest block the tuned allocator keeps for reuse: this share of the budget.
RETAIN_SHARE = 8
# Smaller tiles whose tensors the allocator keeps, where they recompute at most this much more.
KEPT_EXTRA_WORK = 1.05


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


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


def tile_layout(length: int, tile: int, overlap: int, align: int = 1
                ) -> tuple[list[int], list[int]]:
    """Start offsets and sizes of the tiles covering ``length`` (at least ``overlap`` shared).

    ``align`` 1: :func:`tile_starts`, every tile of side ``tile``. Otherwise every start is a
    multiple of ``align`` (``tile`` and ``overlap`` are multiples too) and the last tile runs to
    the end, up to ``align - 1`` longer than ``tile``: a window-attention or downsampling network
    then sees in every tile the windows, and at the image's end the padding, that it sees in
    the whole image.
    """
    if length <= tile:
        return [0], [length]
    if align == 1:
        starts = tile_starts(length, tile, overlap)
        return starts, [tile] * len(starts)
    starts = list(range(0, length - tile, tile - overlap))
    last = (length - tile) // align * align
    if last > starts[-1]:
        starts.append(last)
    return starts, [tile] * (len(starts) - 1) + [length - starts[-1]]


def _tile_ramps(starts: list[int], sizes: int | list[int], scale: int) -> list[torch.Tensor]:
    """Each tile's 1-D output weights along one axis (:func:`ramp`): ramps only on sides that
    have a neighbour, as wide as the overlap with it actually is. ``sizes``: each tile's side
    (one int: all alike)."""
    sizes = [sizes] * len(starts) if isinstance(sizes, int) else sizes
    weights = []
    for i, (start, size) in enumerate(zip(starts, sizes, strict=True)):
        before = (starts[i - 1] + sizes[i - 1] - start) * scale if i > 0 else 0
        after = (start + size - starts[i + 1]) * scale if i + 1 < len(starts) else 0
        weights.append(ramp(size * scale, before, after))
    return weights


def _weight_sum(starts: list[int], ramps: list[torch.Tensor], length: int,
                scale: int) -> torch.Tensor:
    """Sum of the tiles' 1-D weights at every output position along one axis."""
    total = torch.zeros(length * scale)
    for start, w in zip(starts, ramps, strict=True):
        total[start * scale : start * scale + len(w)] += w
    return total


def resize_taps(n_in: int, n_out: int, antialias: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch's 1-D bicubic resampling (``F.interpolate(mode="bicubic", align_corners=False)``)
    as taps: output ``i`` = Σ_k ``weights[i, k]`` · input[``index[i, k]``].

    Without ``antialias``: Keys' cubic with a = -0.75 at ``scale·(i + 0.5) - 0.5``, edge pixels
    repeated. With it (PIL's filter, as PyTorch's ``antialias=True``): a = -0.5, the support
    widened by the shrink factor, weights normalised; taps past the edge are dropped.
    """
    scale = n_in / n_out
    i = np.arange(n_out, dtype=np.float64)
    if not antialias:
        a = -0.75
        src = scale * (i + 0.5) - 0.5
        first = np.floor(src)
        t = (src - first)[:, None]
        d = np.abs(np.array([-1.0, 0.0, 1.0, 2.0])[None, :] - t)  # distances to the 4 taps
        inner = ((a + 2) * d - (a + 3)) * d * d + 1
        outer = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
        weights = np.where(d < 1, inner, outer)
        index = np.clip(first[:, None].astype(np.int64) + np.arange(-1, 3), 0, n_in - 1)
        return torch.from_numpy(index), torch.from_numpy(weights.astype(np.float32))
    a = -0.5
    support = 2.0 * scale if scale >= 1.0 else 2.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    center = scale * (i + 0.5)
    lo = np.maximum((center - support + 0.5).astype(np.int64), 0)
    hi = np.minimum((center + support + 0.5).astype(np.int64), n_in)
    k = int((hi - lo).max())
    index = lo[:, None] + np.arange(k)[None, :]
    d = np.abs((index - center[:, None] + 0.5) * invscale)
    weights = np.where(d < 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                       np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))
    weights = np.where(index < hi[:, None], weights, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    weights = weights / np.where(total == 0, 1.0, total)
    return (torch.from_numpy(np.minimum(index, n_in - 1)),
            torch.from_numpy(weights.astype(np.float32)))


class _RowResize:
    """Bicubic resize of an image that arrives as bands of rows, in order, without holding it
    whole: each band is resized across (``F.interpolate``, its height kept, which is exact),
    and output rows are made down (:func:`resize_taps`) once every input row they read has
    come; rows no later output reads are dropped."""

    def __init__(self, size_in: tuple[int, int], size_out: tuple[int, int], antialias: bool):
        (self.h, _), (self.out_h, self.out_w) = size_in, size_out
        self.antialias = antialias
        self.index, self.weights = resize_taps(self.h, self.out_h, self.antialias)
        self.needed_to = self.index.max(dim=1).values + 1  # input rows each output row needs
        self.needed_from = self.index.min(dim=1).values
        self.rows: torch.Tensor | None = None  # resized across: input rows [first, first + n)
        self.first = 0
        self.done = 0  # output rows given out

    def push(self, rows: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """Take the next input rows (B, C, n, W); yield (first row, (B, C, m, out_w)) output."""
        across = F.interpolate(rows, size=(rows.shape[-2], self.out_w), mode="bicubic",
                               align_corners=False, antialias=self.antialias)
        self.rows = across if self.rows is None else torch.cat([self.rows, across], dim=-2)
        have = self.first + self.rows.shape[-2]
        ready = int(torch.searchsorted(self.needed_to, torch.tensor(have), right=True))
        ready = max(ready, self.done)  # needed_to is non-decreasing
        for y0 in range(self.done, ready, CHUNK):
            y1 = min(y0 + CHUNK, ready)
            index = self.index[y0:y1] - self.first  # (m, K)
            weights = self.weights[y0:y1]
            out = torch.zeros(*rows.shape[:2], y1 - y0, self.out_w)
            for k in range(index.shape[1]):
                out += self.rows[..., index[:, k], :] * weights[:, k, None]
            yield y0, out
        self.done = ready
        if self.done < self.out_h:  # drop the rows no output row still needs
            keep = int(self.needed_from[self.done:].min()) - self.first
            if keep > 0:
                self.rows = self.rows[..., keep:, :].clone()
                self.first += keep


class SRPipeline:
    """An SR generator applied to whole images or to overlapping tiles, within a memory budget.

    Args:
        model: a loaded ``sr`` model (``translate.modelfile.load_model``).
        device: where the network runs; inputs and outputs stay on the CPU.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (autocast).
        tile: LR tile side; None = automatic (the whole image when it fits ``max_memory``, else
            the largest tile that does); 0 = the whole image at once.
        tile_overlap: LR pixels shared by neighbouring tiles (blended); default twice the
            model's ``receptive_radius`` (model.json), 16 if it has none.
        outscale: final size factor; differing from the model's scale, the output is resized
            (bicubic, antialiased when shrinking) to ``round(outscale · size)``.
        max_memory: bytes one batch may take (see the module docstring); default
            ``memory.default_budget()``, half the available memory.
        max_pixels: larger outputs (width × height after ``outscale``) are refused.

    Raises:
        TranslateError: not an SR model, ``outscale <= 0``, a negative tile or overlap,
            ``tile <= tile_overlap``, or ``max_memory <= 0``.
    """

    def __init__(self, model: Model, device: str | torch.device = "cpu", precision: str = "auto",
                 tile: int | None = None, tile_overlap: int | None = None,
                 outscale: float | None = None, max_memory: int | None = None,
                 max_pixels: int | None = None):
        if model.task != "sr":
            raise TranslateError(f"{model.path} holds a '{model.task}' model, not a "
                                 "super-resolution (sr) model")
        self.scale = int(model.meta["scale"])
        # Tiles start on this grid (model.json's tile_multiple: a window-attention network's
        # windows are counted from the image's corner); overlaps and tiles are multiples of it.
        self.align = int(model.meta.get("tile_multiple", 1))
        if tile_overlap is None:
            tile_overlap = _round_up(2 * int(model.meta.get("receptive_radius", 8)), self.align)
        if outscale is not None and not outscale > 0:
            raise TranslateError(f"--outscale must be > 0, got {outscale}")
        if (tile is not None and tile < 0) or tile_overlap < 0:
            raise TranslateError(f"--tile and --tile-overlap must be >= 0, got {tile} and "
                                 f"{tile_overlap}")
        if tile and tile <= tile_overlap:
            raise TranslateError(f"--tile {tile} must be larger than --tile-overlap "
                                 f"{tile_overlap}")
        if self.align > 1 and ((tile and tile % self.align) or tile_overlap % self.align):
            raise TranslateError(f"--tile and --tile-overlap must be multiples of {self.align} "
                                 f"for this model (its attention windows), got {tile} and "
                                 f"{tile_overlap}")
        if max_memory is not None and max_memory <= 0:
            raise TranslateError(f"--max-memory must be more than 0 bytes, got {max_memory}")
        self.outscale = float(outscale) if outscale is not None else float(self.scale)
        self.tile, self.overlap = tile, tile_overlap
        self.max_memory = int(max_memory) if max_memory is not None else default_budget()
        # The tuned allocator (translate.perf) keeps freed blocks; only those well below the
        # budget, so that its heap's holes stay within it (the whole output is mapped afresh),
        # and automatic tiles keep their tensors below that size (:meth:`_kept`).
        self.keep_limit = max(min(self.max_memory // RETAIN_SHARE, MMAP_THRESHOLDS[0]),
                              MMAP_THRESHOLDS[-1])
        retain_blocks_below(self.keep_limit)
        self.max_pixels = max_pixels
        self.device = torch.device(device)
        self.net = model.networks["G"].to(self.device).eval()
        self.precision = model_precision(precision, self.device, model.meta)
        self.wrapped = PadCrop(self.net, size_multiple(self.net, model.meta), self.scale,
                               value_range(model))
        self._per_pixel: float | None = None  # forward's peak bytes per LR pixel
        self._block_per_pixel = 0.0  # … and its largest tensor's
        # Called after each tile of a tiled batch with (tiles done, tiles in the batch): the
        # folder runner shows progress within a large image with it.
        self.on_tile: Callable[[int, int], None] | None = None

    @property
    def max_pending_bytes(self) -> int:
        """Results the folder runner may hold for its writers before it waits for them."""
        return self.max_memory // PENDING_SHARE

    # ── Sizes and the memory plan.

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """(H, W) of the result for an h × w input."""
        if self.outscale == self.scale:
            return h * self.scale, w * self.scale
        return max(1, round(h * self.outscale)), max(1, round(w * self.outscale))

    def activation_bytes(self, b: int, h: int, w: int) -> int:
        """Estimated peak bytes of the network's forward pass on (b, 3, h, w), output included:
        the meta-device peak per LR pixel (measured once) × pixels × ``memory.SAFETY``."""
        if self._per_pixel is None:
            c = CALIBRATION
            peak, largest = forward_bytes(self.wrapped, (1, 3, c, c))
            self._per_pixel, self._block_per_pixel = peak / (c * c), largest / (c * c)
        return int(self._per_pixel * b * h * w * SAFETY)

    def largest_block(self, b: int, h: int, w: int) -> int:
        """Estimated bytes of the forward pass's largest single tensor on (b, 3, h, w)."""
        self.activation_bytes(1, 1, 1)  # calibrates
        return int(self._block_per_pixel * b * h * w * SAFETY)

    def _kept(self, b: int, h: int, w: int, tile: int) -> bool:
        """Whether every tensor of a forward pass with LR tiles of side ``tile`` (0: whole) is
        below :attr:`keep_limit`, the largest block the tuned allocator keeps for reuse
        (translate.perf): larger ones are mapped and faulted in afresh at every tile — a 12 MP
        ×4 in tiles of 2333 spent as long in the kernel as computing. The plan follows the
        budget alone, not whether this process tuned its allocator, so that a tuned and an
        untuned run compute the same tiles (the same output)."""
        th, tw = ((h, w) if tile == 0 else
                  (min(tile + self.align - 1, h), min(tile + self.align - 1, w)))
        return self.largest_block(b, th, tw) < self.keep_limit

    def estimate(self, b: int, h: int, w: int, tile: int, itemsize: int = 1) -> int:
        """Bytes a (b, 3, h, w) batch needs with LR tiles of side ``tile`` (0: whole), for a
        result of ``itemsize``-byte values (1: uint8, 2: uint16, 4: float32).

        The decoded input (the runner's copy and the batch), the result, a reserve for earlier
        results being encoded (:data:`PENDING_SHARE`), and either the whole forward pass or one
        tile's forward pass, its weighted copy and the float band a tile row is blended in.
        Resizing (``outscale``) adds the rows being resized.
        """
        s = self.scale
        out_h, out_w = self.output_size(h, w)
        total = 2 * b * 3 * h * w * 4 + b * out_h * out_w * 3 * itemsize
        total += 2 * self.max_pending_bytes
        resizing = (out_h, out_w) != (h * s, w * s)
        if tile == 0 or (h <= tile and w <= tile):
            total += self.activation_bytes(b, h, w)
            band = CHUNK
        else:
            th, tw = min(tile + self.align - 1, h), min(tile + self.align - 1, w)  # last tiles
            total += self.activation_bytes(b, th, tw) + b * 3 * th * s * tw * s * 4
            total += b * 3 * th * s * w * s * 4  # the band
            band = th * s
        if resizing:  # rows resized across, twice while they are joined, and the taps
            total += 2 * b * 3 * (band + 4 * max(1, round(h * s / out_h)) + CHUNK) * out_w * 4
        return total

    def plan(self, b: int, h: int, w: int, itemsize: int = 1) -> int:
        """The LR tile side for a (b, 3, h, w) batch: 0 = the whole image.

        Raises:
            ValueError: the output is larger than ``max_pixels``, or the forced whole image /
                tile, or (automatic) even tiles of twice the overlap, do not fit
                ``max_memory``; one line naming the estimate and the budget.
        """
        out_h, out_w = self.output_size(h, w)
        if self.max_pixels is not None and out_h * out_w > self.max_pixels:
            raise ValueError(f"its {out_w}×{out_h} output ({out_w * out_h:,} pixels) would be "
                             f"larger than --max-pixels {self.max_pixels:,}; raise it to allow "
                             "this")
        budget = self.max_memory

        def refuse(what: str, need: int, hint: str) -> ValueError:
            return ValueError(f"{what} needs about {format_bytes(need)}, more than --max-memory "
                              f"{format_bytes(budget)}; {hint}")

        if self.tile is not None:
            need = self.estimate(b, h, w, self.tile, itemsize)
            if need > budget:
                what = (f"the whole {w}×{h} image" if self.tile == 0
                        else f"the {w}×{h} image in tiles of {self.tile}")
                raise refuse(what, need, "leave --tile unset to choose tiles that fit, or "
                             "raise --max-memory")
            return self.tile
        smallest = self._smallest_tile()
        if self.estimate(b, h, w, 0, itemsize) > budget and \
                self.estimate(b, h, w, smallest, itemsize) > budget:
            raise refuse(f"the {w}×{h} image in the smallest tiles ({smallest})",
                         self.estimate(b, h, w, smallest, itemsize), "raise --max-memory")
        tile = self._largest_tile(b, h, w, lambda t: self.estimate(b, h, w, t, itemsize) <= budget)
        # Tiles whose tensors the allocator keeps (:meth:`_kept`) where that costs little: no
        # more than KEPT_EXTRA_WORK more pixels through the network than the budget's tiles
        # (faulting a few blocks in afresh costs less than recomputing overlaps).
        if not self._kept(b, h, w, tile) and self._kept(b, h, w, smallest):
            kept = self._largest_tile(b, h, w, lambda t: self.estimate(
                b, h, w, t, itemsize) <= budget and self._kept(b, h, w, t))
            if self.work(h, w, kept) <= KEPT_EXTRA_WORK * self.work(h, w, tile):
                tile = kept
        return tile

    def _smallest_tile(self) -> int:
        return max(2 * self.overlap, 16)  # stride ≥ overlap: ≤ 4× the work

    def _largest_tile(self, b: int, h: int, w: int, fits: Callable[[int], bool]) -> int:
        """0 (the whole image) if ``fits(0)``, else the largest tile side that ``fits`` (both
        measures grow with the tile), on the model's grid."""
        if fits(0):
            return 0
        lo, hi = self._smallest_tile(), max(h, w)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
        if self.align > 1:  # on the model's grid, and still larger than the overlap
            lo = max(lo // self.align * self.align, self.overlap + self.align)
        return lo

    def work(self, h: int, w: int, tile: int) -> float:
        """LR pixels through the network with tiles of side ``tile`` (0: whole), per image
        pixel: the overlaps' recomputation."""
        if tile == 0 or (h <= tile and w <= tile):
            return 1.0
        (_, hs), (_, ws) = (tile_layout(h, tile, self.overlap, self.align),
                            tile_layout(w, tile, self.overlap, self.align))
        return sum(hs) * sum(ws) / (h * w)

    # ── Running.

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 3, h, w) on the CPU -> (B, 3, s h, s w) float32 on the CPU, not clamped.
        # A stop signal (translate.signals) is acted on here, before each tile or whole image:
        # one forward pass itself cannot be interrupted.
        check_stop()
        with self.precision.autocast():
            y = self.wrapped(x.to(self.device, non_blocking=True))
        return y.cpu()

    def _rows(self, x: torch.Tensor, tile: int) -> Iterator[tuple[int, torch.Tensor]]:
        """The model-scale output in order, as (first row, (B, 3, n, s w) float rows), blended
        and not clamped. The rows are views the caller may change but must not keep.

        Tiled, a stop signal is acted on before each tile (``translate.signals.Stopped``
        propagates; nothing is returned for the image) and ``on_tile`` hears of each one done;
        the whole image at once is one forward pass, which no signal interrupts."""
        b, c, h, w = x.shape
        s, m = self.scale, self.overlap
        if tile == 0 or (h <= tile and w <= tile):
            y = self._run(x)
            for r in range(0, h * s, CHUNK):
                yield r, y[..., r : r + CHUNK, :]
            return
        # Tiles on the model's grid (self.align; the last of a row or column may be longer).
        (ys, hs), (xs, ws) = (tile_layout(h, tile, m, self.align),
                              tile_layout(w, tile, m, self.align))
        wys, wxs = _tile_ramps(ys, hs, s), _tile_ramps(xs, ws, s)
        # The weights are separable (wy ⊗ wx), so their sum at a pixel is a product of 1-D sums.
        row_sum, col_sum = _weight_sum(ys, wys, h, s), _weight_sum(xs, wxs, w, s)
        band = torch.zeros(b, c, max(hs) * s, w * s)  # output rows of one tile row
        done_tiles, n_tiles = 0, len(ys) * len(xs)
        for i, (y0, th, wy) in enumerate(zip(ys, hs, wys, strict=True)):
            for x0, tw, wx in zip(xs, ws, wxs, strict=True):
                y = self._run(x[..., y0 : y0 + th, x0 : x0 + tw])  # stops are acted on here
                y.mul_(wy[:, None] * wx[None, :])
                band[..., : th * s, x0 * s : (x0 + tw) * s].add_(y)
                del y
                done_tiles += 1
                if self.on_tile is not None:
                    self.on_tile(done_tiles, n_tiles)
            # Rows above the next tile row's first are final; the rest is carried over.
            done = (ys[i + 1] - y0) * s if i + 1 < len(ys) else th * s
            rows = band[..., :done, :]
            rows.div_(row_sum[y0 * s : y0 * s + done, None] * col_sum[None, :])
            yield y0 * s, rows
            carry = th * s - done
            if carry:
                band[..., :carry, :] = band[..., done : th * s, :].clone()
            band[..., carry:, :] = 0

    def _check(self, x: torch.Tensor) -> None:
        h, w = x.shape[-2:]
        if self.tile and min(h, w) < self.overlap:
            # Tiles cannot overlap by more than the image has; refused rather than guessed.
            raise ValueError(f"the image ({w}x{h}) is smaller than --tile-overlap {self.overlap}")

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) in [0, 1] → (B, 3, round(F h), round(F w)) in [0, 1], on the CPU."""
        x = x.float().cpu()
        self._check(x)
        b, c, h, w = x.shape
        tile = self.plan(b, h, w, itemsize=4)
        if tile and (h > tile or w > tile):
            y = torch.empty(b, c, h * self.scale, w * self.scale)
            for r, rows in self._rows(x, tile):
                y[..., r : r + rows.shape[-2], :] = rows
        else:
            y = self._run(x)
        if self.outscale != self.scale:
            shrink = self.outscale < self.scale
            y = F.interpolate(y, size=self.output_size(h, w), mode="bicubic",
                              align_corners=False, antialias=shrink)
        return y.clamp_(0, 1)

    @torch.no_grad()
    def pixels(self, x: torch.Tensor, bit_depth: int = 8) -> np.ndarray:
        """(B, 3, h, w) in [0, 1] → (B, H, W, 3) ``uint8`` (``bit_depth`` 8) or ``uint16`` (16),
        rounded as ``translate.io.images.from_float``; no full-size float array is made unless
        the whole image runs at once (the network's own output)."""
        x = x.float().cpu()
        self._check(x)
        b, c, h, w = x.shape
        itemsize = 1 if bit_depth == 8 else 2
        tile = self.plan(b, h, w, itemsize)
        out_h, out_w = self.output_size(h, w)
        out = np.empty((b, out_h, out_w, c), np.uint8 if bit_depth == 8 else np.uint16)
        peak = 255 if bit_depth == 8 else 65535
        resize = (None if (out_h, out_w) == (h * self.scale, w * self.scale)
                  else _RowResize((h * self.scale, w * self.scale), (out_h, out_w),
                                  antialias=self.outscale < self.scale))
        for r, rows in self._rows(x, tile):
            for r0, part in ((r, rows),) if resize is None else resize.push(rows):
                for q0 in range(0, part.shape[-2], CHUNK):
                    q = part[..., q0 : q0 + CHUNK, :].nan_to_num(0.0).clamp_(0, 1)
                    q = q.mul_(peak).round_().to(torch.uint8 if bit_depth == 8 else torch.int32)
                    out[:, r0 + q0 : r0 + q0 + q.shape[-2]] = q.permute(0, 2, 3, 1).numpy()
        return out
