"""``translate import``: reference and vintagify CycleGAN generator weights → a model folder.

The reference layout is checked against a faithful copy of the reference's ``ResnetGenerator``
(junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py``) at tiny widths with random
weights; the vintagify layout against a real trained generator and vintagify's own network class,
on real photos through ``translate infer``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tests.conftest import SHARED_DATA, error_line, invoke
from translate.importer import key_map, read_state_dict, to_generator
from translate.modelfile import load_model
from translate.nets.patchgan import PatchDiscriminator

# --- the reference's generator, as its models/networks.py writes it ------------------------


class RefResnetBlock(nn.Module):
    def __init__(self, dim: int, norm_layer, use_dropout: bool, use_bias: bool):
        super().__init__()
        block = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=use_bias),
                 norm_layer(dim), nn.ReLU(True)]
        if use_dropout:
            block += [nn.Dropout(0.5)]
        block += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=use_bias),
                  norm_layer(dim)]
        self.conv_block = nn.Sequential(*block)

    def forward(self, x):
        return x + self.conv_block(x)


class RefResnetGenerator(nn.Module):
    def __init__(self, input_nc=3, output_nc=3, ngf=64, affine=False, use_dropout=False,
                 n_blocks=9):
        super().__init__()
        norm_layer = functools.partial(nn.InstanceNorm2d, affine=affine,
                                       track_running_stats=False)
        use_bias = norm_layer.func == nn.InstanceNorm2d
        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, padding=0, bias=use_bias),
                 norm_layer(ngf), nn.ReLU(True)]
        for i in range(2):
            mult = 2**i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1,
                                bias=use_bias), norm_layer(ngf * mult * 2), nn.ReLU(True)]
        model += [RefResnetBlock(ngf * 4, norm_layer, use_dropout, use_bias)
                  for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            model += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1,
                                         output_padding=1, bias=use_bias),
                      norm_layer(ngf * mult // 2), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


def reference_net(seed: int, affine: bool, dropout: bool = False) -> RefResnetGenerator:
    """ngf 8, 2 blocks, random weights (norm scales and shifts far from 1 and 0)."""
    torch.manual_seed(seed)
    net = RefResnetGenerator(ngf=8, n_blocks=2, affine=affine, use_dropout=dropout)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() == 1:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
            else:
                p.normal_(0, 0.1)
    return net.eval()


def assert_matches(imported: nn.Module, reference: nn.Module) -> None:
    x = torch.rand(2, 3, 32, 44, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        want, got = reference(x), imported(x)
    assert (want - got).abs().max().item() < 1e-5
    assert want.std() > 0.05  # not a saturated or constant output that anything would match


# --- the reference layout ------------------------------------------------------------------


@pytest.mark.parametrize("affine, dropout", [(False, False), (True, False), (False, True)])
def test_reference_layout_imports_exactly(tmp_path, affine, dropout):
    ref = reference_net(1, affine, dropout)
    weights = tmp_path / "latest_net_G_A.pth"
    torch.save(ref.state_dict(), weights)
    out = tmp_path / "ref"
    result = invoke("import", weights, "--out", out)
    assert result.exit_code == 0, result.output
    model = load_model(out)
    assert model.task == "cyclegan"
    assert model.meta["directions"] == {"a2b": "G_AB"}
    assert model.meta["value_range"] == [-1.0, 1.0] and model.meta["size_multiple"] == 4
    source = model.meta["imported"]["from"]["a2b"]
    assert source["file"] == "latest_net_G_A.pth" and source["layout"] == "reference"
    assert source["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert source["dropout"] is dropout
    net = model.networks["G_AB"]
    assert net.config["norm"] == ("instance_affine" if affine else "instance")
    assert (net.config["ngf"], net.config["n_blocks"]) == (8, 2)
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in ref.parameters())
    assert_matches(net, ref)


def test_a_pair_gives_both_directions_and_exports(tmp_path):
    ref_a, ref_b = reference_net(2, affine=False), reference_net(3, affine=False)
    a, b = tmp_path / "latest_net_G_A.pth", tmp_path / "latest_net_G_B.pth"
    # DataParallel prefixes, and a checkpoint dict holding the state dict: both are read.
    torch.save({f"module.{k}": v for k, v in ref_a.state_dict().items()}, a)
    torch.save({"state_dict": ref_b.state_dict(), "epoch": torch.tensor(200)}, b)
    out = tmp_path / "pair"
    result = invoke("import", a, "--b2a", b, "--out", out, "--name", "tiny")
    assert result.exit_code == 0, result.output
    model = load_model(out)
    assert model.meta["directions"] == {"a2b": "G_AB", "b2a": "G_BA"}
    assert model.meta["name"] == "tiny"
    assert_matches(model.networks["G_AB"], ref_a)
    assert_matches(model.networks["G_BA"], ref_b)
    exported = invoke("export", out, "--format", "onnx", "--size", "32", "--direction", "b2a",
                      "--out", tmp_path / "b2a.onnx")
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "b2a.onnx").is_file()


def test_one_generator_can_be_b2a(tmp_path):
    weights = tmp_path / "latest_net_G_B.pth"
    torch.save(reference_net(4, affine=True).state_dict(), weights)
    result = invoke("import", weights, "--direction", "b2a", "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    assert load_model(tmp_path / "b").meta["directions"] == {"b2a": "G_BA"}
    contradiction = invoke("import", weights, "--direction", "b2a", "--b2a", weights,
                           "--out", tmp_path / "c")
    assert contradiction.exit_code != 0 and "--b2a" in error_line(contradiction)
    help_text = invoke("import", "--help")
    assert help_text.exit_code == 0 and "Example: translate import" in help_text.output


def test_old_instance_norm_running_stats_are_dropped(tmp_path):
    # PyTorch < 0.4 saved running statistics for InstanceNorm; the reference's loader drops them.
    ref = reference_net(5, affine=False)
    state = ref.state_dict()
    for norm, ch in (("model.2", 8), ("model.10.conv_block.2", 32), ("model.13", 16)):
        state[f"{norm}.running_mean"] = torch.zeros(ch)
        state[f"{norm}.running_var"] = torch.ones(ch)
    path = tmp_path / "old.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)  # as PyTorch < 1.6 wrote it
    net, spec = to_generator(read_state_dict(path), path)
    assert (spec.layout, spec.affine) == ("reference", False)
    assert_matches(net, ref)


def test_every_parameter_is_mapped_once():
    from translate.importer import GeneratorSpec
    from translate.nets.resnet import ResnetGenerator

    for affine in (False, True):
        spec = GeneratorSpec("reference", 3, 3, 8, 3, affine, False)
        mapping = key_map(spec)
        own = ResnetGenerator(ngf=8, n_blocks=3, norm=spec.norm).state_dict()
        assert sorted(mapping.values()) == sorted(own)
        ref = RefResnetGenerator(ngf=8, n_blocks=3, affine=affine).state_dict()
        assert sorted(mapping) == sorted(ref)


# --- files that are not such weights -------------------------------------------------------


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    zeros = tmp_path / "zeros.pth"
    zeros.write_bytes(bytes(4096))
    other = tmp_path / "latest_net_D_A.pth"
    torch.save(PatchDiscriminator(ndf=8).state_dict(), other)
    pickled = tmp_path / "whole_module.pth"
    torch.save(RefResnetGenerator(ngf=8, n_blocks=2), pickled)  # the module, not a state dict
    wrong = reference_net(6, affine=False).state_dict()
    wrong["model.10.conv_block.5.weight"] = torch.zeros(32, 32, 1, 1)
    wrong_shape = tmp_path / "wrong_shape.pth"
    torch.save(wrong, wrong_shape)
    short = reference_net(7, affine=False).state_dict()
    del short["model.15.bias"]  # the second transposed conv
    missing = tmp_path / "missing.pth"
    torch.save(short, missing)
    return {
        "text": (text, "not a PyTorch checkpoint"),
        "zeros": (zeros, "not a PyTorch checkpoint"),
        "other network": (other, "neither a CycleGAN ResNet generator nor an architecture "
                                 "spandrel knows"),
        "pickle": (pickled, "RefResnetGenerator); only plain state dicts are imported"),
        "wrong shape": (wrong_shape, "model.10.conv_block.5.weight has shape (32, 32, 1, 1)"),
        "missing key": (missing, "missing keys model.15.bias"),
    }


@pytest.mark.parametrize("case", ["text", "zeros", "other network", "pickle", "wrong shape",
                                  "missing key"])
def test_bad_files_give_one_line_and_no_folder(tmp_path, case):
    path, message = _bad_files(tmp_path)[case]
    out = tmp_path / "runs" / "imported"
    result = invoke("import", path, "--out", out)
    assert result.exit_code != 0
    line = error_line(result)
    assert str(path) in line and message in line, line
    assert not out.exists()


def test_an_existing_model_is_kept_unless_overwrite(tmp_path):
    weights = tmp_path / "g.pth"
    torch.save(reference_net(8, affine=False).state_dict(), weights)
    out = tmp_path / "run"
    assert invoke("import", weights, "--out", out).exit_code == 0
    before = (out / "model.safetensors").read_bytes()
    again = invoke("import", weights, "--out", out)
    assert again.exit_code != 0 and "--overwrite" in error_line(again)
    assert (out / "model.safetensors").read_bytes() == before
    assert invoke("import", weights, "--out", out, "--overwrite").exit_code == 0


# --- a real trained generator: vintagify's ------------------------------------------------

PHOTOS = SHARED_DATA / "monet2photo" / "testB"


def _vintagify_dir() -> Path | None:
    spec = importlib.util.find_spec("vintagify")  # finds it without running its __init__
    return Path(spec.submodule_search_locations[0]) if spec else None


def _vintagify_generator_class() -> type[nn.Module]:
    # Its package __init__ pulls in matplotlib (not installed: --no-deps); its generator
    # module needs only torch, so load that file alone.
    spec = importlib.util.spec_from_file_location("vintagify_generator",
                                                  _vintagify_dir() / "generator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ResnetGenerator


@pytest.mark.slow
@pytest.mark.skipif(_vintagify_dir() is None,
                    reason="vintagify is not installed (scripts/setup.sh installs it, --no-deps)")
@pytest.mark.skipif(not PHOTOS.is_dir(), reason=f"no photos at {PHOTOS} (../shared/data)")
def test_vintagify_weights_through_translate_infer(tmp_path):
    weights = _vintagify_dir() / "resources" / "G_A2B_epoch33.pth"
    out = tmp_path / "vintagify"
    result = invoke("import", weights, "--out", out)
    assert result.exit_code == 0, result.output
    description = json.loads((out / "model.json").read_text())
    assert description["networks"]["G_AB"]["args"]["norm"] == "instance_affine"
    assert description["imported"]["from"]["a2b"]["layout"] == "vintagify"
    model = load_model(out)
    assert sum(p.numel() for p in model.networks["G_AB"].parameters()) == 11_388_675

    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted(PHOTOS.glob("*.jpg"))[:3]:
        (photos / path.name).write_bytes(path.read_bytes())
    result = invoke("infer", out, photos, tmp_path / "vintage", "--ext", "png", "--quiet")
    assert result.exit_code == 0, result.output

    theirs = _vintagify_generator_class()()
    theirs.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    theirs.eval()
    worst = 0
    for path in sorted(photos.iterdir()):
        rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None] * 2 - 1  # their Normalize(0.5, 0.5)
        with torch.no_grad():
            y = ((theirs(x)[0] + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy()
        want = np.rint(y * 255).astype(int)
        got = np.asarray(Image.open(tmp_path / "vintage" / f"{path.stem}.png"), dtype=int)
        assert got.shape == want.shape
        worst = max(worst, int(np.abs(got - want).max()))
    assert worst <= 1, f"max difference {worst}/255"
