"""Super-resolution within a memory budget: the estimate, automatic tiles, row-band assembly into
integer pixels (no full-size float copy), the output-size --max-pixels check and --max-memory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import error_line, invoke
from PIL import Image

from translate.errors import TranslateError
from translate.infer.memory import forward_peak_bytes, parse_bytes
from translate.infer.sr import SRPipeline, _tile_ramps, resize_taps, tile_starts
from translate.io.images import from_float
from translate.modelfile import load_model, save_model
from translate.nets.sr import SRGenerator

MIB = 2**20


def _tiny_model(folder: Path, scale: int = 4, seed: int = 0) -> Path:
    """A width-8 SR model with random (not near-identity) weights, so tiles that blend badly
    would show."""
    torch.manual_seed(seed)
    net = SRGenerator(scale, nf=8, n_blocks=2)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    save_model(folder, "sr", {"G": net}, {"value_range": [0.0, 1.0], "scale": scale,
                                          "channels": 3, "receptive_radius": net.receptive_radius})
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_model(tmp_path_factory.mktemp("sr") / "m")


@torch.no_grad()
def _old_tiled(pipe: SRPipeline, x: torch.Tensor, tile: int) -> torch.Tensor:
    """The tiled path as it was: full-size float sums of weighted tiles and of 2-D weights."""
    b, c, h, w = x.shape
    s, m = pipe.scale, pipe.overlap
    out, weight = torch.zeros(b, c, h * s, w * s), torch.zeros(1, 1, h * s, w * s)
    ys, xs = tile_starts(h, tile, m), tile_starts(w, tile, m)
    for y0, wy in zip(ys, _tile_ramps(ys, tile, s), strict=True):
        for x0, wx in zip(xs, _tile_ramps(xs, tile, s), strict=True):
            wt = wy[:, None] * wx[None, :]
            y = pipe._run(x[..., y0 : y0 + tile, x0 : x0 + tile])
            out[..., y0 * s : (y0 + tile) * s, x0 * s : (x0 + tile) * s] += y * wt
            weight[..., y0 * s : (y0 + tile) * s, x0 * s : (x0 + tile) * s] += wt
    return (out / weight).clamp(0, 1)


def _levels(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


# ── The estimate.


def test_activation_estimate_counts_the_forward_pass_and_grows_with_pixels(model_dir) -> None:
    # The ×4 "lite" net of width 8 holds, per LR pixel at its peak, the head's and the body's
    # 8 channels each plus three 48-channel (3·4²) tensors: the LR conv, its shuffle, and the
    # bilinear skip (the sum is made before the others go): (8 + 8 + 3·48) · 4 bytes = 640.
    lite = SRGenerator(4, nf=8, n_blocks=2, upsampler="lite")
    assert forward_peak_bytes(lite, (1, 3, 32, 32)) == 640 * 32 * 32
    assert forward_peak_bytes(lite, (2, 3, 32, 64)) == 4 * 640 * 32 * 32
    pipe = SRPipeline(load_model(model_dir), "cpu", "fp32", max_memory=64 * MIB)
    small, big = pipe.activation_bytes(1, 64, 64), pipe.activation_bytes(1, 128, 128)
    assert small > 0 and big == pytest.approx(4 * small, rel=1e-3)
    assert pipe.estimate(1, 128, 128, 0) > pipe.estimate(1, 64, 64, 0)
    # Tiles bound the estimate: the tiled one grows with the tile, not with the image alone.
    assert pipe.estimate(1, 512, 512, 64) < pipe.estimate(1, 512, 512, 128) \
        < pipe.estimate(1, 512, 512, 0)


# ── Automatic tiles and the row-band assembly.


def test_auto_tiles_under_a_small_budget_and_whole_under_a_large_one(model_dir) -> None:
    model = load_model(model_dir)
    small = SRPipeline(model, "cpu", "fp32", max_memory=64 * MIB)
    tile = small.plan(1, 512, 512)
    assert 2 * small.overlap <= tile < 512
    # the largest tile within the budget whose blocks the allocator keeps (1/8 of the budget)
    assert small.estimate(1, 512, 512, tile) <= 64 * MIB and small._kept(1, 512, 512, tile)
    assert (small.estimate(1, 512, 512, tile + 1) > 64 * MIB
            or not small._kept(1, 512, 512, tile + 1))
    assert SRPipeline(model, "cpu", "fp32", max_memory=64 * 2**30).plan(1, 512, 512) == 0
    x = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(0))
    tiled = small.pixels(x)
    whole = SRPipeline(model, "cpu", "fp32", tile=0, max_memory=64 * 2**30).pixels(x)
    assert tiled.shape == whole.shape == (1, 2048, 2048, 3) and tiled.dtype == np.uint8
    assert _levels(tiled, whole) <= 1


def test_auto_tiles_keep_every_tensor_below_the_block_size_the_allocator_keeps(
        model_dir) -> None:
    # Where translate tunes glibc (translate/perf.py), blocks at or above its mmap threshold are
    # mapped afresh at every tile: automatic tiles keep the forward's largest tensor below the
    # threshold the pipeline sets (1/8 of the budget, at most 1 GiB), tuned or not.
    model = load_model(model_dir)
    pipe = SRPipeline(model, "cpu", "fp32", max_memory=64 * 2**30)
    assert pipe.keep_limit == 2**30
    assert pipe.plan(1, 512, 512) == 0  # the whole image: its largest tensor is below 1 GiB
    whole = pipe.largest_block(1, 512, 512)
    # at least the last upsampling stage's 8 channels at 2048² (of the padded input), ×1.3
    assert int(8 * 16 * 4 * 512 * 512 * 1.3) <= whole < int(8 * 16 * 4 * 520 * 520 * 1.3)
    # Tiles a third of the whole's blocks would recompute their overlaps (> 5 % more pixels):
    # not worth it, the whole image runs (its few large blocks are faulted in once).
    pipe.keep_limit = whole // 3
    assert pipe.plan(1, 512, 512) == 0
    # A long strip that 2048-px tiles cover with nothing but their overlaps recomputed (< 1 %):
    # kept tiles.
    pipe.keep_limit = pipe.largest_block(1, 64, 2048) + 1
    w = 4 * (2048 - pipe.overlap) + pipe.overlap
    assert pipe.plan(1, 64, w) == 2048 and pipe.work(64, w, 2048) < 1.01
    assert pipe.largest_block(1, 64, 2049) >= pipe.keep_limit
    assert pipe.work(64, w, 0) == 1.0 and pipe.work(512, 512, 300) > 1.05
    pipe.keep_limit = 1024  # a limit no tile can meet: the budget alone decides
    assert pipe.plan(1, 64, w) == 0
    assert SRPipeline(model, "cpu", "fp32", max_memory=800 * MIB).keep_limit == 100 * MIB
    # never below the 32 MiB glibc keeps anyway (translate.perf.retain_blocks_below)
    assert SRPipeline(model, "cpu", "fp32", max_memory=64 * MIB).keep_limit == 32 * MIB


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_band_assembly_equals_the_full_size_float_path(model_dir, bit_depth: int) -> None:
    pipe = SRPipeline(load_model(model_dir), "cpu", "fp32", tile=40)
    x = torch.rand(2, 3, 71, 97, generator=torch.Generator().manual_seed(1))
    reference = from_float(_old_tiled(pipe, x, 40).permute(0, 2, 3, 1).numpy(), bit_depth)
    got = pipe.pixels(x, bit_depth)
    assert got.dtype == reference.dtype and got.shape == reference.shape == (2, 284, 388, 3)
    # Float rounding of the two normalisations may move a value across a rounding boundary.
    assert _levels(got, reference) <= (1 if bit_depth == 8 else 2)
    assert (pipe(x) - _old_tiled(pipe, x, 40)).abs().max() <= 1e-5


@pytest.mark.parametrize(("n_in", "n_out", "antialias"),
                         [(37, 100, False), (100, 37, True), (90, 45, True), (45, 90, True)])
def test_resize_taps_are_pytorchs_bicubic(n_in: int, n_out: int, antialias: bool) -> None:
    image = torch.rand(1, 1, n_in, 5, generator=torch.Generator().manual_seed(2))
    expected = F.interpolate(image, size=(n_out, 5), mode="bicubic", align_corners=False,
                             antialias=antialias)[0, 0]
    index, weights = resize_taps(n_in, n_out, antialias)
    assert (image[0, 0][index] * weights[..., None]).sum(1).sub(expected).abs().max() < 1e-5


@pytest.mark.parametrize("outscale", [2.5, 1.5, 6.0])
def test_outscale_resizes_the_bands_as_they_come(model_dir, outscale: float) -> None:
    pipe = SRPipeline(load_model(model_dir), "cpu", "fp32", tile=40, outscale=outscale)
    x = torch.rand(1, 3, 71, 97, generator=torch.Generator().manual_seed(3))
    expected = from_float(pipe(x).permute(0, 2, 3, 1).numpy())
    got = pipe.pixels(x)
    assert got.shape == expected.shape == (1, round(71 * outscale), round(97 * outscale), 3)
    assert _levels(got, expected) <= 1


def test_forced_whole_image_over_the_budget_is_refused_naming_both(model_dir) -> None:
    pipe = SRPipeline(load_model(model_dir), "cpu", "fp32", tile=0, max_memory=64 * MIB)
    with pytest.raises(ValueError, match=r"^the whole 512×512 image needs about \d+ MiB, more "
                       r"than --max-memory 64 MiB; leave --tile unset") as excinfo:
        pipe.pixels(torch.rand(1, 3, 512, 512))
    assert "\n" not in str(excinfo.value)
    tiny = SRPipeline(load_model(model_dir), "cpu", "fp32", max_memory=4 * MIB)
    with pytest.raises(ValueError, match=r"in the smallest tiles \(36\) needs about .* more than "
                       r"--max-memory 4\.0 MiB; raise --max-memory"):
        tiny.pixels(torch.rand(1, 3, 512, 512))


# ── The command line.


def test_cli_auto_tiles_write_what_the_whole_image_gives(model_dir, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(src / "a.png")
    result = invoke("infer", model_dir, src, tmp_path / "auto", "--max-memory", "64M", "-q")
    assert result.exit_code == 0, result.output
    result = invoke("infer", model_dir, src, tmp_path / "whole", "--tile", 0, "--max-memory",
                    "8G", "-q")
    assert result.exit_code == 0, result.output
    auto = np.asarray(Image.open(tmp_path / "auto" / "a.png"))
    whole = np.asarray(Image.open(tmp_path / "whole" / "a.png"))
    assert auto.shape == whole.shape == (1200, 1600, 3)
    assert _levels(auto, whole) <= 1
    # Forced whole under the small budget: that file fails, naming the estimate and budget.
    result = invoke("infer", model_dir, src, tmp_path / "refused", "--tile", 0,
                    "--max-memory", "64M", "-q")
    assert result.exit_code == 1
    failure = json.loads((tmp_path / "refused" / "failures.jsonl").read_text())
    assert "the whole 400×300 image needs about" in failure["reason"]
    assert "more than --max-memory 64 MiB" in failure["reason"]
    assert not (tmp_path / "refused" / "a.png").exists()


def test_cli_max_pixels_counts_the_output_and_outscale(model_dir, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((30, 40, 3), 128, np.uint8)).save(src / "a.png")
    result = invoke("infer", model_dir, src, tmp_path / "o1", "--max-pixels", 10_000, "-q")
    assert result.exit_code == 1
    assert "its 160×120 output (19,200 pixels) would be larger than --max-pixels 10,000" \
        in result.output
    assert sorted(p.name for p in (tmp_path / "o1").iterdir()) == ["failures.jsonl"]
    # ×2 of the ×4 model's output: 80×60 = 4,800 pixels, within the limit.
    result = invoke("infer", model_dir, src, tmp_path / "o2", "--max-pixels", 10_000,
                    "--outscale", 2, "-q")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "o2" / "a.png").size == (80, 60)


def test_default_output_limit_is_larger_than_the_input_limit(model_dir) -> None:
    """Without --max-pixels, inputs are bounded at 150 MP and SR outputs at 400 MP (a ×4 of a
    12 MP photo, 192 MP, goes through); a given --max-pixels bounds both."""
    from translate.infer import build_pipeline
    from translate.io.images import DEFAULT_MAX_OUTPUT_PIXELS, DEFAULT_MAX_PIXELS

    assert DEFAULT_MAX_OUTPUT_PIXELS > 16 * 12_000_000 > DEFAULT_MAX_PIXELS
    pipe, _ = build_pipeline(model_dir, device="cpu")
    assert pipe.max_pixels == DEFAULT_MAX_OUTPUT_PIXELS
    pipe.max_memory = 64 * 2**30  # planning only: nothing is allocated
    assert pipe.plan(1, 3000, 4000) >= 0  # the 16000×12000 output is within the default
    with pytest.raises(ValueError, match=r"32000×24000 output \(768,000,000 pixels\)"):
        pipe.plan(1, 6000, 8000)
    pipe, _ = build_pipeline(model_dir, device="cpu", max_output_pixels=1000)
    assert pipe.max_pixels == 1000


@pytest.mark.parametrize(("text", "expected"), [
    ("4G", 4 * 2**30), ("500M", 500 * MIB), ("1.5GiB", 3 * 2**29), ("64MB", 64 * MIB),
    ("2k", 2048), ("1073741824", 2**30), (" 8 g ", 8 * 2**30),
])
def test_max_memory_sizes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("lots", "error: --max-memory: expected a size such as 4G, 500M or 1073741824, got 'lots'"),
    ("4X", "error: --max-memory: expected a size such as 4G, 500M or 1073741824, got '4X'"),
    ("-1G", "error: --max-memory: expected a size such as 4G, 500M or 1073741824, got '-1G'"),
    ("0", "error: --max-memory must be more than 0 bytes, got '0'"),
])
def test_cli_bad_max_memory_is_one_line_and_writes_nothing(model_dir, tmp_path: Path,
                                                           value: str, message: str) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / "a.png")
    result = invoke("infer", model_dir, src, tmp_path / "out", "--max-memory", value)
    assert result.exit_code == 2  # a bad option value: a usage error, as docs/RELIABILITY.md says
    assert error_line(result) == message
    assert not (tmp_path / "out").exists()


def test_pipeline_refuses_a_budget_of_nothing(tmp_path: Path) -> None:
    with pytest.raises(TranslateError, match="must be more than 0 bytes"):
        SRPipeline(load_model(_tiny_model(tmp_path / "m")), max_memory=0)
