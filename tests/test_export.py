"""`translate export` (ONNX, TorchScript, safetensors) and `translate infer` on an exported ONNX
model: equivalence with PyTorch at odd sizes through one dynamic graph, metadata round trips,
same files as PyTorch inference, and bad input refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import error_line, invoke
from helpers import save_cyclegan
from PIL import Image
from safetensors import safe_open

from translate import __version__
from translate.errors import TranslateError
from translate.export import check as export_check
from translate.export import export_model, load_exported_network, parse_size
from translate.infer import OnnxPipeline, PadCrop
from translate.io.images import write_image
from translate.modelfile import load_model, save_model
from translate.nets.inpaint import InpaintGenerator
from translate.nets.layers import crop_to, pad_to_multiple
from translate.nets.mlp import MLPGenerator
from translate.nets.resnet import ResnetGenerator
from translate.nets.sr import SRGenerator
from translate.nets.vae import VAE

TOL = 1e-3


def _perturb(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Move every weight off its initialisation, so outputs depend on all of them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return net


def _cyclegan(folder: Path) -> Path:
    return save_cyclegan(folder, _perturb(ResnetGenerator(ngf=8, n_blocks=2), 1),
                         _perturb(ResnetGenerator(ngf=8, n_blocks=2), 2))


@pytest.fixture(scope="module")
def cyclegan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _cyclegan(tmp_path_factory.mktemp("export") / "cyclegan")


@pytest.fixture(scope="module")
def gan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export") / "gan"
    net = _perturb(MLPGenerator(hidden=(16, 32)), 3).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics: eval mode must use them
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    save_model(folder, "gan", {"G": net}, {"value_range": [-1.0, 1.0],
                                                   "latent_dim": 100})
    return folder


@pytest.fixture(scope="module")
def a2b_onnx(cyclegan: Path) -> Path:
    """G_AB exported once with dynamic axes, through the CLI."""
    result = invoke("export", cyclegan, "--format", "onnx", "--dynamic", "--direction", "a2b")
    assert result.exit_code == 0, result.output
    return cyclegan / "export" / "G_AB.onnx"


@pytest.fixture(scope="module")
def gan_onnx(gan: Path) -> Path:
    [exported] = export_model(gan, "onnx", dynamic=True)
    return exported.path


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _reference(net: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """What PyTorch inference computes: pad to a multiple of 4, run, crop back."""
    padded, size = pad_to_multiple(x, 4)
    with torch.no_grad():
        return crop_to(net(padded), size).numpy()


def _max_err(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a - b).max())


# ── ONNX equivalence, one dynamic graph at several odd sizes.


def test_cyclegan_onnx_matches_pytorch_at_odd_sizes(cyclegan: Path, a2b_onnx: Path) -> None:
    assert a2b_onnx.is_file() and not (cyclegan / "export" / "G_BA.onnx").exists()
    session = _session(a2b_onnx)
    [inp] = session.get_inputs()
    assert inp.shape == ["batch", 3, "height", "width"]
    net = load_model(cyclegan).networks["G_AB"]
    g = torch.Generator().manual_seed(7)
    # Sizes the export's own check did not use, batch sizes 1–3, none a multiple of 4.
    for shape in [(1, 3, 37, 53), (3, 3, 45, 19), (2, 3, 61, 66)]:
        x = torch.rand(shape, generator=g) * 2 - 1
        (y,) = session.run(None, {"image": x.numpy()})
        assert y.shape == shape
        assert _max_err(y, _reference(net, x)) <= TOL
        assert y.std() > 0.05  # a real image came out, not a constant


def test_export_prints_and_saves_the_check(cyclegan: Path, a2b_onnx: Path) -> None:
    meta = {p.key: p.value for p in onnx.load(a2b_onnx).metadata_props}
    check = json.loads(meta["check"])
    assert [c["shape"] for c in check] == ["1x3x37x53", "2x3x29x70"]
    assert all(0 <= c["max_abs_error"] <= TOL for c in check)
    log = json.loads((cyclegan / "export.json").read_text("utf-8"))
    assert log[str(a2b_onnx)]["check"] == check
    assert log[str(a2b_onnx)]["exporter"] == meta["exporter"] == "dynamo"


def test_onnx_metadata_round_trips(cyclegan: Path, a2b_onnx: Path) -> None:
    meta = {p.key: p.value for p in onnx.load(a2b_onnx).metadata_props}
    assert meta["format"] == "translate-export"
    assert meta["task"] == "cyclegan" and meta["direction"] == "a2b"
    assert meta["network"] == "G_AB" and meta["class"] == "ResnetGenerator"
    assert json.loads(meta["value_range"]) == [-1.0, 1.0]
    assert (meta["size_multiple"], meta["scale"], meta["channels"]) == ("4", "1", "3")
    assert meta["translate_version"] == __version__
    assert meta["dynamic"] == "true" and int(meta["opset"]) >= 17
    assert json.loads(meta["model_json"]) == json.loads((cyclegan / "model.json").read_text())
    # onnxruntime sees the same metadata (what `translate infer` reads).
    assert _session(a2b_onnx).get_modelmeta().custom_metadata_map == meta
    [opset] = [o.version for o in onnx.load(a2b_onnx).opset_import if o.domain == ""]
    assert opset >= 17


def test_gan_onnx_has_a_dynamic_batch(gan: Path, gan_onnx: Path) -> None:
    session = _session(gan_onnx)
    assert session.get_inputs()[0].shape == ["batch", 100]
    net = load_model(gan).networks["G"]
    g = torch.Generator().manual_seed(0)
    for batch in (1, 3, 7):
        z = torch.randn(batch, 100, generator=g)
        (y,) = session.run(None, {"z": z.numpy()})
        assert y.shape == (batch, 1, 28, 28)
        with torch.no_grad():
            assert _max_err(y, net(z).numpy()) <= TOL


@pytest.mark.slow
def test_sr_onnx_upscales_odd_sizes(tmp_path: Path) -> None:
    net = _perturb(SRGenerator(scale=4, nf=8, n_blocks=2), 4)
    save_model(tmp_path / "sr", "sr", {"G": net},
               {"value_range": [0.0, 1.0], "scale": 4, "channels": 3})
    [exported] = export_model(tmp_path / "sr", "onnx", dynamic=True)
    assert exported.max_error <= TOL
    session = _session(exported.path)
    assert session.get_outputs()[0].shape == ["batch", 3, "height*4", "width*4"]
    net = load_model(tmp_path / "sr").networks["G"]
    for shape in [(1, 3, 13, 27), (2, 3, 9, 8)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
        (y,) = session.run(None, {"image": x.numpy()})
        assert y.shape == (shape[0], 3, 4 * shape[2], 4 * shape[3])
        with torch.no_grad():
            assert _max_err(y, net(x).numpy()) <= TOL
    # `translate infer` through onnxruntime writes what the PyTorch SR pipeline writes.
    images = _folder_of_images(tmp_path / "in")
    for model, out in ((tmp_path / "sr", "torch"), (exported.path, "onnx")):
        result = invoke("infer", model, images, tmp_path / out, "-q")
        assert result.exit_code == 0, result.output
    torch_out, onnx_out = _pixels(tmp_path / "torch"), _pixels(tmp_path / "onnx")
    assert onnx_out["odd.png"].shape == (4 * 37, 4 * 53, 3)
    assert set(onnx_out) == set(torch_out)
    assert max(np.abs(onnx_out[k] - torch_out[k]).max() for k in onnx_out) <= 1


@pytest.mark.slow
def test_inpaint_onnx_takes_image_and_mask(tmp_path: Path) -> None:
    net = _perturb(InpaintGenerator(ngf=8, n_blocks=2), 5)
    save_model(tmp_path / "ip", "inpaint", {"G": net},
               {"value_range": [-1.0, 1.0], "size_multiple": 4, "channels": 3})
    [exported] = export_model(tmp_path / "ip", "onnx", dynamic=True)
    session = _session(exported.path)
    assert [i.name for i in session.get_inputs()] == ["image", "mask"]
    net = load_model(tmp_path / "ip").networks["G"]
    g = torch.Generator().manual_seed(2)
    # Sizes whose push-pull pyramids have 5, 6 and 8 levels: one graph must serve all. A graph
    # with the levels of one size fixed was off by ~1e-4 at the others, so the bound is tight.
    for shape in [(1, 3, 13, 9), (1, 3, 37, 53), (2, 3, 21, 150)]:
        image = torch.rand(shape, generator=g) * 2 - 1
        mask = (torch.rand(shape[0], 1, *shape[2:], generator=g) > 0.6).float()
        (y,) = session.run(None, {"image": image.numpy(), "mask": mask.numpy()})
        padded, size = pad_to_multiple(image, 4)
        with torch.no_grad():
            ref = crop_to(net(padded, pad_to_multiple(mask, 4)[0]), size).numpy()
        assert _max_err(y, ref) <= 1e-5
        known = np.broadcast_to(mask.numpy() == 0, y.shape)
        assert np.array_equal(y[known], image.numpy()[known])  # composited: known pixels kept
    # `translate infer --masks` through onnxruntime writes what the PyTorch pipeline writes.
    images = _folder_of_images(tmp_path / "in")
    for name, pixels in _pixels(images).items():
        hole = np.zeros(pixels.shape[:2], np.uint8)
        hole[4:20, 6:30] = 255
        write_image(tmp_path / "masks" / name.replace(".png", "_mask.png"), hole[..., None])
    for model, out in ((tmp_path / "ip", "torch"), (exported.path, "onnx")):
        result = invoke("infer", model, images, tmp_path / out, "--masks", tmp_path / "masks",
                        "-q")
        assert result.exit_code == 0, result.output
    torch_out, onnx_out = _pixels(tmp_path / "torch"), _pixels(tmp_path / "onnx")
    assert set(onnx_out) == set(torch_out) == set(_pixels(images))
    for name, pixels in onnx_out.items():
        assert np.abs(pixels - torch_out[name]).max() <= 1
        changed = (pixels != _pixels(images)[name]).any(axis=-1)
        assert changed[4:20, 6:30].any() and not changed[20:].any()  # only the hole is filled
    # Beyond the longest side the graph is exact for, the pipeline refuses (one file fails).
    pipeline = OnnxPipeline(exported.path, "cpu")
    assert pipeline.max_side == 8192
    with pytest.raises(ValueError, match="sides up to 8192"):
        pipeline(torch.zeros(1, 3, 9, 8193), torch.zeros(1, 1, 9, 8193))


@pytest.mark.slow
def test_static_export_has_a_fixed_shape(cyclegan: Path, tmp_path: Path) -> None:
    out = tmp_path / "fixed.onnx"
    result = invoke("export", cyclegan, "--direction", "b2a", "--size", "20x28", "--out", out)
    assert result.exit_code == 0, result.output
    session = _session(out)
    assert session.get_inputs()[0].shape == [1, 3, 20, 28]
    x = torch.rand(1, 3, 20, 28) * 2 - 1
    (y,) = session.run(None, {"image": x.numpy()})
    assert _max_err(y, _reference(load_model(cyclegan).networks["G_BA"], x)) <= TOL
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {"image": np.zeros((1, 3, 24, 28), np.float32)})


def test_dynamo_failure_falls_back_to_the_torchscript_exporter(
        cyclegan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = torch.onnx.export

    def dynamo_fails(*args, **kwargs):
        if kwargs.get("dynamo", True):
            raise RuntimeError("cannot express this model")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_fails)
    [exported] = export_model(cyclegan, "onnx", dynamic=True, direction="a2b",
                              out=tmp_path / "legacy.onnx")
    assert exported.exporter == "torchscript"
    assert "cannot express this model" in exported.note
    session = _session(exported.path)
    assert session.get_modelmeta().custom_metadata_map["exporter"] == "torchscript"
    x = torch.rand(2, 3, 33, 18) * 2 - 1  # a third size through the one graph
    (y,) = session.run(None, {"image": x.numpy()})
    assert _max_err(y, _reference(load_model(cyclegan).networks["G_AB"], x)) <= TOL


def test_a_mismatch_beyond_the_tolerance_writes_nothing(
        cyclegan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_check, "TOLERANCE", 0.0)  # any float difference now fails
    monkeypatch.setattr(export_check, "max_error", lambda a, b: 1e-6)
    with pytest.raises(TranslateError, match="differs from PyTorch by 1e-06"):
        export_model(cyclegan, "torchscript", out=tmp_path / "x", direction="a2b")
    assert list(tmp_path.iterdir()) == []


# ── TorchScript and safetensors.


@pytest.mark.slow
def test_torchscript_loads_and_matches(cyclegan: Path) -> None:
    result = invoke("export", cyclegan, "--format", "torchscript")
    assert result.exit_code == 0, result.output
    model = load_model(cyclegan)
    for name, direction in (("G_AB", "a2b"), ("G_BA", "b2a")):
        files = {"translate.json": ""}
        scripted = torch.jit.load(str(cyclegan / "export" / f"{name}.pt"), _extra_files=files)
        meta = json.loads(files["translate.json"])
        assert meta["direction"] == direction and meta["task"] == "cyclegan"
        assert json.loads(meta["model_json"]) == model.meta
        x = torch.rand(2, 3, 43, 25) * 2 - 1
        with torch.no_grad():
            y = scripted(x).numpy()
        assert _max_err(y, _reference(model.networks[name], x)) <= TOL


def test_safetensors_is_one_network_with_metadata(cyclegan: Path, tmp_path: Path) -> None:
    out = tmp_path / "g_ba.safetensors"
    result = invoke("export", cyclegan, "--format", "safetensors", "--direction", "b2a",
                    "--out", out)
    assert result.exit_code == 0, result.output
    net = load_model(cyclegan).networks["G_BA"]
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
        assert set(f.keys()) == set(net.state_dict())  # one network, no "G_BA." prefix
    assert meta["task"] == "cyclegan" and meta["direction"] == "b2a"
    assert meta["value_range"] == "[-1.0, 1.0]" and meta["size_multiple"] == "4"
    rebuilt, meta2 = load_exported_network(out)
    assert meta2 == meta
    x = torch.rand(1, 3, 40, 36) * 2 - 1
    with torch.no_grad():
        assert torch.equal(rebuilt(x), net(x))
    # A plain safetensors file (no export metadata) is refused by name.
    plain = tmp_path / "plain.safetensors"
    plain.write_bytes((cyclegan / "model.safetensors").read_bytes())
    with pytest.raises(TranslateError, match="plain.safetensors is not a translate export"):
        load_exported_network(plain)


# ── `translate infer` through onnxruntime.


def _folder_of_images(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    sizes = {"odd.png": (37, 53), "sub/two.png": (30, 41), "three.png": (48, 48)}
    for name, (h, w) in sizes.items():
        small = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
        write_image(folder / name, np.asarray(Image.fromarray(small).resize((w, h))))
    return folder


def _pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(folder).as_posix(): np.asarray(Image.open(p)).astype(int)
            for p in sorted(folder.rglob("*.png"))}


def test_infer_onnx_writes_the_files_pytorch_writes(cyclegan: Path, a2b_onnx: Path,
                                                     tmp_path: Path) -> None:
    images = _folder_of_images(tmp_path / "in")
    for model, out in ((cyclegan, "torch"), (a2b_onnx, "onnx")):
        result = invoke("infer", model, images, tmp_path / out, "--batch-size", "2", "-q")
        assert result.exit_code == 0, result.output
    torch_out, onnx_out = _pixels(tmp_path / "torch"), _pixels(tmp_path / "onnx")
    assert set(onnx_out) == {"odd.png", "sub/two.png", "three.png"} == set(torch_out)
    for name, pixels in onnx_out.items():
        assert pixels.shape == torch_out[name].shape
        assert np.abs(pixels - torch_out[name]).max() <= 1  # ≤ 1/255
        assert pixels.std() > 5


def test_onnx_pipeline_reads_direction_and_range_from_the_file(a2b_onnx: Path) -> None:
    pipeline = OnnxPipeline(a2b_onnx, "cpu")
    assert (pipeline.task, pipeline.direction, pipeline.lo, pipeline.hi) == (
        "cyclegan", "a2b", -1.0, 1.0)
    assert pipeline.device == torch.device("cpu")
    y = pipeline(torch.rand(2, 3, 21, 22))
    assert y.shape == (2, 3, 21, 22) and 0 <= float(y.min()) and float(y.max()) <= 1
    with pytest.raises(TranslateError, match="translates a2b, not b2a"):
        OnnxPipeline(a2b_onnx, "cpu", direction="b2a")


# ── Bad input: one line, exit 1, nothing written.


def test_unknown_format_and_missing_run(cyclegan: Path, tmp_path: Path) -> None:
    result = invoke("export", cyclegan, "--format", "tflite", "--out", tmp_path / "x")
    assert result.exit_code == 1
    assert "unknown format 'tflite'" in error_line(result)
    result = invoke("export", tmp_path / "no-run")
    assert result.exit_code == 1
    assert "model not found" in error_line(result)
    result = invoke("export", cyclegan, "--format", "torchscript", "--dynamic")
    assert result.exit_code == 1
    assert "--dynamic applies to --format onnx only" in error_line(result)
    result = invoke("export", cyclegan, "--direction", "c2d")
    assert result.exit_code == 1
    assert "no direction 'c2d'" in error_line(result)
    result = invoke("export", cyclegan, "--size", "big")
    assert result.exit_code == 1
    assert "--size 'big'" in error_line(result)
    assert list(tmp_path.iterdir()) == []


def test_a_task_that_cannot_be_exported(tmp_path: Path) -> None:
    save_model(tmp_path / "vae", "vae", {"vae": VAE(latent_dim=2, hidden=8)},
               {"value_range": [0.0, 1.0], "latent_dim": 2})
    result = invoke("export", tmp_path / "vae")
    assert result.exit_code == 1
    assert "holds a 'vae' model, which cannot be exported" in error_line(result)
    assert not (tmp_path / "vae" / "export").exists()


def test_infer_refuses_a_gan_export_and_foreign_onnx_files(gan_onnx: Path, tmp_path: Path
                                                            ) -> None:
    images = _folder_of_images(tmp_path / "in")
    result = invoke("infer", gan_onnx, images, tmp_path / "out")
    assert result.exit_code == 1
    assert "holds a 'gan' model" in error_line(result)
    plain = tmp_path / "plain.onnx"  # a valid ONNX model that translate did not export
    torch.onnx.export(torch.nn.Identity(), (torch.zeros(1, 3, 8, 8),), plain, dynamo=False)
    result = invoke("infer", plain, images, tmp_path / "out")
    assert result.exit_code == 1
    assert "has no translate metadata" in error_line(result)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf at all")
    result = invoke("infer", broken, images, tmp_path / "out")
    assert result.exit_code == 1
    assert "cannot load" in error_line(result)
    assert not (tmp_path / "out").exists()


def test_infer_onnx_refuses_pytorch_only_options(a2b_onnx: Path, tmp_path: Path) -> None:
    images = _folder_of_images(tmp_path / "in")
    for args, message in ((["--precision", "fp16"], "an ONNX export runs in fp32"),
                          (["--compile"], "--compile is for PyTorch models"),
                          (["--direction", "b2a"], "translates a2b, not b2a"),
                          (["--device", "cuda"], "no CUDA provider")):
        if "cuda" in args and "CUDAExecutionProvider" in ort.get_available_providers():
            continue  # the refusal is for machines without it
        result = invoke("infer", a2b_onnx, images, tmp_path / "out", *args)
        assert result.exit_code == 1
        assert message in error_line(result)
    assert not (tmp_path / "out").exists()


def test_parse_size() -> None:
    assert parse_size("256") == (256, 256)
    assert parse_size("192x320") == (192, 320)
    for bad in ("0", "12x", "axb", "1x2x3"):
        with pytest.raises(TranslateError):
            parse_size(bad)


def test_pad_crop_wrapper_keeps_any_size() -> None:
    wrapper = PadCrop(ResnetGenerator(ngf=8, n_blocks=1).eval(), 4)
    with torch.no_grad():
        assert wrapper(torch.zeros(2, 3, 23, 17)).shape == (2, 3, 23, 17)
