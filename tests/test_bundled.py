"""Bundled models: listed, resolved by name (a path wins), usable by the commands, and each
card's headline figure reproduced from its model.json card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, error_line, invoke
from PIL import Image

from translate import models
from translate.modelfile import load_model

SET5 = SHARED_DATA / "sr" / "Set5_modcrop"
needs_set5 = pytest.mark.skipif(not (SET5 / "hr" / "x4").is_dir(),
                                reason=f"Set5 is not at {SET5} (../shared/data/sr)")


def _card(name: str) -> dict:
    return json.loads((models.HERE / name / "model.json").read_text(encoding="utf-8"))["card"]


def test_every_bundled_model_has_weights_a_card_and_loads() -> None:
    assert "sr-x4" in models.names()
    for name in models.names():
        folder = models.HERE / name
        assert (folder / "CARD.md").is_file(), name
        card = _card(name)
        assert card["data"] and card["headline"], name
        model = load_model(folder)
        n = sum(p.numel() for net in model.networks.values() for p in net.parameters())
        assert n == card["parameters"], name
        for net in model.networks.values():  # fp16 storage is loaded as fp32
            assert all(p.dtype.is_floating_point and p.element_size() == 4
                       for p in net.parameters())


def test_bundled_models_fit_the_budget_and_one_run_is_stored_once() -> None:
    """All bundled files together ≤ 30 MB (issue 12); monet2photo loads photo2monet's weights
    file with the directions swapped, so that run is stored once."""
    assert sum(p.stat().st_size for p in models.HERE.glob("*/*") if p.is_file()) <= 30_000_000
    assert not (models.HERE / "monet2photo" / "model.safetensors").exists()
    assert models.info("monet2photo").weights_of == "photo2monet"
    there, back = load_model(models.HERE / "photo2monet"), load_model(models.HERE / "monet2photo")
    assert there.meta["directions"] == {"a2b": back.meta["directions"]["b2a"],
                                        "b2a": back.meta["directions"]["a2b"]}
    for name, net in there.networks.items():
        for key, value in net.state_dict().items():
            assert torch.equal(back.networks[name].state_dict()[key], value), (name, key)


def test_models_lists_the_bundled_models() -> None:
    result = invoke("models")
    assert result.exit_code == 0, result.output
    for name in models.names():
        assert name in result.output
    assert "1,248,112" in result.output  # sr-x4's parameters
    # monet2photo's size is photo2monet's file, stored once (said in its row alone)
    assert result.output.count("(shared") == 1


def test_an_unknown_name_is_one_line_listing_the_names(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    line = error_line(invoke("infer", "no-such-model", tmp_path, tmp_path / "out"))
    assert "no-such-model" in line and "sr-x4" in line
    assert not (tmp_path / "out").exists()


def test_an_existing_path_wins_over_a_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sr-x4").mkdir()  # a folder of the same name, holding no model
    line = error_line(invoke("infer", "sr-x4", tmp_path, tmp_path / "out"))
    assert "holds no model" in line


def test_export_by_name_writes_under_the_current_folder_never_into_the_package(
        tmp_path: Path, monkeypatch) -> None:
    """A bundled model lives inside the installed package: its exports and their log go to
    export/NAME/ here (as eval's results go to eval/NAME/), and the package is left as it was."""
    monkeypatch.chdir(tmp_path)
    before = sorted(p.relative_to(models.HERE) for p in models.HERE.rglob("*"))
    result = invoke("export", "monet2photo", "--format", "safetensors", "--direction", "a2b")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "export" / "monet2photo").iterdir()) == [
        "G_AB.safetensors", "export.json"]
    log = json.loads((tmp_path / "export" / "monet2photo" / "export.json").read_text())
    assert list(log) == [str(Path("export") / "monet2photo" / "G_AB.safetensors")]
    assert sorted(p.relative_to(models.HERE) for p in models.HERE.rglob("*")) == before


def test_infer_by_name_upscales_a_photo(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(tmp_path / "in/a.png")
    result = invoke("infer", "sr-x4", "in", "out", "-q")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "a.png").size == (40, 48)


