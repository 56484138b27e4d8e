"""Super-resolution: network, data, both training stages, tiled inference, eval, CLI, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import SHARED_DATA, error_line, invoke
from helpers import assert_same_state, fresh_cli, params_without_grad, write_vgg_h5
from PIL import Image
from skimage import data as skdata

from translate.config import SrConfig, load_config, replace, to_dict
from translate.data.resize import imresize
from translate.data.sr import SRDataset, bicubic_down, collate
from translate.errors import TranslateError
from translate.eval.image_metrics import psnr
from translate.eval.sr import evaluate_sr, pair_key, save_sr_result
from translate.infer import SRPipeline, run_folder
from translate.infer.sr import ramp, tile_starts
from translate.modelfile import load_model, save_model
from translate.nets.resnet import ResnetGenerator
from translate.nets.sr import SRGenerator
from translate.nets.vgg import load_vgg16_h5
from translate.runtime import Precision
from translate.train.checkpoint import load_checkpoint
from translate.train.perceptual import PerceptualLoss
from translate.train.sr import SrTask

CONFIGS = Path(__file__).parents[1] / "configs"
SET5 = SHARED_DATA / "sr" / "Set5_modcrop"
TINY_NET = ["--set", "model.nf=8", "--set", "model.n_blocks=2"]


def _photo_folder(folder: Path, size: tuple[int, int] = (64, 48), n: int = 3) -> Path:
    """``n`` real photo crops (scikit-image's bundled photos) of ``size`` (w, h)."""
    folder.mkdir(parents=True, exist_ok=True)
    photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee()]
    w, h = size
    for i in range(n):
        img = photos[i % 3]
        top = 40 + 10 * i
        Image.fromarray(img[top : top + h, 100 : 100 + w]).save(folder / f"img{i}.png")
    return folder


def _tiny_config(root: Path, **train) -> SrConfig:
    cfg = load_config("sr", overrides=[
        f"data.root={root}", "model.nf=8", "model.n_blocks=2", "data.hr_size=32",
        "data.repeat=2", "train.batch_size=4", "train.ema=0",
    ])
    return replace(cfg, train=replace(cfg.train, **train)) if train else cfg


