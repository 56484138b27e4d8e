"""translate.load: every input kind on every image task equals what `translate infer` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import invoke
from helpers import save_tiny_image_models
from PIL import Image

import translate
from translate.errors import TranslateError

H, W = 30, 38  # not multiples of the networks' size multiples: padding and cropping happen


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_tiny_image_models(tmp_path_factory.mktemp("models"))


def _image(kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "rgb8":
        return rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    if kind == "gray8":
        return rng.integers(0, 256, (H, W), dtype=np.uint8)
    if kind == "rgba8":
        return rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    if kind == "gray16":
        return rng.integers(0, 65536, (H, W), dtype=np.uint16)
    raise ValueError(kind)


def _mask() -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[8:20, 10:25] = 255
    return mask


def _cli_result(model: Path, array: np.ndarray, tmp_path: Path, *extra: str,
                mask: np.ndarray | None = None) -> np.ndarray:
    """What `translate infer` writes for ``array`` saved as a PNG."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(array).save(src / "a.png")
    args: list[object] = ["infer", model, src, out, "-q", *extra]
    if mask is not None:
        masks = tmp_path / "masks"
        masks.mkdir()
        Image.fromarray(mask).save(masks / "a.png")
        args += ["--masks", masks]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    written = Image.open(out / "a.png")
    return np.asarray(written).astype(np.uint16) if written.mode.startswith("I") else \
        np.asarray(written)


@pytest.mark.parametrize("task", ["cyclegan", "sr", "inpaint"])
@pytest.mark.parametrize("kind", ["rgb8", "gray8", "rgba8", "gray16"])
def test_arrays_equal_what_infer_writes(models, tmp_path: Path, task: str, kind: str) -> None:
    array = _image(kind)
    mask = _mask() if task == "inpaint" else None
    pipe = translate.load(models[task], device="cpu")
    assert pipe.task == task
    got = pipe(array, mask) if mask is not None else pipe(array)
    want = _cli_result(models[task], array, tmp_path, mask=mask)
    scale = 2 if task == "sr" else 1
    assert got.dtype == array.dtype
    assert got.shape == (H * scale, W * scale, *array.shape[2:])
    assert want.shape == got.shape
    assert np.abs(got.astype(np.int64) - want.astype(np.int64)).max() <= (
        257 if kind == "gray16" else 1)  # 1/255 of the range
    if task == "inpaint":  # known pixels are the input's own, exactly
        known = mask == 0
        assert np.array_equal(got[known], array[known])


@pytest.mark.parametrize("task", ["cyclegan", "sr", "inpaint"])
def test_pil_images_come_back_as_pil_images(models, tmp_path: Path, task: str) -> None:
    array = _image("rgb8", seed=1)
    mask = _mask() if task == "inpaint" else None
    pipe = translate.load(models[task], device="cpu")
    got = pipe(Image.fromarray(array), Image.fromarray(mask)) if mask is not None else \
        pipe(Image.fromarray(array))
    assert isinstance(got, Image.Image) and got.mode == "RGB"
    want = _cli_result(models[task], array, tmp_path, mask=mask)
    assert np.abs(np.asarray(got).astype(int) - want.astype(int)).max() <= 1


@pytest.mark.parametrize("task", ["cyclegan", "sr", "inpaint"])
def test_tensors_come_back_as_tensors_within_one_level(models, tmp_path: Path,
                                                        task: str) -> None:
    array = _image("rgb8", seed=2)
    mask = _mask() if task == "inpaint" else None
    pipe = translate.load(models[task], device="cpu")
    x = torch.from_numpy(array).permute(2, 0, 1).float() / 255  # (3, H, W)
    m = None if mask is None else torch.from_numpy(mask > 0)
    single = pipe(x, m) if m is not None else pipe(x)
    batch = pipe(torch.stack([x, x]), m) if m is not None else pipe(torch.stack([x, x]))
    scale = 2 if task == "sr" else 1
    assert single.shape == (3, H * scale, W * scale) and single.dtype == torch.float32
    assert batch.shape == (2, 3, H * scale, W * scale)
    assert torch.allclose(batch[0], single, atol=1e-5)
    want = _cli_result(models[task], array, tmp_path, mask=mask)
    got = (single.permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(got - want.astype(np.float64)).max() <= 1


def test_directions_and_options(models, tmp_path: Path) -> None:
    array = _image("rgb8", seed=3)
    pipe = translate.load(models["cyclegan"], device="cpu")
    a2b, b2a = pipe(array), pipe(array, direction="b2a")
    assert not np.array_equal(a2b, b2a)
    want = _cli_result(models["cyclegan"], array, tmp_path, "--direction", "b2a")
    assert np.abs(b2a.astype(int) - want.astype(int)).max() <= 1
    assert np.array_equal(translate.load(models["cyclegan"], device="cpu",
                                         direction="b2a")(array), b2a)
    big = translate.load(models["sr"], device="cpu", outscale=3)(array)
    assert big.shape == (H * 3, W * 3, 3)


def test_folder_does_what_infer_does(models, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(_image("rgb8", seed=10 + i)).save(src / f"{i}.png")
    report = translate.load(models["sr"], device="cpu").folder(src, tmp_path / "out")
    assert report.written == 3 and not report.failures
    cli = invoke("infer", models["sr"], src, tmp_path / "cli", "-q")
    assert cli.exit_code == 0, cli.output
    for i in range(3):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / f"{i}.png")),
                              np.asarray(Image.open(tmp_path / "cli" / f"{i}.png")))


def test_an_onnx_file_loads_too(models, tmp_path: Path) -> None:
    out = tmp_path / "g.onnx"
    result = invoke("export", models["cyclegan"], "--format", "onnx", "--dynamic",
                    "--direction", "a2b", "--out", out)
    assert result.exit_code == 0, result.output
    array = _image("rgb8", seed=4)
    onnx = translate.load(out, device="cpu")(array)
    torch_result = translate.load(models["cyclegan"], device="cpu")(array)
    assert onnx.shape == torch_result.shape
    assert np.abs(onnx.astype(int) - torch_result.astype(int)).max() <= 1


@pytest.mark.parametrize(("call", "message"), [
    (lambda p, a: p(a.astype(np.float32)), "expected uint8 or uint16 pixels"),
    (lambda p, a: p(a[..., None, None]), "expected an (H, W) or (H, W, C) array"),
    (lambda p, a: p("photo.png"), "expected a PIL image, a NumPy array or a torch tensor"),
    (lambda p, a: p(torch.zeros(5, 8, 8)), "expected a float tensor"),
    (lambda p, a: p(a, a), "a mask is for inpainting models"),
])
def test_wrong_inputs_are_one_line_errors(models, call, message: str) -> None:
    pipe = translate.load(models["cyclegan"], device="cpu")
    with pytest.raises(TranslateError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(pipe, _image("rgb8"))


def test_inpainting_needs_a_mask_of_the_images_size(models) -> None:
    pipe = translate.load(models["inpaint"], device="cpu")
    with pytest.raises(TranslateError, match="needs a mask"):
        pipe(_image("rgb8"))
    with pytest.raises(TranslateError, match="the mask is 10×10, the image is 38×30"):
        pipe(_image("rgb8"), np.zeros((10, 10), np.uint8))


def test_load_refuses_unknown_names_and_options(models) -> None:
    with pytest.raises(TranslateError, match="neither an existing path nor a bundled model"):
        translate.load("no-such-model")
    with pytest.raises(TranslateError, match="unknown option"):
        translate.load(models["sr"], tiles=3)
    with pytest.raises(TranslateError, match="--outscale"):
        translate.load(models["cyclegan"], outscale=2)
