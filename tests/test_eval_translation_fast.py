"""The fast evaluation path: the VGG16 feature network with Winograd 3×3 convs and channels_last
(``fast_feature_net``), run on batches in file order, gives the features, FID and KID of the
plain network run one image at a time, within fp32 rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import count_modules, save_cyclegan, smooth_image, write_vgg_h5

import translate.eval.translation as tr
from translate.eval.features import VGG_PER_IMAGE_BLOCKS, fast_feature_net
from translate.eval.translation import evaluate_translation, features_in_order, fid_kid
from translate.io.images import write_image
from translate.modelfile import load_model
from translate.nets.resnet import ResnetGenerator
from translate.nets.vgg import load_vgg16_h5
from translate.nets.winograd import WinogradConv2d

# VGG16's block structure with 128-channel blocks 3–4, so the default threshold (128 in and out)
# converts conv3_2, conv3_3 and conv4_1–4_3; 8 features, so 20 images give full-rank covariances.
WIDE_BLOCKS = ((8, 8), (16, 16), (128, 128, 128), (128, 128, 128), (8, 8, 8))
N_WINOGRAD = 5


@pytest.fixture(scope="module")
def wide_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("vggwide") / "wide.weights.h5"
    write_vgg_h5(path, blocks=WIDE_BLOCKS, seed=3)
    return path


def _per_image(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([net(x[i : i + 1]) for i in range(len(x))])


def test_fast_net_converts_the_wide_convs_and_leaves_the_original(wide_h5: Path) -> None:
    net = load_vgg16_h5(wide_h5, size=48)
    fast = fast_feature_net(net, "cpu")
    assert fast is not net and count_modules(net, WinogradConv2d) == 0
    assert count_modules(fast, WinogradConv2d) == N_WINOGRAD
    assert (net.per_image_blocks, fast.per_image_blocks) == (0, VGG_PER_IMAGE_BLOCKS)
    assert [isinstance(c, WinogradConv2d) for c in fast.blocks[2]] == [False, True, True]
    assert fast.conv_maps(torch.rand(1, 3, 48, 48))[0].is_contiguous(
        memory_format=torch.channels_last)
    # all but conv1_1, whose input has 3 channels
    assert count_modules(fast_feature_net(net, "cpu", min_channels=8), WinogradConv2d) == 12
    # Other networks and devices are left as they are.
    assert fast_feature_net(net, "meta") is net
    other = torch.nn.Conv2d(3, 3, 3)
    assert fast_feature_net(other, "cpu") is other


@pytest.mark.slow
def test_fast_batched_features_equal_plain_per_image_features(wide_h5: Path) -> None:
    net = load_vgg16_h5(wide_h5, size=48)
    fast = fast_feature_net(net, "cpu")
    g = torch.Generator().manual_seed(0)
    real, fake = torch.rand(20, 3, 40, 40, generator=g), torch.rand(20, 3, 40, 40, generator=g)
    fake = (fake * 0.7 + 0.2).clamp(0, 1)  # another distribution: a non-zero FID to compare
    want = {"real": _per_image(net, real), "fake": _per_image(net, fake)}
    got = {"real": fast(real), "fake": torch.cat([fast(fake[:8]), fast(fake[8:])])}
    for key in want:
        assert got[key].shape == (20, 8)
        # the features vary (some ReLUs of a random net are dead): the comparison means something
        assert (want[key].std(0) > 1e-2).sum() >= 4
        err = (got[key] - want[key]).abs().max() / want[key].abs().max()
        assert err < 1e-5, key
    fid, kid, kid_std = fid_kid(want["real"].double(), want["fake"].double())
    fid_fast, kid_fast, kid_std_fast = fid_kid(got["real"].double(), got["fake"].double())
    assert fid > 1e-3 and kid > 0
    assert fid_fast == pytest.approx(fid, rel=1e-3)
    assert kid_fast == pytest.approx(kid, rel=1e-3)
    # 20 of 20 in every subset: the std is rounding noise, compared on KID's own scale
    assert abs(kid_std_fast - kid_std) <= 1e-3 * kid


@pytest.mark.parametrize("per_image_blocks", [0, 1, 3, 5])
def test_per_image_blocks_changes_only_the_order_of_work(wide_h5: Path,
                                                         per_image_blocks: int) -> None:
    net = load_vgg16_h5(wide_h5, size=32)
    net.per_image_blocks = per_image_blocks
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    want = torch.cat([net.conv_maps(x[i : i + 1].float() / 255)[-1] for i in range(3)])
    got = net(x)
    torch.testing.assert_close(got, want.mean(dim=(2, 3)) * net.scale, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.rand(3, 32, 32))


class _Recorder(torch.nn.Module):
    """Sums each image's pixels and its size into a 2-d feature; records the batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(len(x))
        return torch.stack([x.sum(dim=(1, 2, 3)), torch.full((len(x),), float(x.shape[-1]))], 1)


