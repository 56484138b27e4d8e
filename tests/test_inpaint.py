"""The inpainting head: network, data, training, mask pairing, CLI train/infer/eval, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import error_line, invoke
from helpers import assert_same_state, fresh_cli, params_without_grad
from PIL import Image

from translate.config import InpaintConfig, load_config, to_dict
from translate.data.inpaint import InpaintDataset
from translate.data.masks import generate_mask
from translate.errors import TranslateError
from translate.infer import MaskFolder
from translate.modelfile import save_model
from translate.nets.inpaint import InpaintGenerator, push_pull
from translate.nets.resnet import ResnetGenerator
from translate.runtime import Precision
from translate.train.inpaint import InpaintTask

CONFIGS = Path(__file__).parents[1] / "configs"
TINY_MODEL = ["--set", "model.ngf=8", "--set", "model.n_blocks=2", "--set", "model.ndf=8",
              "--set", "model.n_layers=2"]


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth synthetic 'photo' (gradients + blobs), uint8 RGB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    channels = [np.sin(2 * np.pi * (rng.uniform(0.5, 2) * xx + rng.uniform(0.5, 2) * yy
                                    + rng.uniform())) for _ in range(3)]
    return np.clip((np.stack(channels, -1) * 0.4 + 0.5) * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for i in range(4):
        Image.fromarray(_photo(40, 48, i)).save(root / f"p{i}.png")
    (root / "sub").mkdir()
    Image.fromarray(_photo(36, 36, 9)).save(root / "sub" / "small.png")  # resized up to crop
    return root


@pytest.fixture(scope="module")
def inpaint_run(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "inpaint"
    result = invoke("train", "inpaint", "--out", run, "--set", f"data.root={photos}",
                    "--set", "data.crop_size=32", *TINY_MODEL, "--set", "train.steps=4",
                    "--set", "train.batch_size=2", "--set", "train.log_every=2",
                    "--set", "train.sample_every=2", "--set", "train.checkpoint_every=2", "-q")
    assert result.exit_code == 0, result.output
    return run


# ── Network.


@pytest.mark.parametrize(("gated", "prefill"), [(True, "pushpull"), (True, "zeros"),
                                               (False, "pushpull")])
def test_generator_shapes_gradients_and_exact_known_pixels(gated: bool, prefill: str) -> None:
    torch.manual_seed(0)
    net = InpaintGenerator(ngf=8, n_blocks=2, gated=gated, prefill=prefill)
    image = torch.rand(2, 3, 36, 44) * 2 - 1  # multiples of 4, not of 8
    mask = (torch.rand(2, 1, 36, 44) > 0.6).float()
    out = net(image, mask)
    assert out.shape == image.shape and torch.isfinite(out).all()
    known = (mask == 0).expand_as(image)
    assert torch.equal(out[known], image[known])  # bit-exact, not merely close
    hole = ~known
    assert not torch.equal(out[hole], image[hole])  # the holes are filled by the network
    out.abs().mean().backward()
    missing = params_without_grad(net)
    assert not missing, f"parameters without gradient: {missing}"


def test_known_pixels_exact_under_bf16_autocast() -> None:
    net = InpaintGenerator(ngf=8, n_blocks=1)
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    mask = (torch.rand(1, 1, 16, 16) > 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(image, mask)
    assert out.dtype == torch.float32
    known = (mask == 0).expand_as(image)
    assert torch.equal(out[known], image[known])


def test_holes_do_not_leak_the_hidden_pixels() -> None:
    # Whatever is under the hole must not change the prediction (the input is zeroed there).
    net = InpaintGenerator(ngf=8, n_blocks=1)
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    other = torch.where(mask.bool(), torch.rand_like(image), image)
    assert torch.allclose(net.fill(image, mask), net.fill(other, mask))


def test_push_pull_keeps_known_pixels_and_interpolates_holes() -> None:
    image = torch.rand(2, 3, 37, 45)
    known = (torch.rand(2, 1, 37, 45) > 0.7).float()
    filled = push_pull(image, known)
    keep = known.expand_as(image) > 0
    assert filled.shape == image.shape and torch.equal(filled[keep], image[keep])
    assert filled.min() >= image.min() and filled.max() <= image.max()  # convex combinations
    flat = torch.full((1, 3, 16, 16), 0.3)
    edge = torch.zeros(1, 1, 16, 16)
    edge[..., 0, :] = 1  # only the top row known
    assert torch.allclose(push_pull(flat, edge), flat)
    # An untrained pushpull generator returns (nearly) that fill: training starts from it.
    net = InpaintGenerator(ngf=8, n_blocks=1)
    out = net(flat * 2 - 1, 1 - edge)
    assert (out - (flat * 2 - 1)).abs().max() < 0.05


def test_generator_refuses_sizes_it_cannot_return() -> None:
    net = InpaintGenerator(ngf=8, n_blocks=1)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.zeros(1, 3, 30, 32), torch.zeros(1, 1, 30, 32))


# ── Data.


def test_dataset_items_are_seeded_by_epoch_and_index(photos: Path) -> None:
    data = InpaintDataset(photos, crop_size=32, seed=3)
    assert len(data) == 5
    item = data[(0, 1)]
    assert item["image"].shape == (3, 32, 32) and item["mask"].shape == (1, 32, 32)
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0} and item["mask"].sum() > 0
    again = InpaintDataset(photos, crop_size=32, seed=3)[(0, 1)]
    assert torch.equal(item["image"], again["image"]) and torch.equal(item["mask"], again["mask"])
    later = data[(1, 1)]
    assert not torch.equal(item["mask"], later["mask"])
    small = [data[(0, i)] for i in range(len(data)) if "small" in data[(0, i)]["path"]]
    assert small and small[0]["image"].shape == (3, 32, 32)


def test_dataset_bad_folder_and_preset(tmp_path: Path, photos: Path) -> None:
    with pytest.raises(TranslateError, match="not found"):
        InpaintDataset(tmp_path / "nope")
    with pytest.raises(TranslateError, match="holds no images"):
        InpaintDataset(tmp_path)
    with pytest.raises(TranslateError, match="unknown mask preset"):
        InpaintDataset(photos, presets=("huge",))


# ── Training.


@pytest.mark.slow
def test_overfit_a_tiny_batch(photos: Path) -> None:
    torch.manual_seed(0)
    cfg = load_config("inpaint", overrides=[
        f"data.root={photos}", "data.crop_size=32", "model.ngf=16", "model.n_blocks=2",
        "model.ndf=8", "model.n_layers=2", "train.lr=3e-3", "train.ema=0",
        "loss.adversarial=0.01",
    ])
    task = InpaintTask(cfg, torch.device("cpu"))
    items = [task.dataset[(0, i)] for i in range(2)]
    batch = {"image": torch.stack([x["image"] for x in items]),
             "mask": torch.stack([x["mask"] for x in items])}

    def hole_l1() -> float:  # mean |error| per hole pixel of the raw prediction, [-1, 1] scale
        with torch.no_grad():
            pred = task.G.fill(batch["image"], batch["mask"])
        return float((pred - batch["image"]).abs()[batch["mask"].expand_as(pred) > 0].mean())

    precision = Precision("fp32", torch.device("cpu"))
    before = hole_l1()
    losses = task.train_step(batch, precision)
    assert set(losses) == {"D", "hole", "valid", "adv"}
    for _ in range(99):
        task.train_step(batch, precision)
    after = hole_l1()
    assert after < 0.35 * before and after < 0.1, (before, after)


def test_without_the_adversarial_term_d_is_not_stepped(photos: Path) -> None:
    cfg = load_config("inpaint", overrides=[
        f"data.root={photos}", "data.crop_size=32", "model.ngf=8", "model.n_blocks=1",
        "model.ndf=8", "model.n_layers=2", "train.ema=0", "loss.adversarial=0",
    ])
    task = InpaintTask(cfg, torch.device("cpu"))
    items = [task.dataset[(0, i)] for i in range(2)]
    batch = {"image": torch.stack([x["image"] for x in items]),
             "mask": torch.stack([x["mask"] for x in items])}
    d_before = {k: v.clone() for k, v in task.D.state_dict().items()}
    g_before = [p.detach().clone() for p in task.G.parameters()]
    losses = task.train_step(batch, Precision("fp32", torch.device("cpu")))
    assert set(losses) == {"hole", "valid"}
    assert all(torch.equal(v, task.D.state_dict()[k]) for k, v in d_before.items())
    assert any(not torch.equal(a, b) for a, b in zip(g_before, task.G.parameters(), strict=True))
    assert "D" in task.networks() and "opt_d" in task.optimizers()  # still checkpointed


def test_shipped_config_equals_the_defaults() -> None:
    assert load_config("inpaint", CONFIGS / "inpaint.yaml") == InpaintConfig()
    in_file = yaml.safe_load((CONFIGS / "inpaint.yaml").read_text(encoding="utf-8"))
    assert in_file == to_dict(InpaintConfig())


def test_bad_config_values_are_named() -> None:
    with pytest.raises(TranslateError, match="data.masks"):
        load_config("inpaint", overrides=["data.masks=thin,huge"])
    with pytest.raises(TranslateError, match="unknown config key 'model.gatd'"):
        load_config("inpaint", overrides=["model.gatd=false"])


# ── Mask pairing.


def _write_mask(path: Path, hole: np.ndarray, hole_value: int = 255) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(hole, hole_value, 255 - hole_value).astype(np.uint8)).save(path)


def test_pairing_rules(tmp_path: Path) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    (images / "sub").mkdir(parents=True)
    for name in ("a.png", "b.jpg", "sub/c.png", "d.png", "e.png"):
        Image.fromarray(_photo(8, 8, 0)).save(images / name)
    hole = np.zeros((8, 8), bool)
    _write_mask(masks / "a_mask000.png", hole)  # LaMa name
    _write_mask(masks / "b.png", hole)  # same name, other extension
    _write_mask(masks / "sub" / "c_mask.png", hole)  # mirrored subfolder
    _write_mask(masks / "e_mask1.png", hole)  # two candidates: ambiguous
    _write_mask(masks / "e_mask2.png", hole)
    _write_mask(masks / "z_mask000.png", hole)  # orphan
    pairing = MaskFolder(masks).match(images)
    assert {k.relative_to(images).as_posix(): v.relative_to(masks).as_posix()
            for k, v in pairing.masks.items()} == {
        "a.png": "a_mask000.png", "b.jpg": "b.png", "sub/c.png": "sub/c_mask.png"}
    assert set(p.name for p in pairing.problems) == {"d.png", "e.png"}
    assert "no mask" in pairing.problems[images / "d.png"]
    assert "several masks" in pairing.problems[images / "e.png"]
    assert [p.name for p in pairing.orphans] == ["z_mask000.png"]


def test_pairing_with_masks_beside_the_images(tmp_path: Path) -> None:
    Image.fromarray(_photo(8, 8, 0)).save(tmp_path / "a.png")
    _write_mask(tmp_path / "a_mask001.png", np.ones((8, 8), bool))
    pairing = MaskFolder(tmp_path).match(tmp_path)
    assert pairing.masks == {tmp_path / "a.png": tmp_path / "a_mask001.png"}
    assert not pairing.problems and not pairing.orphans


# ── CLI: train → infer → eval.


def test_train_writes_the_run(inpaint_run: Path) -> None:
    names = {p.relative_to(inpaint_run).as_posix() for p in inpaint_run.rglob("*") if p.is_file()}
    assert {"config.yaml", "state/last.pt", "model.safetensors", "model.json",
            "samples/step_0000004.png", "metrics.jsonl"} <= names
    meta = json.loads((inpaint_run / "model.json").read_text())
    assert meta["task"] == "inpaint" and meta["size_multiple"] == 4
    assert meta["networks"]["G"]["class"] == "InpaintGenerator"
    lines = [json.loads(x) for x in (inpaint_run / "metrics.jsonl").read_text().splitlines()]
    assert {"hole", "valid", "adv", "D"} <= set(lines[-1])


def _infer_case(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    images, masks = tmp_path / "in", tmp_path / "masks"
    images.mkdir()
    rng = np.random.default_rng(0)
    holes = {}
    rgb = _photo(37, 45, 1)  # odd size: padded to the multiple and cropped back
    Image.fromarray(rgb).save(images / "rgb.png")
    Image.fromarray(_photo(24, 20, 2)[..., 0]).save(images / "gray.png")
    rgba = np.dstack([_photo(16, 16, 3), rng.integers(0, 256, (16, 16), dtype=np.uint8)])
    Image.fromarray(rgba).save(images / "rgba.png")
    for name, (h, w) in {"rgb": (37, 45), "gray": (24, 20), "rgba": (16, 16)}.items():
        holes[name] = generate_mask(h, w, "thick", np.random.default_rng(len(name))).astype(bool)
    _write_mask(masks / "rgb_mask000.png", holes["rgb"])
    _write_mask(masks / "gray.png", holes["gray"], hole_value=0)  # black: 0 = hole ...
    _write_mask(masks / "rgba.png", holes["rgba"], hole_value=0)
    return images, masks, holes


def test_infer_keeps_known_pixels_bit_exact(inpaint_run: Path, tmp_path: Path) -> None:
    images, masks, holes = _infer_case(tmp_path)
    out = tmp_path / "out"
    result = invoke("infer", inpaint_run, images, out, "--masks", masks, "--hole", "black", "-q")
    # ... so the LaMa-named white mask reads inverted: still a valid mask, a different hole.
    assert result.exit_code == 0, result.output
    holes["rgb"] = ~holes["rgb"]
    for name in ("rgb", "gray", "rgba"):
        before = np.array(Image.open(images / f"{name}.png"))
        after = np.array(Image.open(out / f"{name}.png"))
        assert after.shape == before.shape and after.dtype == before.dtype
        hole = holes[name]
        assert np.array_equal(after[~hole], before[~hole]), name
        if name == "rgba":
            assert np.array_equal(after[..., 3], before[..., 3])  # alpha kept as it was
    assert not (out / "failures.jsonl").exists()


def test_infer_reports_every_pairing_problem(inpaint_run: Path, tmp_path: Path) -> None:
    images, masks = tmp_path / "in", tmp_path / "masks"
    images.mkdir()
    for name in ("ok", "nomask", "wrongsize", "colour"):
        Image.fromarray(_photo(16, 16, 0)).save(images / f"{name}.png")
    hole = np.zeros((16, 16), bool)
    hole[4:8, 4:8] = True
    _write_mask(masks / "ok_mask000.png", hole)
    _write_mask(masks / "wrongsize_mask000.png", np.ones((12, 16), bool))
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[..., 0] = 255
    Image.fromarray(colour).save(masks / "colour_mask000.png")
    _write_mask(masks / "orphan_mask000.png", hole)
    out = tmp_path / "out"
    result = invoke("infer", inpaint_run, images, out, "--masks", masks, "-q")
    assert result.exit_code == 1, result.output
    assert sorted(p.name for p in out.iterdir()) == ["failures.jsonl", "ok.png"]
    failures = {Path(f["path"]).name: f["reason"] for f in
                map(json.loads, (out / "failures.jsonl").read_text().splitlines())}
    assert set(failures) == {"nomask.png", "wrongsize.png", "colour.png", "orphan_mask000.png"}
    assert "no mask for this image" in failures["nomask.png"]
    assert "is 16×12, the image is 16×16" in failures["wrongsize.png"]
    assert "colour_mask000.png" in failures["colour.png"]
    assert "colour channels that differ" in failures["colour.png"]
    assert "mask without an image" in failures["orphan_mask000.png"]


def test_infer_bad_input_one_line_errors(inpaint_run: Path, tmp_path: Path) -> None:
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(_photo(16, 16, 0)).save(images / "a.png")
    out = tmp_path / "out"
    assert "mask folder not found" in error_line(
        invoke("infer", inpaint_run, images, out, "--masks", tmp_path / "none"))
    assert "give the holes with --masks" in error_line(invoke("infer", inpaint_run, images, out))
    assert "--hole grey" in error_line(
        invoke("infer", inpaint_run, images, out, "--masks", images, "--hole", "grey"))
    # A translation model is not an inpainting model, and the other way round.
    translation = tmp_path / "cyclegan"
    save_model(translation, "cyclegan", {"G_AB": ResnetGenerator(ngf=4, n_blocks=1)},
               {"directions": {"a2b": "G_AB"}, "size_multiple": 4, "value_range": [-1, 1]})
    assert "--masks is for inpainting models" in error_line(
        invoke("infer", translation, images, out, "--masks", images))
    assert not out.exists()  # nothing written by any of these
    assert "'inpaint' model" in error_line(invoke("sample", inpaint_run, "--out",
                                                  tmp_path / "g.png"))


def test_eval_model_against_opencv(inpaint_run: Path, photos: Path, tmp_path: Path) -> None:
    result = invoke("eval", inpaint_run, "--images", photos, "--mask-preset", "medium",
                    "--mask-preset", "thick", "--seed", "1")
    assert result.exit_code == 0, result.output
    for word in ("model", "cv2 Telea", "cv2 NS", "medium", "thick"):
        assert word in result.output
    data = json.loads((inpaint_run / "eval_inpaint.json").read_text())
    (entry,) = data.values()
    assert [s["masks"] for s in entry["sets"]] == ["medium", "thick"]
    for s in entry["sets"]:
        assert s["n_images"] == 5 and 0.05 < s["hole_fraction"] < 0.6
        assert set(s["scores"]) == {"model", "cv2 Telea", "cv2 NS"}
        for sc in s["scores"].values():
            assert 5 < sc["psnr"] < 60 and 0 < sc["ssim"] <= 1 and 0 < sc["l1"] < 1
    # OpenCV's methods are deterministic: the same seed gives the same figures.
    again = invoke("eval", inpaint_run, "--images", photos, "--mask-preset", "medium",
                   "--mask-preset", "thick", "--seed", "1")
    assert again.exit_code == 0
    assert json.loads((inpaint_run / "eval_inpaint.json").read_text()) == data


def test_eval_with_mask_folder_and_sorted_pairing(inpaint_run: Path, tmp_path: Path) -> None:
    images, masks = tmp_path / "gt", tmp_path / "masks"
    images.mkdir()
    for i in range(2):
        Image.fromarray(_photo(32, 32, i)).save(images / f"{i:03d}.png")
        hole = generate_mask(32, 32, "medium", np.random.default_rng(i)).astype(bool)
        _write_mask(masks / f"m{i}.png", hole, hole_value=0)  # names do not match the images
    error = error_line(invoke("eval", inpaint_run, "--images", images, "--masks", masks,
                              "--hole", "black"))
    assert "no mask for this image" in error and "--pair sorted" in error
    result = invoke("eval", inpaint_run, "--images", images, "--masks", masks, "--hole", "black",
                    "--pair", "sorted")
    assert result.exit_code == 0, result.output
    data = json.loads((inpaint_run / "eval_inpaint.json").read_text())
    key = next(k for k in data if str(masks) in k)
    assert data[key]["sets"][0]["n_images"] == 2


def test_eval_bad_input(inpaint_run: Path, photos: Path, tmp_path: Path) -> None:
    assert "--images DIR" in error_line(invoke("eval", inpaint_run))
    assert "not both" in error_line(invoke("eval", inpaint_run, "--images", photos, "--masks",
                                           photos, "--mask-preset", "thin"))
    assert "--mask-preset huge: must be one of thin, medium, thick" in error_line(
        invoke("eval", inpaint_run, "--images", photos, "--mask-preset", "huge"))
    images, masks = tmp_path / "gt", tmp_path / "masks"
    images.mkdir()
    Image.fromarray(_photo(32, 32, 0)).save(images / "a.png")
    _write_mask(masks / "a.png", np.ones((30, 32), bool))
    assert "is 32×30, the image" in error_line(
        invoke("eval", inpaint_run, "--images", images, "--masks", masks))
    _write_mask(masks / "a.png", np.zeros((32, 32), bool))
    assert "has no hole" in error_line(
        invoke("eval", inpaint_run, "--images", images, "--masks", masks))


@pytest.mark.slow
def test_resume_in_a_fresh_process_is_bitwise_identical(photos: Path, tmp_path: Path) -> None:
    """5 steps straight == 3 steps (mid-epoch: 2 batches per epoch), then 2 more resumed in a new
    process: masks and crops come from (seed, epoch, index), so the resumed run sees the same."""
    from translate.train.checkpoint import load_checkpoint

    common = ["--set", f"data.root={photos}", "--set", "data.crop_size=32", *TINY_MODEL,
              "--set", "train.batch_size=2", "--set", "train.ema=0.9", "-q"]
    for name, steps in (("straight", 5), ("split", 3)):
        fresh_cli(tmp_path, "train", "inpaint", "--out", name, *common, "--set",
                  f"train.steps={steps}")
    fresh_cli(tmp_path, "train", "inpaint", "--out", "split", "--resume", "-q", "--set",
              "train.steps=5")
    straight = load_checkpoint(tmp_path / "straight" / "state" / "last.pt")
    split = load_checkpoint(tmp_path / "split" / "state" / "last.pt")
    assert straight["step"] == split["step"] == 5
    assert_same_state(straight, split)