def _tiny_model(folder: Path, scale: int = 4, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    net = SRGenerator(scale, nf=8, n_blocks=2)
    # Random, not near-identity, weights: tiling must match for a net that does something.
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    save_model(folder, "sr", {"G": net},
               {"value_range": [0.0, 1.0], "scale": scale, "channels": 3,
                "receptive_radius": net.receptive_radius})
    return folder


# ── The network.


@pytest.mark.parametrize(("upsampler", "block"),
                         [("pixelshuffle", "residual"), ("lite", "residual"),
                          pytest.param("lite", "rrdb", marks=pytest.mark.slow)])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_generator_shapes_at_odd_sizes_and_gradients(scale: int, upsampler: str,
                                                     block: str) -> None:
    torch.manual_seed(0)
    net = SRGenerator(scale, nf=8, n_blocks=2, upsampler=upsampler, block=block, gc=4)
    x = torch.rand(2, 3, 7, 9)
    y = net(x)
    assert y.shape == (2, 3, 7 * scale, 9 * scale)
    assert torch.isfinite(y).all()
    y.abs().mean().backward()
    missing = params_without_grad(net)
    assert not missing, f"parameters without gradient: {missing}"


def test_generator_starts_near_bilinear_and_rejects_bad_arguments() -> None:
    torch.manual_seed(0)
    net = SRGenerator(2, nf=8, n_blocks=2)
    x = torch.rand(1, 3, 12, 10)
    bilinear = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear")
    # The image skip plus the small tail init: the untrained net is bilinear plus a little.
    assert (net(x) - bilinear).abs().mean() < 0.05
    assert SRGenerator(4, nf=8, n_blocks=2, image_skip=False)(x).shape == (1, 3, 48, 40)
    with pytest.raises(ValueError, match="scale must be one of"):
        SRGenerator(5)
    with pytest.raises(ValueError, match="in_ch == out_ch"):
        SRGenerator(2, in_ch=1, out_ch=3)
    with pytest.raises(ValueError, match="upsampler must be one of"):
        SRGenerator(2, upsampler="deconv")
    with pytest.raises(ValueError, match="block must be one of"):
        SRGenerator(2, block="dense")


def test_parameter_count_of_edsr_baseline_size() -> None:
    # nf 64, 16 blocks, ×4: head 1,792 + 16 blocks × 73,856 + body conv 36,928 + two
    # ×2 stages × 147,712 + tail 1,731 = 1,517,571 (EDSR-baseline ×4 without mean shift).
    net = SRGenerator(4, nf=64, n_blocks=16)
    assert sum(p.numel() for p in net.parameters()) == 1_517_571
    # "lite": the stages and tail become one conv 64 → 3·16 (27,696): 1,248,112.
    lite = SRGenerator(4, nf=64, n_blocks=16, upsampler="lite")
    assert sum(p.numel() for p in lite.parameters()) == 1_248_112
    # ESRGAN's RRDBNet: 16,697,987 parameters at nf 64, gc 32, 23 blocks; ours differs only in
    # the ×4 upsampler (EDSR's shuffle stages 295,424 + tail 1,731 for its two nearest+conv
    # pairs 73,856, HR conv 36,928 and last conv 1,731).
    rrdb = SRGenerator(4, nf=64, n_blocks=23, block="rrdb", gc=32)
    expected = 16_697_987 - 73_856 - 36_928 - 1_731 + 295_424 + 1_731
    assert sum(p.numel() for p in rrdb.parameters()) == expected


# ── Config.


def test_shipped_yaml_equals_the_dataclass_defaults_and_lists_every_key() -> None:
    path = CONFIGS / "sr.yaml"
    assert load_config("sr", path=path) == SrConfig()
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == to_dict(SrConfig())


def test_cpu_config_loads() -> None:
    cfg = load_config("sr", path=CONFIGS / "sr_x4_cpu.yaml")
    assert (cfg.model.scale, cfg.model.upsampler, cfg.data.hr_size % cfg.model.scale) == (
        4, "lite", 0)


@pytest.mark.parametrize(("override", "message"), [
    ("data.hr_size=30", "'data.hr_size': 30 is not a multiple of model.scale=4"),
    ("model.scale=5", "'model.scale'"),
    ("train.gan_loss=wgan", "'train.gan_loss'"),
    ("loss.gan_loss=ragan", "unknown config key 'loss.gan_loss'"),
    ("data.jpeg=99", "'data.jpeg'"),
    ("data.colour=1", "unknown config key 'data.colour'"),
    ("loss.perceptual=-1", "'loss.perceptual': must be >= 0, got -1"),
    ("loss.perceptual_block=6", "'loss.perceptual_block': must be in [1, 5], got 6"),
])
def test_bad_config_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(TranslateError, match=re.escape(message)):
        load_config("sr", overrides=[override])


# ── Data.


def test_dataset_items_are_seeded_crops_with_bicubic_lr(tmp_path: Path) -> None:
    root = _photo_folder(tmp_path / "hr")
    ds = SRDataset(root, scale=4, hr_size=32, repeat=2, seed=1)
    assert len(ds) == 6
    item = ds[(0, 3)]
    assert item["hr"].shape == (3, 32, 32) and item["lr"].shape == (3, 8, 8)
    # LR = antialiased bicubic ↓ of the HR crop, quantised to 8 bits.
    expected = (bicubic_down(item["hr"], 4).clamp(0, 1) * 255).round() / 255
    assert torch.equal(item["lr"], expected)
    again = SRDataset(root, scale=4, hr_size=32, repeat=2, seed=1, cache=False)[(0, 3)]
    assert torch.equal(item["hr"], again["hr"])  # same key → same item, cached or not
    other = _photo_folder(tmp_path / "more", n=2)
    assert len(SRDataset(f"{root},{other}", scale=4, hr_size=32)) == 5  # several folders
    assert not torch.equal(item["hr"], ds[(1, 3)]["hr"])  # another epoch → another crop
    batch = collate([ds[(0, i)] for i in range(4)])
    assert batch["lr"].shape == (4, 3, 8, 8) and batch["hr"].shape == (4, 3, 32, 32)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_training_lr_is_matlab_bicubic_away_from_the_border(scale: int) -> None:
    # torch's antialiased bicubic and MATLAB imresize differ only in border handling.
    a = np.random.default_rng(scale).random((12 * scale, 10 * scale, 3))
    matlab = imresize(a, scale=1 / scale)
    ours = bicubic_down(torch.from_numpy(a).permute(2, 0, 1), scale).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours[2:-2, 2:-2], matlab[2:-2, 2:-2], atol=1e-12)