def test_features_in_order_batches_by_size_and_keeps_the_order() -> None:
    g = torch.Generator().manual_seed(0)
    widths = [16, 20, 16, 16, 20, 16, 16, 24]
    images = [torch.rand(1, 3, 16, w, generator=g) for w in widths]
    rec = _Recorder()
    rows = features_in_order(rec, images, torch.device("cpu"), batch=3)
    assert sorted(rec.batches) == [1, 2, 2, 3]  # 16 px: 3 + 2, 20 px: 2, 24 px: 1
    assert [int(r[1]) for r in rows] == widths
    torch.testing.assert_close(torch.stack([r[0] for r in rows]),
                               torch.stack([i.sum() for i in images]))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fastev")
    rng = np.random.default_rng(0)
    for domain, n in (("A", 11), ("B", 12)):
        for i in range(n):
            write_image(root / domain / f"{i:02d}.png", smooth_image(rng, 36, dark=domain == "B"))
    torch.manual_seed(0)
    nets = {k: ResnetGenerator(ngf=8, n_blocks=2) for k in ("G_AB", "G_BA")}
    with torch.no_grad():  # weights of unit-ish scale, so translations differ from the input
        for p in nets["G_AB"].parameters():
            p.normal_(0, 0.1)
    save_cyclegan(root / "model", nets["G_AB"], nets["G_BA"])
    return root


@pytest.mark.slow
def test_evaluate_translation_fast_path_equals_the_per_image_plain_path(
        folders: Path, wide_h5: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model(folders / "model")
    used: list[torch.nn.Module] = []
    real_fast = tr.fast_feature_net

    def spy(features: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        used.append(real_fast(features, device))
        return used[-1]

    monkeypatch.setattr(tr, "fast_feature_net", spy)
    net = load_vgg16_h5(wide_h5, size=48)
    args = (model, folders / "A", folders / "B", net, "FID-VGG16")
    old = evaluate_translation(*args, show_progress=False, feature_batch=1,
                               fast_features=False).as_dict()
    assert used == []
    new = evaluate_translation(*args, show_progress=False).as_dict()  # defaults: fast, batch 8
    assert len(used) == 1 and count_modules(used[0], WinogradConv2d) == N_WINOGRAD
    assert count_modules(net, WinogradConv2d) == 0  # the caller's network is not converted
    assert old["features"] == new["features"]
    for direction in ("a2b", "b2a"):
        o, n = old["directions"][direction], new["directions"][direction]
        assert o["fid"] > 1e-3 and o["input_fid"] > 1e-3
        for key in ("fid", "kid_mean", "input_fid", "input_kid_mean"):
            assert n[key] == pytest.approx(o[key], rel=1e-3), (direction, key)
        for key, mean in (("kid_std", "kid_mean"), ("input_kid_std", "input_kid_mean")):
            assert abs(n[key] - o[key]) <= 1e-3 * abs(o[mean]), (direction, key)
        for key in ("n_source", "n_target", "cycle_psnr", "cycle_ssim"):
            assert n[key] == o[key], (direction, key)  # the generators are the same
    with pytest.raises(ValueError, match="feature_batch"):
        evaluate_translation(*args, show_progress=False, feature_batch=0)
