"""Winograd convolution (translate/nets/winograd.py): the transforms compute correlation exactly,
WinogradConv2d matches F.conv2d at ragged sizes, layouts and batches, fast_inference converts a
generator without changing its output or the original, and the infer fast path is wired."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import error_line, invoke
from helpers import count_modules, save_cyclegan
from PIL import Image
from torch import nn

from translate.infer import TranslationPipeline
from translate.modelfile import load_model, save_model
from translate.nets.resnet import ResnetGenerator
from translate.nets.winograd import POINTS, WinogradConv2d, fast_inference, winograd_matrices


def _correlate(d: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """y_i = sum_k d_{i+k} g_k, the definition (no library call)."""
    m = d.numel() - g.numel() + 1
    return torch.stack([(d[i:i + g.numel()] * g).sum() for i in range(m)])


@pytest.mark.parametrize("m", sorted(POINTS))
def test_matrices_compute_1d_correlation(m: int) -> None:
    a_t, g_mat, b_t = winograd_matrices(m, 3, POINTS[m])
    assert a_t.shape == (m, m + 2) and g_mat.shape == (m + 2, 3) and b_t.shape == (m + 2, m + 2)
    gen = torch.Generator().manual_seed(m)
    for _ in range(5):
        d = torch.randn(m + 2, dtype=torch.float64, generator=gen)
        g = torch.randn(3, dtype=torch.float64, generator=gen)
        y = a_t @ ((g_mat @ g) * (b_t @ d))  # Lavin & Gray, Eqn. 7
        torch.testing.assert_close(y, _correlate(d, g), rtol=0, atol=1e-12)


def test_integer_points_give_integer_input_transform() -> None:
    # Lavin & Gray's F(4, 3) points: B^T must come out with small integer entries.
    _, _, b_t = winograd_matrices(4, 3, (0, 1, -1, 2, -2))
    assert torch.equal(b_t, b_t.round())
    assert b_t.abs().max().item() == 5.0
    with pytest.raises(ValueError, match="5 distinct finite points"):
        winograd_matrices(4, 3, (0, 1, -1, 2, 2))
    with pytest.raises(ValueError, match="3 distinct finite points"):
        winograd_matrices(2, 3, (0, 1))


CASES = [  # (batch, in, out, H, W, padding, padding_mode, bias)
    (1, 4, 6, 10, 10, 0, "zeros", True),  # output 8x8: whole tiles
    (3, 5, 7, 11, 13, 0, "zeros", True),  # ragged 9x11
    (2, 3, 2, 7, 6, 1, "zeros", False),  # zero padding, ragged
    (2, 6, 4, 9, 5, 1, "reflect", True),  # the conv's own reflect padding
    (1, 2, 3, 3, 3, 0, "zeros", False),  # a single 1x1 output
]


@pytest.mark.parametrize("m", sorted(POINTS))
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("case", CASES)
def test_matches_conv2d(m: int, layout: str, case: tuple) -> None:
    n, cin, cout, h, w, pad, mode, bias = case
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, 3, padding=pad, padding_mode=mode, bias=bias).double()
    x = torch.randn(n, cin, h, w, dtype=torch.float64)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    wino = WinogradConv2d(conv, m)
    y = wino(x)
    expected = conv(x)
    assert y.shape == expected.shape
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)  # exact up to float64 rounding
    fmt = torch.channels_last if layout == "channels_last" and cout > 1 else torch.contiguous_format
    assert y.is_contiguous(memory_format=fmt)


def test_fp32_error_is_small_at_full_width() -> None:
    # The residual-block conv of ResNet-9 (256 channels) at a ragged 22x22, fp32: the error
    # grows with the number of channels summed, so test at the real width, against float64.
    torch.manual_seed(1)
    conv = nn.Conv2d(256, 256, 3)
    nn.init.normal_(conv.weight, 0.0, 0.02)
    x = torch.randn(1, 256, 24, 24).relu()
    ref = F.conv2d(x.double(), conv.weight.double(), conv.bias.double())
    with torch.no_grad():
        err_w = (WinogradConv2d(conv, 4)(x).double() - ref).abs().max() / ref.abs().max()
        err_d = (conv(x).double() - ref).abs().max() / ref.abs().max()
    assert err_w < 1e-4
    assert err_w < 100 * err_d  # within two orders of magnitude of the direct conv


def test_autocast_is_bypassed() -> None:
    conv = nn.Conv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 8, 8)
    wino = WinogradConv2d(conv)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = wino(x)
    assert y.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(y, conv(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("conv", [
    nn.Conv2d(4, 4, 3, stride=2),
    nn.Conv2d(4, 4, 5),
    nn.Conv2d(4, 4, 3, dilation=2),
    nn.Conv2d(4, 4, 3, groups=2),
    nn.Conv2d(4, 4, 3).half(),
], ids=["stride2", "5x5", "dilated", "grouped", "fp16"])
def test_ineligible_convs_are_refused(conv: nn.Conv2d) -> None:
    with pytest.raises(ValueError, match="not a 3x3, stride-1"):
        WinogradConv2d(conv)


def test_bad_tile_size_and_bad_inputs() -> None:
    conv = nn.Conv2d(4, 5, 3)
    with pytest.raises(ValueError, match="tile size m must be one of"):
        WinogradConv2d(conv, m=3)
    wino = WinogradConv2d(conv)
    with pytest.raises(ValueError, match="expected 4 input channels, got 3"):
        wino(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="smaller than the 3x3 kernel"):
        wino(torch.randn(1, 4, 2, 8))


@pytest.mark.parametrize("upsample, expected", [("deconv", 4), ("resize", 6)])
def test_fast_inference_generator(upsample: str, expected: int) -> None:
    torch.manual_seed(0)
    g = ResnetGenerator(ngf=8, n_blocks=2, upsample=upsample).eval()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    x = torch.rand(3, 3, 36, 44) * 2 - 1  # batch 3; 9x11 bottleneck maps: ragged tiles
    with torch.no_grad():
        y_ref = g(x)
        fast = fast_inference(g, min_channels=1)
        y = fast(x)
    # Residual-block convs (2 per block), plus the two resize convs 32->16, 16->8.
    assert count_modules(fast, WinogradConv2d) == expected
    assert not fast.training and not any(p.requires_grad for p in fast.parameters())
    assert (y - y_ref).abs().max().item() < 1e-4
    assert y.shape == y_ref.shape
    # The original is untouched: its convs, weights and output.
    assert count_modules(g, WinogradConv2d) == 0
    assert all(torch.equal(v, before[k]) for k, v in g.state_dict().items())
    with torch.no_grad():
        assert torch.equal(g(x), y_ref)


def test_fast_inference_min_channels_and_inplace() -> None:
    g = ResnetGenerator(ngf=8, n_blocks=2).eval()  # residual blocks at 32 channels
    assert count_modules(fast_inference(g), WinogradConv2d) == 0  # default min_channels 128
    assert count_modules(fast_inference(g, min_channels=32), WinogradConv2d) == 4
    same = fast_inference(g, min_channels=32, inplace=True)
    assert same is g and count_modules(g, WinogradConv2d) == 4


# ── The inference fast path: TranslationPipeline(fast_conv=...) and `translate infer`.


def _tiny_cyclegan(folder, ngf: int = 32):
    # ngf 32: residual blocks at 128 channels, the fewest fast_inference converts by default.
    torch.manual_seed(0)
    g = ResnetGenerator(ngf=ngf, n_blocks=2)
    with torch.no_grad():  # weights of unit-ish scale, so the output is not a flat grey
        for p in g.parameters():
            p.normal_(0, 0.1)
    return save_cyclegan(folder, g, ResnetGenerator(ngf=ngf, n_blocks=2))


@pytest.mark.slow
def test_pipeline_fast_conv_default_and_outputs(tmp_path) -> None:
    folder = _tiny_cyclegan(tmp_path / "model")
    x = torch.rand(2, 3, 22, 26)  # padded to 24x28 inside: 6x7 bottleneck, ragged tiles
    plain = TranslationPipeline(load_model(folder), fast_conv=False)
    fast = TranslationPipeline(load_model(folder))  # CPU at fp32: on by default
    assert (plain.fast_conv, fast.fast_conv) == (False, True)
    assert count_modules(plain.net, WinogradConv2d) == 0
    assert count_modules(fast.net, WinogradConv2d) == 4
    y_plain, y_fast = plain(x), fast(x)
    assert y_fast.shape == y_plain.shape == x.shape
    assert y_plain.std() > 0.05  # the net does something: a real comparison below
    assert (y_fast - y_plain).abs().max().item() < 1e-4  # far below one 8-bit level
    # bf16 autocast keeps the stock convs unless asked.
    assert not TranslationPipeline(load_model(folder), precision="bf16").fast_conv


@pytest.mark.slow
def test_cli_fast_conv_flag(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import translate.infer.translation

    folder = _tiny_cyclegan(tmp_path / "model")
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (28, 36, 3), dtype=np.uint8)).save(inputs / f"{i}.png")
    outs = {}
    for flag in ("--fast-conv", "--no-fast-conv"):
        outs[flag] = tmp_path / flag.strip("-")
        result = invoke("infer", folder, inputs, outs[flag], "-q", flag)
        assert result.exit_code == 0, result.output
    for name in ("0.png", "1.png"):
        a = np.asarray(Image.open(outs["--fast-conv"] / name), dtype=np.int16)
        b = np.asarray(Image.open(outs["--no-fast-conv"] / name), dtype=np.int16)
        assert a.shape == (28, 36, 3) and np.abs(a - b).max() <= 1
    # The flag reaches the pipeline: the default converts, --no-fast-conv does not.
    calls = []
    real = translate.infer.translation.fast_inference
    monkeypatch.setattr(translate.infer.translation, "fast_inference",
                        lambda net, **kw: calls.append(kw) or real(net, **kw))
    assert invoke("infer", folder, inputs, tmp_path / "d", "-q").exit_code == 0
    assert len(calls) == 1
    assert invoke("infer", folder, inputs, tmp_path / "e", "-q", "--no-fast-conv").exit_code == 0
    assert len(calls) == 1


def test_cli_fast_conv_refused_for_other_tasks(tmp_path) -> None:
    from translate.nets.sr import SRGenerator

    net = SRGenerator(2, nf=8, n_blocks=1)
    save_model(tmp_path / "sr", "sr", {"G": net},
               {"value_range": [0.0, 1.0], "scale": 2, "channels": 3,
                "receptive_radius": net.receptive_radius})
    (tmp_path / "in").mkdir()
    Image.new("RGB", (16, 16)).save(tmp_path / "in" / "a.png")
    result = invoke("infer", tmp_path / "sr", tmp_path / "in", tmp_path / "out", "--fast-conv")
    assert result.exit_code != 0
    assert "--fast-conv is for translation models" in error_line(result)
    assert not (tmp_path / "out").exists()