def test_degradations_change_the_lr_deterministically(tmp_path: Path) -> None:
    root = _photo_folder(tmp_path / "hr")
    clean = SRDataset(root, scale=2, hr_size=32, seed=0)[(0, 0)]
    kwargs = dict(scale=2, hr_size=32, seed=0, blur=2.0, noise=10.0, jpeg=30)
    a = SRDataset(root, **kwargs)[(0, 0)]
    b = SRDataset(root, **kwargs)[(0, 0)]
    assert torch.equal(a["hr"], clean["hr"])  # the target stays clean
    assert torch.equal(a["lr"], b["lr"])
    assert (a["lr"] - clean["lr"]).abs().mean() > 1 / 255


def test_dataset_bad_input_is_named(tmp_path: Path) -> None:
    with pytest.raises(TranslateError, match="not found"):
        SRDataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TranslateError, match="holds no images"):
        SRDataset(tmp_path / "empty")
    small = _photo_folder(tmp_path / "small", size=(20, 20), n=1)
    with pytest.raises(TranslateError, match=r"img0.png: 20x20 is smaller than .*hr_size=32"):
        SRDataset(small, scale=4, hr_size=32)


# ── Training.


@pytest.mark.slow
def test_l1_stage_overfits_a_fixed_batch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    task = SrTask(_tiny_config(_photo_folder(tmp_path / "hr"), lr=2e-3), torch.device("cpu"))
    assert task.discriminators == [] and task.opt_d is None  # stage 1: G step only
    batch = collate([task.dataset[(0, i)] for i in range(4)])
    precision = Precision("fp32", torch.device("cpu"))
    with torch.no_grad():
        bilinear = torch.nn.functional.interpolate(batch["lr"], scale_factor=4, mode="bilinear")
        start = float((bilinear - batch["hr"]).abs().mean())
    losses = [task.train_step(batch, precision)["l1"] for _ in range(150)]
    assert set(task.train_step(batch, precision)) == {"l1"}
    # Memorising 4 crops: well below where interpolation starts.
    assert min(losses[-10:]) < 0.7 * start, (start, losses[::15])


@pytest.mark.slow
def test_gan_stage_starts_from_the_l1_run_and_trains_d_and_g(tmp_path: Path) -> None:
    root = _photo_folder(tmp_path / "hr")
    stage1 = SrTask(_tiny_config(root), torch.device("cpu"))
    nets, meta = stage1.export()
    save_model(tmp_path / "stage1", "sr", nets, meta)
    cfg = _tiny_config(root)
    cfg = replace(cfg, model=replace(cfg.model, init_from=str(tmp_path / "stage1"), ndf=8),
                  loss=replace(cfg.loss, gan=True))
    torch.manual_seed(123)  # another seed: the weights must come from stage 1, not the seed
    task = SrTask(cfg, torch.device("cpu"))
    for a, b in zip(task.G.parameters(), stage1.G.parameters(), strict=True):
        assert torch.equal(a, b)
    assert task.D is not None and task.opt_d is not None
    batch = collate([task.dataset[(0, i)] for i in range(4)])
    d_before = [p.detach().clone() for p in task.D.parameters()]
    logs = task.train_step(batch, Precision("fp32", torch.device("cpu")))
    assert set(logs) == {"D", "l1", "adv"} and all(np.isfinite(v) for v in logs.values())
    assert any(not torch.equal(a, b) for a, b in zip(d_before, task.D.parameters(), strict=True))
    # A stage-1 model of other widths, or of another task, is refused with its path named.
    other = replace(cfg, model=replace(cfg.model, nf=16))
    with pytest.raises(TranslateError, match="differs from the config's"):
        SrTask(other, torch.device("cpu"))
    save_model(tmp_path / "cg", "cyclegan", {"G_AB": ResnetGenerator(ngf=4, n_blocks=1)}, {})
    wrong = replace(cfg, model=replace(cfg.model, init_from=str(tmp_path / "cg")))
    with pytest.raises(TranslateError, match="holds a 'cyclegan' model"):
        SrTask(wrong, torch.device("cpu"))


