"""``translate import`` of the field's architectures (spandrel): real key layouts, no downloads.

Small random-weight instances are built with spandrel's own classes and saved the ways people
share them (a ``.pth`` state dict wrapped as BasicSR saves it, ``params_ema``, and a plain
``.safetensors``). Each is imported and run by ``translate infer`` on real photos, whole and in
tiles, and compared with spandrel's own call of the same weights.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from skimage import data as skdata

from tests.conftest import error_line, invoke

spandrel = pytest.importorskip("spandrel")
from spandrel.architectures.Compact import Compact  # noqa: E402
from spandrel.architectures.DAT import DAT  # noqa: E402
from spandrel.architectures.ESRGAN import ESRGAN  # noqa: E402
from spandrel.architectures.HAT import HAT  # noqa: E402
from spandrel.architectures.LaMa import LaMa  # noqa: E402
from spandrel.architectures.OmniSR import OmniSR  # noqa: E402
from spandrel.architectures.SCUNet import SCUNet  # noqa: E402
from spandrel.architectures.SPAN import SPAN  # noqa: E402
from spandrel.architectures.SwinIR import SwinIR  # noqa: E402

# name → (spandrel's id, a small instance, an LR tile side for the tiled run). Tiles are
# multiples of each model's tile grid (window attention) and larger than its overlap.
ARCHS = {
    "esrgan": ("ESRGAN", lambda: ESRGAN(num_filters=16, num_blocks=2, scale=4), 48),
    "compact": ("Compact", lambda: Compact(num_feat=16, num_conv=4, upscale=4), 48),
    "swinir": ("SwinIR", lambda: SwinIR(img_size=32, embed_dim=12, depths=[2], num_heads=[2],
                                        window_size=8, upscale=2, upsampler="pixelshuffle",
                                        mlp_ratio=2.0), 64),
    "hat": ("HAT", lambda: HAT(img_size=32, embed_dim=12, depths=[2], num_heads=[2],
                               window_size=8, upscale=2, num_feat=16, squeeze_factor=6,
                               mlp_ratio=2.0), 64),
    "dat": ("DAT", lambda: DAT(img_size=32, embed_dim=24, split_size=[2, 4], depth=[2],
                               num_heads=[2], upscale=2, expansion_factor=2.0), 48),
    "span": ("SPAN", lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=4), 48),
    "omnisr": ("OmniSR", lambda: OmniSR(num_feat=16, block_num=1, up_scale=4), None),
    "scunet": ("SCUNet", lambda: SCUNet(config=[1] * 7, dim=64), 128),
}
# OmniSR's grid attention and channel attention see the whole input: a tile's result is not the
# whole image's anywhere, as with every tiler; its tiled run is not compared.


def _photos(folder: Path) -> list[Path]:
    """Two real photos at odd sizes (neither side a multiple of 8)."""
    folder.mkdir(parents=True, exist_ok=True)
    crops = {"astronaut.png": skdata.astronaut()[60:189, 100:283],  # 129 x 183
             "chelsea.png": skdata.chelsea()[40:157, 90:245]}  # 117 x 155
    paths = []
    for name, pixels in crops.items():
        Image.fromarray(np.ascontiguousarray(pixels)).save(folder / name)
        paths.append(folder / name)
    return paths


def _save(net: torch.nn.Module, folder: Path, stem: str) -> tuple[Path, Path]:
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    pth, st = folder / f"{stem}.pth", folder / f"{stem}.safetensors"
    torch.save({"params_ema": state}, pth)  # as BasicSR / Real-ESRGAN releases are saved
    save_file(state, st)
    return pth, st


def _reference(state: dict[str, torch.Tensor], photo: Path) -> np.ndarray:
    """spandrel's own call on ``photo``: (H, W, 3) uint8."""
    descriptor = spandrel.ModelLoader().load_from_state_dict(state).eval()
    x = torch.from_numpy(np.array(Image.open(photo))).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        y = descriptor(x)[0]
    return (y.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape, (a.shape, b.shape)
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    return _photos(tmp_path_factory.mktemp("photos"))


@pytest.mark.parametrize("name", list(ARCHS))
def test_import_and_infer_match_spandrel(tmp_path, photos, name):
    arch, build, tile = ARCHS[name]
    torch.manual_seed(0)
    net = build().eval()
    pth, st = _save(net, tmp_path, name)
    for weights, out in ((pth, tmp_path / "m_pth"), (st, tmp_path / "m_st")):
        result = invoke("import", weights, "--out", out)
        assert result.exit_code == 0, result.output
        assert f"{arch}" in result.output
    meta = json.loads((tmp_path / "m_pth" / "model.json").read_text())
    assert meta["task"] == "sr" and meta["networks"]["G"] == {
        "class": "ExternalNet", "args": {"architecture": arch}}
    assert meta["imported"]["architecture"] == arch
    assert meta["imported"]["parameters"] == sum(p.numel() for p in net.parameters())
    assert meta["value_range"] == [0.0, 1.0] and "licence" in meta["imported"]
    # Both files hold the same weights: the same model.safetensors.
    assert ((tmp_path / "m_pth" / "model.safetensors").read_bytes()
            == (tmp_path / "m_st" / "model.safetensors").read_bytes())
    state = dict(net.state_dict())
    refs = {p.name: _reference(state, p) for p in photos}
    runs = {"whole": ["--tile", "0"]}
    if tile is not None:
        runs["tiled"] = ["--tile", str(tile)]
    for run, options in runs.items():
        out = tmp_path / f"out_{run}"
        result = invoke("infer", tmp_path / "m_pth", photos[0].parent, out, "-q", *options)
        assert result.exit_code == 0, result.output
        for photo in photos:
            got = np.array(Image.open(out / photo.name))
            assert _max_diff(got, refs[photo.name]) <= 1, (name, run, photo.name)


def test_the_tiled_run_really_tiles(tmp_path, photos):
    """A tile smaller than the photo changes nothing but the memory: with a tile of 16 and no
    overlap the seams show, so the tiled comparison above is not a whole-image run."""
    torch.manual_seed(0)
    net = ESRGAN(num_filters=16, num_blocks=2, scale=4).eval()
    pth, _ = _save(net, tmp_path, "esrgan")
    assert invoke("import", pth, "--out", tmp_path / "m").exit_code == 0
    out = tmp_path / "seams"
    result = invoke("infer", tmp_path / "m", photos[0].parent, out, "-q", "--tile", "16",
                    "--tile-overlap", "0")
    assert result.exit_code == 0, result.output
    ref = _reference(dict(net.state_dict()), photos[0])
    assert _max_diff(np.array(Image.open(out / photos[0].name)), ref) > 8


def test_window_models_refuse_tiles_off_their_grid(tmp_path, photos):
    torch.manual_seed(0)
    pth, _ = _save(ARCHS["swinir"][1]().eval(), tmp_path, "swinir")
    assert invoke("import", pth, "--out", tmp_path / "m").exit_code == 0
    assert json.loads((tmp_path / "m" / "model.json").read_text())["tile_multiple"] == 8
    result = invoke("infer", tmp_path / "m", photos[0].parent, tmp_path / "o", "--tile", "60")
    assert result.exit_code != 0
    assert "multiples of 8" in error_line(result)


def test_precision_the_architecture_lacks_is_refused(tmp_path, photos):
    torch.manual_seed(0)
    pth, _ = _save(ARCHS["swinir"][1]().eval(), tmp_path, "swinir")  # spandrel: no fp16
    assert invoke("import", pth, "--out", tmp_path / "m").exit_code == 0
    result = invoke("infer", tmp_path / "m", photos[0].parent, tmp_path / "o",
                    "--precision", "fp16")
    assert result.exit_code != 0
    assert "runs only in fp32, bf16" in error_line(result)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["compact", "swinir"])