@needs_set5
def test_sr_x4_reproduces_its_card_on_set5(tmp_path: Path, monkeypatch) -> None:
    """The card's Set5 ×4 figure, through the same command a user runs; the result file goes to
    ./eval/sr-x4/, never into the installed package."""
    monkeypatch.chdir(tmp_path)
    result = invoke("eval", "sr-x4", "--hr", SET5 / "hr" / "x4",
                    "--lr", SET5 / "lr_bicubic" / "x4", "--scale", 4)
    assert result.exit_code == 0, result.output
    assert not (models.HERE / "sr-x4" / "eval_sr.json").exists()
    scores = next(iter(json.loads((tmp_path / "eval/sr-x4/eval_sr.json").read_text()).values()))
    card = _card("sr-x4")["eval"]["Set5_x4"]
    assert scores["model"]["psnr"] == pytest.approx(card["psnr"], abs=0.01)
    assert scores["model"]["ssim"] == pytest.approx(card["ssim"], abs=1e-4)
    assert card["psnr"] >= 31.2  # the goal, above SRCNN's published 30.48


PUT = SHARED_DATA / "inpainting" / "PUT" / "imagenet_256_sample"
needs_put = pytest.mark.skipif(not (PUT / "gt").is_dir(),
                               reason=f"the PUT samples are not at {PUT} (../shared/data)")


@needs_put
def test_inpaint_reproduces_its_card_on_put_imagenet(tmp_path: Path, monkeypatch) -> None:
    """The card's PUT imagenet figures (5 photos, their own masks, holes filled black), through
    the command a user runs: the model within 0.01 dB of the card and ahead of both cv2
    methods on hole PSNR, SSIM and L1."""
    monkeypatch.chdir(tmp_path)
    result = invoke("eval", "inpaint", "--images", PUT / "gt", "--masks", PUT / "mr0.5_0.6",
                    "--hole", "black")
    assert result.exit_code == 0, result.output
    [entry] = json.loads((tmp_path / "eval/inpaint/eval_inpaint.json").read_text()).values()
    scores = entry["sets"][0]["scores"]
    card = _card("inpaint")["eval"]["PUT imagenet"]
    assert scores["model"]["psnr"] == pytest.approx(card["model"]["psnr"], abs=0.01)
    assert scores["model"]["ssim"] == pytest.approx(card["model"]["ssim"], abs=1e-4)
    assert scores["model"]["l1"] == pytest.approx(card["model"]["l1"], abs=1e-4)
    for cv2 in ("cv2 Telea", "cv2 NS"):
        assert scores["model"]["psnr"] > scores[cv2]["psnr"]
        assert scores["model"]["ssim"] > scores[cv2]["ssim"]
        assert scores["model"]["l1"] < scores[cv2]["l1"]


MONET = SHARED_DATA / "monet2photo"
needs_monet = pytest.mark.skipif(not (MONET / "testA").is_dir(),
                                 reason=f"monet2photo is not at {MONET} (../shared/data)")


@pytest.fixture(scope="module")
def monet144(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The photo2monet card's held-out split, made as its recipe makes it."""
    out = tmp_path_factory.mktemp("monet") / "monet144"
    result = invoke("data", "prep", "--a", MONET / "testA", "--b", MONET / "testB", "--out", out,
                    "--size", 144, "--test-fraction", 0.2, "--seed", 0)
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
@needs_monet
@pytest.mark.parametrize("name, a, b, subset", [("photo2monet", "testB", "testA", False),
                                                ("monet2photo", "testA", "testB", True)])
def test_cyclegan_models_reproduce_their_cards(name: str, a: str, b: str, subset: bool,
                                               monet144: Path, tmp_path: Path,
                                               monkeypatch) -> None:
    """The card's figures at 128² through `translate eval NAME`: photo2monet on the whole
    held-out split (24 paintings, 150 photos; the issue's goal: FID-VGG16 and KID of the
    translations below the untranslated inputs' both ways), monet2photo — the same weights the
    other way round — on the first 24 images of each domain (`--n-max 24`). photo2monet's A is
    the photos (its default direction, a2b, paints them)."""
    monkeypatch.chdir(tmp_path)
    result = invoke("eval", name, "--a", monet144 / a, "--b", monet144 / b, "--size", 128,
                    *(["--n-max", 24] if subset else []))
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "eval" / name / "eval_translation.json").read_text())
    card = _card(name)["eval"]["subset" if subset else "held_out"]
    for direction, got in scores["directions"].items():
        want = card[direction]
        assert got["fid"] == pytest.approx(want["fid"], abs=0.05), direction
        assert got["kid_mean"] == pytest.approx(want["kid_mean"], abs=5e-4), direction
        assert got["input_fid"] == pytest.approx(want["input_fid"], abs=0.05), direction
        assert got["kid_mean"] < got["input_kid_mean"], direction  # both ways
        if not subset:  # with 24 real photos to compare with, Monet → photo's FID is a tie
            assert got["fid"] < got["input_fid"], direction