# ── The perceptual term (a tiny random VGG16-layout network written as HED's h5 file).


def test_perceptual_loss_compares_one_blocks_maps_and_trains_only_the_fake(tmp_path: Path) -> None:
    write_vgg_h5(tmp_path / "vgg.h5")
    net = load_vgg16_h5(tmp_path / "vgg.h5", size=None)
    loss = PerceptualLoss(net, block=3)
    torch.manual_seed(0)
    real = torch.rand(2, 3, 20, 28)
    fake = (real + 0.1 * torch.randn_like(real)).requires_grad_(True)
    assert float(loss(real, real)) == 0.0
    value = loss(fake, real)
    got = float(value.detach())
    with torch.no_grad():  # conv_maps: every block's output, by the path tested in eval
        want = (net.conv_maps(fake)[2] - net.conv_maps(real)[2]).abs().mean() / 255
        other = (net.conv_maps(fake)[1] - net.conv_maps(real)[1]).abs().mean() / 255
    assert got > 0
    assert got == pytest.approx(float(want), rel=1e-5)
    assert got != pytest.approx(float(other), rel=1e-3)  # block 3, not block 2
    value.backward()
    assert fake.grad is not None and float(fake.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    loss.train()
    assert not net.training  # the feature network stays in eval mode
    for block in (0, 6):
        with pytest.raises(ValueError, match="block must be in 1..5"):
            PerceptualLoss(net, block)


@pytest.mark.slow
def test_sr_task_adds_the_weighted_perceptual_term_and_never_saves_the_vgg(tmp_path: Path) -> None:
    write_vgg_h5(tmp_path / "vgg.h5")
    cfg = _tiny_config(_photo_folder(tmp_path / "hr"))
    cfg = replace(cfg, loss=replace(cfg.loss, perceptual=0.5, perceptual_block=2,
                                    perceptual_weights=str(tmp_path / "vgg.h5")))
    task = SrTask(cfg, torch.device("cpu"))
    batch = collate([task.dataset[(0, i)] for i in range(4)])
    with torch.no_grad():
        fake = task.generate(batch)
        losses = task.generator_losses(batch, fake)
        net = load_vgg16_h5(tmp_path / "vgg.h5", size=None)
        want = (net.conv_maps(fake)[1] - net.conv_maps(batch["hr"])[1]).abs().mean() / 255
    assert set(losses) == {"l1", "percep"}
    assert float(losses["percep"]) == pytest.approx(0.5 * float(want), rel=1e-5)
    logs = task.train_step(batch, Precision("fp32", torch.device("cpu")))
    assert set(logs) == {"l1", "percep"} and all(np.isfinite(v) for v in logs.values())
    assert set(task.networks()) == {"G"}  # the checkpoint holds no VGG
    missing = replace(cfg, loss=replace(cfg.loss, perceptual_weights=str(tmp_path / "no.h5")))
    with pytest.raises(TranslateError, match="'loss.perceptual_weights': VGG16 weights file not"):
        SrTask(missing, torch.device("cpu"))


def test_cli_perceptual_with_a_missing_weights_file_is_one_line_and_writes_nothing(
    tmp_path: Path,
) -> None:
    root = _photo_folder(tmp_path / "hr")
    result = invoke("train", "sr", "--out", tmp_path / "run", "--set", f"data.root={root}",
                    *TINY_NET, "--set", "data.hr_size=32", "--set", "train.steps=2",
                    "--set", "loss.perceptual=1", "--set",
                    f"loss.perceptual_weights={tmp_path / 'absent.h5'}", "-q")
    assert result.exit_code != 0
    assert error_line(result) == ("error: config key 'loss.perceptual_weights': VGG16 weights "
                                  f"file not found: {tmp_path / 'absent.h5'}")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_resume_in_a_fresh_process_is_bitwise_identical(tmp_path: Path) -> None:
    """Stage 2 (G, D, EMA): 8 steps straight == 4 steps + 4 resumed in a new process, across
    epoch boundaries (3 steps per epoch), so the (epoch, index)-keyed crops replay exactly."""
    root = _photo_folder(tmp_path / "hr")
    common = ["--set", f"data.root={root}", *TINY_NET, "--set", "data.hr_size=32",
              "--set", "data.repeat=2", "--set", "train.batch_size=2", "--set", "loss.gan=true",
              "--set", "model.ndf=8", "--set", "train.ema=0.9", "--set", "train.log_every=2",
              "-q"]
    for name, steps in (("straight", 8), ("split", 4)):
        fresh_cli(tmp_path, "train", "sr", "--out", name, "--set", f"train.steps={steps}",
                  *common)
    fresh_cli(tmp_path, "train", "sr", "--out", "split", "--resume", "-q", "--set",
              "train.steps=8")
    straight = load_checkpoint(tmp_path / "straight" / "state" / "last.pt")
    split = load_checkpoint(tmp_path / "split" / "state" / "last.pt")
    assert straight["step"] == split["step"] == 8 and straight["epoch"] == 2
    assert set(straight["networks"]) == {"G", "D", "G_ema"}
    assert_same_state(straight, split)


# ── Inference.


def test_tile_layout_covers_and_ramps_are_positive() -> None:
    assert tile_starts(10, 16, 4) == [0]
    assert tile_starts(40, 16, 4) == [0, 12, 24]
    starts = tile_starts(41, 16, 4)
    assert starts[-1] == 25 and all(b - a <= 12 for a, b in zip(starts, starts[1:], strict=False))
    w = ramp(8, 4, 2)
    assert w.tolist() == pytest.approx([1e-6, 0.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1e-6])
    # A tile's falling ramp and its neighbour's rising ramp over the same overlap sum to 1.
    total = ramp(12, 0, 8)[4:] + ramp(12, 8, 0)[:8]
    assert total.tolist() == pytest.approx([1.0] * 8, abs=2e-6)


@pytest.mark.parametrize("scale", [2, 4])
def test_tiled_matches_whole_image_within_one_level(tmp_path: Path, scale: int) -> None:
    model = load_model(_tiny_model(tmp_path / "m", scale))
    x = torch.rand(1, 3, 45, 53, generator=torch.Generator().manual_seed(0))
    whole = SRPipeline(model, "cpu", "fp32")(x)
    radius = model.meta["receptive_radius"]
    tiled = SRPipeline(model, "cpu", "fp32", tile=2 * radius + 8, tile_overlap=2 * radius)(x)
    assert whole.shape == tiled.shape == (1, 3, 45 * scale, 53 * scale)
    assert (whole - tiled).abs().max() <= 1 / 255
    # With almost no overlap the seams do show: the comparison above can fail.
    rough = SRPipeline(model, "cpu", "fp32", tile=2 * radius + 8, tile_overlap=1)(x)
    assert (whole - rough).abs().max() > 1 / 255


def test_outscale_resizes_the_output_and_bad_settings_are_refused(tmp_path: Path) -> None:
    model = load_model(_tiny_model(tmp_path / "m", 4))
    x = torch.rand(1, 3, 11, 13)
    assert SRPipeline(model, outscale=2.5)(x).shape == (1, 3, 28, 32)  # round(27.5), round(32.5)
    assert SRPipeline(model, outscale=4)(x).shape == (1, 3, 44, 52)
    for kwargs, message in [({"outscale": 0}, "--outscale must be > 0"),
                            ({"outscale": -2}, "--outscale must be > 0"),
                            ({"tile": 8, "tile_overlap": 8}, "must be larger than --tile-overlap"),
                            ({"tile": -1}, "must be >= 0")]:
        with pytest.raises(TranslateError, match=message):
            SRPipeline(model, **kwargs)
    with pytest.raises(ValueError, match=r"\(13x11\) is smaller than --tile-overlap 12"):
        SRPipeline(model, tile=20, tile_overlap=12)(x)


@pytest.mark.slow
def test_folder_inference_keeps_alpha_gray_and_16_bit(tmp_path: Path) -> None:
    model = load_model(_tiny_model(tmp_path / "m", 2))
    src = tmp_path / "in"
    src.mkdir()
    rgb = skdata.astronaut()[100:130, 200:240]  # (30, 40, 3)
    alpha = np.full((30, 40), 255, np.uint8)
    alpha[:, :20] = 0  # left half transparent
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(src / "rgba.png")
    Image.fromarray(rgb[..., 1]).save(src / "gray.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(src / "gray16.png")
    report = run_folder(SRPipeline(model, "cpu", "fp32", tile=16, tile_overlap=6), src,
                        tmp_path / "out", show_progress=False)
    assert report.written == 3 and not report.failures
    out = Image.open(tmp_path / "out" / "rgba.png")
    assert out.mode == "RGBA" and out.size == (80, 60)
    a = np.asarray(out)[..., 3]
    # Alpha upscaled: fully transparent / opaque away from the edge between them.
    assert (a[:, :36] == 0).all() and (a[:, 44:] == 255).all()
    gray = Image.open(tmp_path / "out" / "gray.png")
    assert gray.mode == "L" and gray.size == (80, 60)
    g16 = np.asarray(Image.open(tmp_path / "out" / "gray16.png"))
    assert g16.dtype == np.uint16 and g16.shape == (60, 80)
    # 16-bit kept: not just 8-bit values × 257.
    assert (g16 % 257 != 0).any()


def test_image_smaller_than_the_overlap_is_a_recorded_failure(tmp_path: Path) -> None:
    model_dir = _tiny_model(tmp_path / "m", 2)
    src = _photo_folder(tmp_path / "in", size=(40, 30), n=1)
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(src / "tiny.png")
    result = invoke("infer", model_dir, src, tmp_path / "out", "--tile", 16, "--tile-overlap", 8,
                    "-q")
    assert result.exit_code == 1
    assert "tiny.png" in result.output and "smaller than --tile-overlap 8" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["failures.jsonl", "img0.png"]


# ── Evaluation.


def test_pair_keys() -> None:
    assert pair_key("baby_HR_x4") == pair_key("baby_LRBI_x4") == "baby"
    assert pair_key("0001x4") == pair_key("0001") == "0001"
    assert pair_key("img_001") == "img_001"
    assert pair_key("head-lr") == "head"


def test_eval_scores_model_and_bicubic_on_generated_lr(tmp_path: Path) -> None:
    model = load_model(_tiny_model(tmp_path / "m", 2))
    hr_dir = _photo_folder(tmp_path / "hr", size=(41, 35), n=2)  # odd: mod-cropped to 40x34
    result = evaluate_sr(model, hr_dir, scale=2)
    assert [s.name for s in result.images] == ["img0.png", "img1.png"]
    hr = np.asarray(Image.open(hr_dir / "img0.png"))[:34, :40]
    lr = imresize(hr, scale=0.5)
    expected = psnr(imresize(lr, scale=2), hr, crop_border=2, y_channel=True)
    assert result.images[0].bicubic_psnr == pytest.approx(expected)
    saved = json.loads(save_sr_result(tmp_path / "m", result).read_text())
    (entry,) = saved.values()
    assert entry["n_images"] == 2 and entry["bicubic"]["psnr"] == pytest.approx(
        result.mean("bicubic_psnr"))
    with pytest.raises(TranslateError, match="upscales ×2 only"):
        evaluate_sr(model, hr_dir, scale=4)


def test_eval_bad_lr_pairs_are_named(tmp_path: Path) -> None:
    model = load_model(_tiny_model(tmp_path / "m", 2))
    hr_dir = _photo_folder(tmp_path / "hr", size=(40, 34), n=2)
    lr_dir = tmp_path / "lr"
    lr_dir.mkdir()
    Image.fromarray(np.zeros((17, 20, 3), np.uint8)).save(lr_dir / "img0x2.png")
    with pytest.raises(TranslateError, match="no LR image in .* pairs with img1.png"):
        evaluate_sr(model, hr_dir, lr_dir)
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(lr_dir / "img1_LR.png")
    with pytest.raises(TranslateError, match=r"img1_LR.png: 10x10 is not the ×2 LR of img1.png"):
        evaluate_sr(model, hr_dir, lr_dir)
    (hr_dir / "img1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(TranslateError, match="img1.png"):
        evaluate_sr(model, hr_dir)


# ── The CLI end to end.


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("sr")
    root = _photo_folder(base / "hr", size=(64, 48))
    run = base / "run"
    result = invoke("train", "sr", "--out", run, "--set", f"data.root={root}", *TINY_NET,
                    "--set", "data.hr_size=32", "--set", "train.batch_size=2",
                    "--set", "train.steps=6", "--set", "train.sample_every=3",
                    "--set", "train.checkpoint_every=3", "--set", "train.log_every=3", "-q")
    assert result.exit_code == 0, result.output
    return run


def test_cli_train_writes_an_sr_model(sr_run: Path) -> None:
    meta = json.loads((sr_run / "model.json").read_text())
    assert meta["task"] == "sr" and meta["scale"] == 4 and meta["value_range"] == [0.0, 1.0]
    assert meta["networks"]["G"]["class"] == "SRGenerator"
    assert meta["ema"] is True  # train.ema 0.999 by default: the EMA weights are exported
    assert (sr_run / "samples" / "step_0000006.png").is_file()
    assert len((sr_run / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_cli_infer_and_eval(sr_run: Path, tmp_path: Path) -> None:
    src = _photo_folder(tmp_path / "in", size=(30, 22), n=2)
    result = invoke("infer", sr_run, src, tmp_path / "out", "--outscale", 2, "-q")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "img1.png").size == (60, 44)
    if SET5.is_dir():
        hr, lr = SET5 / "hr" / "x4", SET5 / "lr_bicubic" / "x4"
        result = invoke("eval", sr_run, "--hr", hr, "--lr", lr, "--scale", 4, "--per-image")
    else:
        hr, lr = _photo_folder(tmp_path / "hr", size=(64, 48)), None
        result = invoke("eval", sr_run, "--hr", hr, "--scale", 4, "--per-image")
    assert result.exit_code == 0, result.output
    assert "bicubic PSNR" in result.output
    (entry,) = json.loads((sr_run / "eval_sr.json").read_text()).values()
    assert entry["scale"] == 4 and len(entry["per_image"]) == (5 if SET5.is_dir() else 3)
    if SET5.is_dir():
        assert entry["bicubic"]["psnr"] == pytest.approx(28.42, abs=0.05)


def test_cli_refuses_models_of_the_wrong_kind(sr_run: Path, tmp_path: Path) -> None:
    src = _photo_folder(tmp_path / "in", size=(30, 22), n=1)
    evals = sr_run / "eval_sr.json"
    before = evals.read_text() if evals.exists() else None
    masks = tmp_path / "masks"
    masks.mkdir()
    line = error_line(invoke("infer", sr_run, src, tmp_path / "o1", "--masks", masks))
    assert "--masks is for inpainting models" in line and "'sr'" in line
    line = error_line(invoke("infer", sr_run, src, tmp_path / "o2", "--outscale", 0))
    assert line == "error: --outscale 0: must be a finite number > 0"
    line = error_line(invoke("infer", sr_run, src, tmp_path / "o3", "--tile", 8,
                             "--tile-overlap", 8))
    assert "--tile 8 must be larger than --tile-overlap 8" in line
    cg = tmp_path / "cg"
    save_model(cg, "cyclegan", {"G_AB": ResnetGenerator(ngf=4, n_blocks=1)},
               {"value_range": [-1.0, 1.0], "directions": {"a2b": "G_AB"}, "size_multiple": 4})
    line = error_line(invoke("infer", cg, src, tmp_path / "o4", "--outscale", 2))
    assert "--outscale and --tile are for super-resolution models" in line
    line = error_line(invoke("eval", sr_run))
    assert "--hr DIR" in line
    line = error_line(invoke("eval", sr_run, "--hr", src, "--scale", 2))
    assert "upscales ×4 only" in line
    for out in ("o1", "o2", "o3", "o4"):
        assert not (tmp_path / out).exists()
    assert (evals.read_text() if evals.exists() else None) == before