def test_onnx_export_of_an_imported_model_matches(tmp_path, photos, name):
    """export checks the graph in onnxruntime against PyTorch (it fails otherwise); infer of the
    .onnx file then matches spandrel's own call on a real photo within 1 level."""
    torch.manual_seed(0)
    net = ARCHS[name][1]().eval()
    pth, _ = _save(net, tmp_path, name)
    assert invoke("import", pth, "--out", tmp_path / "m").exit_code == 0
    onnx_file = tmp_path / f"{name}.onnx"
    result = invoke("export", tmp_path / "m", "--out", onnx_file, "--dynamic")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    result = invoke("infer", onnx_file, photos[0].parent, out, "-q")
    assert result.exit_code == 0, result.output
    ref = _reference(dict(net.state_dict()), photos[0])
    assert _max_diff(np.array(Image.open(out / photos[0].name)), ref) <= 1


# --- files that are not such models ---------------------------------------------------------


class _Payload:
    """Unpickling this runs a command: what a tampered .pth does."""

    def __reduce__(self):
        return (print, ("pwned: pickled code ran",))


def _bad(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    torch.manual_seed(0)
    state = ESRGAN(num_filters=16, num_blocks=2, scale=4).state_dict()
    cases: dict[str, tuple[Path, str]] = {}
    payload = tmp_path / "payload.pth"
    payload.write_bytes(pickle.dumps({"params_ema": _Payload()}, protocol=2))
    cases["pickled code"] = (payload, "never pickled code")
    script = tmp_path / "scripted.pt"
    torch.jit.script(torch.nn.Conv2d(3, 3, 3)).save(str(script))
    cases["torchscript"] = (script, "a TorchScript archive, which holds code")
    truncated = tmp_path / "truncated.pth"
    torch.save(state, truncated)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    cases["truncated"] = (truncated, "torch.load cannot read it")
    bad_st = tmp_path / "truncated.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, bad_st)
    bad_st.write_bytes(bad_st.read_bytes()[:3000])
    cases["truncated safetensors"] = (bad_st, "not a readable safetensors file")
    nan = {k: v.clone() for k, v in state.items()}
    nan["model.0.weight"][0, 0, 0, 0] = float("nan")
    nan_path = tmp_path / "nan.pth"
    torch.save(nan, nan_path)
    cases["nan"] = (nan_path, "model.0.weight holds NaN or infinite values")
    classifier = tmp_path / "classifier.pth"
    torch.save(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2)).state_dict(),
               classifier)
    cases["classifier"] = (classifier, "neither a CycleGAN ResNet generator nor an architecture")
    shapes = dict(state)
    shapes["model.1.sub.0.RDB1.conv1.0.weight"] = torch.zeros(16, 16, 3, 3)
    wrong = tmp_path / "wrong_shape.pth"
    torch.save(shapes, wrong)
    cases["wrong shape"] = (wrong, "do not fit it")
    return cases