@pytest.mark.slow
@needs_monet
def test_edges2photo_reproduces_its_card(tmp_path: Path, monkeypatch) -> None:
    """The card's 12 held-out photos, their edges drawn again as the recipe draws them
    (`translate data edges`), through `translate eval edges2photo`: the figures to 0.01 dB /
    1e-4 / 0.05 FID, and below the L1-only U-Net's FID on them (the card's, measured with the
    run it was trained beside, which does not ship)."""
    card = _card("edges2photo")["eval"]["subset"]
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in card["photos"]:
        (photos / name).write_bytes((MONET / "testB" / name).read_bytes())
    monkeypatch.chdir(tmp_path)
    result = invoke("data", "edges", photos, tmp_path / "pairs", "--size", 143,
                    "--test-fraction", 0)
    assert result.exit_code == 0, result.output
    result = invoke("eval", "edges2photo", "--a", tmp_path / "pairs" / "trainA",
                    "--b", tmp_path / "pairs" / "trainB")
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "eval" / "edges2photo" / "eval_paired.json").read_text())
    assert scores["n"] == 12
    got, want = scores["columns"]["model"], card["pix2pix"]
    assert got["psnr"] == pytest.approx(want["psnr"], abs=0.01)
    assert got["ssim"] == pytest.approx(want["ssim"], abs=1e-4)
    assert got["l1"] == pytest.approx(want["l1"], abs=1e-4)
    assert got["fid"] == pytest.approx(want["fid"], abs=0.05)
    assert got["kid_mean"] == pytest.approx(want["kid_mean"], abs=5e-4)
    assert got["fid"] < card["l1_only"]["fid"]
    assert got["psnr"] > card["l1_only"]["psnr"] - 1.0


MNIST = SHARED_DATA / "mnist"
needs_mnist = pytest.mark.skipif(not MNIST.is_dir(),
                                 reason=f"the MNIST test split is not at {MNIST} (../shared/data)")


@pytest.mark.slow
@needs_mnist
@pytest.mark.parametrize("name", ["mnist-vae", "mnist-gan"])
def test_mnist_models_reproduce_their_cards(name: str, tmp_path: Path, monkeypatch) -> None:
    """The card's figures through `translate eval NAME --real MNIST` (10,000 seeded samples
    against the real test split): the Fréchet distance, and the VAE's test −ELBO."""
    if name not in models.names():
        pytest.skip(f"{name} is not bundled")
    monkeypatch.chdir(tmp_path)
    result = invoke("eval", name, "--real", MNIST)
    assert result.exit_code == 0, result.output
    scores = json.loads((tmp_path / "eval" / name / "eval.json").read_text())
    card = _card(name)["eval"]
    # The Fréchet distance and the class histogram are measured with the project's MNIST
    # classifier, which is trained once per cache (here: the test session's) and whose weights
    # depend on the CPU's convolution kernels and thread count: three trainings on this VM gave
    # 139.31, 139.75 and 141.32 for the same mnist-vae samples. So they are checked within that
    # spread; the test −ELBO, which needs no classifier, to 0.01.
    assert scores["frechet"] == pytest.approx(card["frechet"], abs=3.0)
    assert scores["class_entropy_bits"] == pytest.approx(card["class_entropy_bits"], abs=0.02)
    if name == "mnist-vae":
        assert scores["test_nelbo"] == pytest.approx(card["test_nelbo"], abs=0.01)
        assert card["test_nelbo"] < 110.08  # below today's default recipe (docs/RESULTS.md)
    else:
        assert card["frechet"] < 21.55  # below today's default recipe (docs/RESULTS.md)


def test_sample_by_name_writes_a_grid(tmp_path: Path) -> None:
    for name in ("mnist-gan", "mnist-vae"):
        if name not in models.names():
            continue
        out = tmp_path / f"{name}.png"
        result = invoke("sample", name, "--n", 16, "--out", out)
        assert result.exit_code == 0, result.output
        assert Image.open(out).size[0] >= 4 * 28