BAD = ["pickled code", "torchscript", "truncated", "truncated safetensors", "nan", "classifier",
       "wrong shape"]


@pytest.mark.parametrize("case", BAD)
def test_bad_files_give_one_line_and_nothing_written(tmp_path, capfd, case):
    path, message = _bad(tmp_path)[case]
    out = tmp_path / "imported"
    result = invoke("import", path, "--out", out)
    assert result.exit_code != 0
    line = error_line(result)
    assert message in line, line
    assert not out.exists()
    assert "pwned" not in capfd.readouterr().out + result.output


def test_a_failed_check_leaves_an_existing_folder_as_it_was(tmp_path):
    """Weights that load but give NaN (finite, absurdly large): refused before anything is
    written; the folder named by --out and the user's file in it stay."""
    torch.manual_seed(0)
    net = ARCHS["compact"][1]().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1e30)
    pth, _ = _save(net, tmp_path, "huge")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = invoke("import", pth, "--out", out, "--overwrite")
    assert result.exit_code != 0
    assert "gives NaN or infinite values" in error_line(result)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_fp8_weights_are_one_line(tmp_path):
    torch.manual_seed(0)
    state = {k: v.to(torch.float8_e4m3fn) if v.is_floating_point() else v
             for k, v in ARCHS["compact"][1]().state_dict().items()}
    path = tmp_path / "fp8.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    result = invoke("import", path, "--out", tmp_path / "m")
    assert result.exit_code != 0
    assert "float8_e4m3fn values" in error_line(result)


def test_tiles_follow_a_size_multiple_the_network_needs(tmp_path, photos):
    """Real-ESRGAN x2plus's RRDBNet pixel-unshuffles its input (a multiple of 2): tiles on that
    grid match the whole image."""
    torch.manual_seed(0)
    # x2plus: a ×4 RRDBNet on the 2×2-unshuffled input (12 channels in), ×2 overall.
    net = ESRGAN(in_nc=12, num_filters=16, num_blocks=1, scale=4, shuffle_factor=2).eval()
    pth, _ = _save(net, tmp_path, "x2plus")
    assert invoke("import", pth, "--out", tmp_path / "m").exit_code == 0
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["scale"] == 2 and meta["tile_multiple"] == 4  # spandrel: multiple_of 4
    out = tmp_path / "tiled"
    result = invoke("infer", tmp_path / "m", photos[0].parent, out, "-q", "--tile", "48")
    assert result.exit_code == 0, result.output
    ref = _reference(dict(net.state_dict()), photos[0])
    assert _max_diff(np.array(Image.open(out / photos[0].name)), ref) <= 1


def test_a_face_restorer_is_refused(tmp_path):
    from spandrel.architectures.GFPGAN import GFPGAN

    path = tmp_path / "GFPGANv1.4.pth"
    torch.save(GFPGAN().state_dict(), path)
    result = invoke("import", path, "--out", tmp_path / "m")
    assert result.exit_code != 0
    assert "not a whole-image model" in error_line(result)
    assert not (tmp_path / "m").exists()


def test_a_training_run_is_never_an_import_destination(tmp_path):
    run = tmp_path / "run"
    (run / "state").mkdir(parents=True)
    (run / "config.yaml").write_text("task: sr\n")
    (run / "model.json").write_text("{}")
    before = (run / "model.json").read_bytes()
    torch.manual_seed(0)
    pth, _ = _save(ARCHS["compact"][1]().eval(), tmp_path, "compact")
    result = invoke("import", pth, "--out", run, "--overwrite")
    assert result.exit_code != 0
    assert "holds a training run" in error_line(result)
    assert (run / "model.json").read_bytes() == before


def test_weights_swapped_for_another_architecture_are_refused(tmp_path):
    """model.json names the architecture; weights of another one in its place are refused."""
    from translate.modelfile import load_model

    torch.manual_seed(0)
    a, _ = _save(ARCHS["compact"][1]().eval(), tmp_path, "compact")
    b, _ = _save(ARCHS["esrgan"][1]().eval(), tmp_path, "esrgan")
    assert invoke("import", a, "--out", tmp_path / "a").exit_code == 0
    assert invoke("import", b, "--out", tmp_path / "b").exit_code == 0
    (tmp_path / "a" / "model.safetensors").write_bytes(
        (tmp_path / "b" / "model.safetensors").read_bytes())
    from translate.errors import TranslateError

    with pytest.raises(TranslateError, match="the weights are a ESRGAN network; model.json "
                       "says Compact"):
        load_model(tmp_path / "a")


# --- inpainting: LaMa (51 M parameters at its only size) ---------------------------------------


@pytest.mark.slow
def test_lama_imports_and_inpaints_keeping_known_pixels(tmp_path, photos):
    torch.manual_seed(0)
    net = LaMa(in_nc=4).eval()
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    path = tmp_path / "big-lama.safetensors"
    save_file(state, path)
    del net
    result = invoke("import", path, "--out", tmp_path / "lama")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "lama" / "model.json").read_text())
    assert meta["task"] == "inpaint" and meta["imported"]["architecture"] == "LaMa"
    masks = tmp_path / "masks"
    masks.mkdir()
    rng = np.random.default_rng(0)
    holes = {}
    for photo in photos:
        w, h = Image.open(photo).size
        hole = np.zeros((h, w), np.uint8)
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        hole[y : y + h // 3, x : x + w // 3] = 255
        Image.fromarray(hole).save(masks / photo.name)
        holes[photo.name] = hole > 0
    out = tmp_path / "out"
    result = invoke("infer", tmp_path / "lama", photos[0].parent, out, "--masks", masks, "-q")
    assert result.exit_code == 0, result.output
    descriptor = spandrel.ModelLoader().load_from_state_dict(state).eval()
    for photo in photos:
        image = np.array(Image.open(photo))
        got = np.array(Image.open(out / photo.name))
        hole = holes[photo.name]
        assert np.array_equal(got[~hole], image[~hole])  # known pixels bit-exact
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        m = torch.from_numpy(hole.astype(np.float32))[None, None]
        with torch.no_grad():
            ref = (descriptor(x, m)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        assert _max_diff(got[hole], ref[hole]) <= 1


# --- evaluation beside a baseline: a user's own file against sr-x4 / inpaint -----------------


def _hr_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, pixels in (("coffee.png", skdata.coffee()[100:196, 200:332]),
                         ("rocket.png", skdata.rocket()[120:200, 150:270])):
        Image.fromarray(np.ascontiguousarray(pixels)).save(folder / name)
    return folder


def test_sr_eval_scores_a_baseline_beside_the_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a bundled model's results go to eval/NAME/ here
    torch.manual_seed(0)
    pth, _ = _save(ARCHS["compact"][1]().eval(), tmp_path, "compact")
    assert invoke("import", pth, "--out", tmp_path / "compact").exit_code == 0
    hr = _hr_folder(tmp_path / "hr")
    result = invoke("eval", "sr-x4", "--hr", hr, "--baseline", tmp_path / "compact")
    assert result.exit_code == 0, result.output
    assert "baseline" in result.output  # its columns (the header wraps at 80 columns)
    both = json.loads((tmp_path / "eval" / "sr-x4" / "eval_sr.json").read_text())
    entry = next(v for k, v in both.items() if k.startswith(str(hr)))
    assert entry["baseline"]["model"] == str(tmp_path / "compact")
    # The baseline's column is the model's own score when it is evaluated alone.
    alone = invoke("eval", tmp_path / "compact", "--hr", hr)
    assert alone.exit_code == 0, alone.output
    own = json.loads((tmp_path / "compact" / "eval_sr.json").read_text())
    own_entry = next(v for k, v in own.items() if k.startswith(str(hr)))
    assert entry["baseline"]["psnr"] == pytest.approx(own_entry["model"]["psnr"], abs=1e-9)
    assert entry["baseline"]["ssim"] == pytest.approx(own_entry["model"]["ssim"], abs=1e-9)
    assert entry["model"]["psnr"] != pytest.approx(entry["baseline"]["psnr"], abs=1e-3)


def test_a_baseline_of_another_task_or_scale_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    pth, _ = _save(ARCHS["swinir"][1]().eval(), tmp_path, "swinir")  # x2
    assert invoke("import", pth, "--out", tmp_path / "x2").exit_code == 0
    hr = _hr_folder(tmp_path / "hr")
    scale = invoke("eval", "sr-x4", "--hr", hr, "--baseline", tmp_path / "x2")
    assert scale.exit_code != 0 and "upscales ×2" in error_line(scale)
    task = invoke("eval", "sr-x4", "--hr", hr, "--baseline", "inpaint")
    assert task.exit_code != 0 and "holds a 'inpaint' model" in error_line(task)


def test_inpaint_eval_scores_a_baseline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images = _hr_folder(tmp_path / "images")
    result = invoke("eval", "inpaint", "--images", images, "--mask-preset", "medium",
                    "--baseline", "inpaint")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "eval" / "inpaint" / "eval_inpaint.json").read_text())
    entry = next(v for k, v in data.items() if k.startswith(str(images)))
    scores = entry["sets"][0]["scores"]
    assert set(scores) == {"model", "cv2 Telea", "cv2 NS", "baseline inpaint"}
    # The same model as its own baseline: the same completions, the same scores.
    assert scores["baseline inpaint"] == scores["model"]


# --- fine-tuning a file people have: train sr --set model.init_from=FILE.pth -------------------


def _hr_crops(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee()]
    for i in range(n):
        Image.fromarray(photos[i][40 + 10 * i : 88 + 10 * i, 100:164]).save(folder / f"{i}.png")
    return folder


def test_fine_tuning_an_rrdbnet_file_trains_it_and_writes_an_imported_model(tmp_path):
    from translate.modelfile import load_model

    torch.manual_seed(0)
    net = ESRGAN(num_filters=8, num_blocks=1, scale=4).eval()
    pth, _ = _save(net, tmp_path, "RealESRGAN_tiny")
    root = _hr_crops(tmp_path / "hr")
    result = invoke("train", "sr", "--out", tmp_path / "run", "--set", f"data.root={root}",
                    "--set", "data.hr_size=32", "--set", "data.repeat=2", "--set",
                    "train.batch_size=2", "--set", "train.steps=4", "--set", "train.ema=0",
                    "--set", f"model.init_from={pth}", "-q")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["networks"]["G"] == {"class": "ExternalNet", "args": {"architecture": "ESRGAN"}}
    assert meta["fine_tuned_from"] == "RealESRGAN_tiny.pth"
    tuned = load_model(tmp_path / "run").networks["G"].model.state_dict()
    start = net.state_dict()
    assert set(tuned) == set(start)
    changed = [k for k in start if not torch.equal(tuned[k], start[k])]
    assert changed, "4 steps of training changed no weight"
    out = tmp_path / "out"
    assert invoke("infer", tmp_path / "run", root, out, "-q").exit_code == 0
    assert Image.open(out / "0.png").size == (64 * 4, 48 * 4)


def test_a_fine_tuned_model_fine_tunes_again_and_resume_names_a_moved_file(tmp_path):
    torch.manual_seed(0)
    pth, _ = _save(ESRGAN(num_filters=8, num_blocks=1, scale=4).eval(), tmp_path, "g")
    root = _hr_crops(tmp_path / "hr")
    common = ["--set", f"data.root={root}", "--set", "data.hr_size=32", "--set",
              "data.repeat=2", "--set", "train.batch_size=2", "--set", "train.ema=0", "-q"]
    first = invoke("train", "sr", "--out", tmp_path / "a", "--set", "train.steps=2", "--set",
                   f"model.init_from={pth}", *common)
    assert first.exit_code == 0, first.output
    again = invoke("train", "sr", "--out", tmp_path / "b", "--set", "train.steps=2", "--set",
                   f"model.init_from={tmp_path / 'a'}", *common)
    assert again.exit_code == 0, again.output
    meta = json.loads((tmp_path / "b" / "model.json").read_text())
    assert meta["networks"]["G"]["class"] == "ExternalNet"
    pth.rename(tmp_path / "moved.pth")
    resumed = invoke("train", "sr", "--out", tmp_path / "a", "--resume", "--set",
                     "train.steps=4", "-q")
    assert resumed.exit_code != 0
    assert "model.init_from" in error_line(resumed) and "keep it there" in error_line(resumed)


@pytest.mark.parametrize(("override", "message"), [
    ("model.scale=2", "a ×4 ESRGAN network; the config's model.scale is 2"),
])
def test_fine_tuning_refuses_what_the_file_contradicts(tmp_path, override, message):
    torch.manual_seed(0)
    pth, _ = _save(ESRGAN(num_filters=8, num_blocks=1, scale=4).eval(), tmp_path, "g")
    root = _hr_crops(tmp_path / "hr")
    result = invoke("train", "sr", "--out", tmp_path / "run", "--set", f"data.root={root}",
                    "--set", "data.hr_size=32", "--set", "train.steps=2", "--set", override,
                    "--set", f"model.init_from={pth}", "-q")
    assert result.exit_code != 0
    assert message in error_line(result)
    assert not (tmp_path / "run").exists()


def test_an_imported_model_works_from_python_and_in_showcase(tmp_path, photos):
    import translate

    torch.manual_seed(0)
    net = ARCHS["swinir"][1]().eval()  # ×2, window grid 8
    pth, _ = _save(net, tmp_path, "swinir")
    assert invoke("import", pth, "--out", tmp_path / "m").exit_code == 0
    pipe = translate.load(tmp_path / "m", device="cpu")
    image = np.array(Image.open(photos[0]))
    out = pipe(image)
    assert out.shape == (image.shape[0] * 2, image.shape[1] * 2, 3) and out.dtype == np.uint8
    assert _max_diff(out, _reference(dict(net.state_dict()), photos[0])) <= 1
    result = invoke("showcase", tmp_path / "m", photos[0].parent, "--out", tmp_path / "show",
                    "--limit", "2")
    assert result.exit_code == 0, result.output
    section = json.loads((tmp_path / "show" / "section.json").read_text())
    assert len(section["rows"]) >= 2
