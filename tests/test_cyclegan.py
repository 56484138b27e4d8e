"""CycleGAN on the shared core, at tiny widths: named losses per GAN loss, loss weights, the image
pool, the learning-rate schedule, EMA export, overfitting one pair, exact resume and samples."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import invoke, translate_cmd
from helpers import assert_same_state, smooth_image
from PIL import Image
from safetensors.torch import load_file
from torch.nn import functional as F
from torch.utils.data import default_collate

from translate.config import load_config
from translate.errors import TranslateError
from translate.io.images import read_image, write_image
from translate.runtime import Precision, seed_everything
from translate.train.checkpoint import load_checkpoint
from translate.train.cyclegan import CycleGanTask, ImagePool
from translate.train.loop import fit, linear_decay

CPU = torch.device("cpu")
CROP = 32
TINY = [
    "model.ngf=8",
    "model.n_blocks=2",
    "model.ndf=8",
    "data.load_size=36",
    f"data.crop_size={CROP}",
    "train.device=cpu",
    "train.epochs=0",
    "train.epochs_decay=0",
    "train.log_every=1",
    "train.sample_every=1000",
    "train.checkpoint_every=1000",
]
N_A, N_B = 4, 3  # an epoch is max(|A|, |B|) = 4 steps at batch size 1
ALL_LOSSES = {"D_A", "D_B", "G_AB", "G_BA", "cycle_A", "cycle_B", "idt_A", "idt_B"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """trainA (4 images) and trainB (3), 40 × 40."""
    root = tmp_path_factory.mktemp("unaligned")
    rng = np.random.default_rng(0)
    for domain, n in (("A", N_A), ("B", N_B)):
        for i in range(n):
            write_image(root / f"train{domain}" / f"{domain.lower()}{i}.png", smooth_image(rng, 40))
    return root


def build(root: Path, *overrides: str) -> tuple[Any, CycleGanTask]:
    cfg = load_config("cyclegan", overrides=[*TINY, f"data.root={root}", *overrides])
    seed_everything(cfg.train.seed)
    return cfg, CycleGanTask(cfg, CPU)


def batch_of(task: CycleGanTask, *indices: int, epoch: int = 0) -> dict[str, Any]:
    items = [task.dataset.item(i, epoch=epoch) for i in indices]
    return task.to_device(default_collate(items))


def metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# ── One step, per GAN loss.


@pytest.mark.slow
@pytest.mark.parametrize("gan_loss", ["lsgan", "bce", "hinge", "ragan"])
def test_one_step_gives_every_named_loss_finite(root: Path, gan_loss: str) -> None:
    _, task = build(root, f"train.gan_loss={gan_loss}")
    before = [p.detach().clone() for p in task.G_AB.parameters()]
    losses = task.train_step(batch_of(task, 0), Precision("fp32", CPU))
    assert set(losses) == ALL_LOSSES
    assert all(np.isfinite(v) for v in losses.values()), losses
    # A real step was taken: G_AB's weights moved.
    assert any(not torch.equal(a, b) for a, b in zip(before, task.G_AB.parameters(), strict=True))


def test_without_identity_weight_there_are_no_identity_losses(root: Path) -> None:
    _, task = build(root, "loss.lambda_identity=0")
    losses = task.train_step(batch_of(task, 0), Precision("fp32", CPU))
    assert set(losses) == ALL_LOSSES - {"idt_A", "idt_B"}
    assert all(np.isfinite(v) for v in losses.values()), losses


@pytest.mark.slow
def test_losses_differ_between_gan_loss_kinds(root: Path) -> None:
    """The config's gan_loss reaches the step (same weights and batch, other D/G values)."""
    seen = {}
    for kind in ("lsgan", "bce", "hinge", "ragan"):
        _, task = build(root, f"train.gan_loss={kind}")
        seen[kind] = task.train_step(batch_of(task, 0), Precision("fp32", CPU))
    assert len({round(s["D_A"], 6) for s in seen.values()}) == 4
    assert len({round(s["G_AB"], 6) for s in seen.values()}) == 4
    # Cycle terms are computed before G moves, from the same initial weights: equal across kinds.
    assert len({s["cycle_A"] for s in seen.values()}) == 1


# ── Loss weights.


def _first_step(root: Path, *overrides: str) -> tuple[dict[str, float], float]:
    """Losses of one step, and ‖G_BA(G_AB(a)) − a‖₁ with the weights the step started from."""
    _, task = build(root, *overrides)
    batch = batch_of(task, 1)
    with torch.no_grad():
        l1 = float(F.l1_loss(task.G_BA(task.G_AB(batch["A"])), batch["A"]))
    return task.train_step(batch, Precision("fp32", CPU)), l1


@pytest.mark.slow
def test_cycle_loss_is_lambda_a_times_l1_of_the_reconstruction(root: Path) -> None:
    base, l1 = _first_step(root, "loss.lambda_a=10")
    zero, _ = _first_step(root, "loss.lambda_a=0")
    double, l1_again = _first_step(root, "loss.lambda_a=20")
    assert l1 == l1_again and l1 > 0.05
    assert base["cycle_A"] == pytest.approx(10 * l1, rel=1e-5)
    assert zero["cycle_A"] == 0.0
    assert double["cycle_A"] == pytest.approx(2 * base["cycle_A"], rel=1e-6)
    # λ_A also weighs the identity term of domain A (λ_idt λ_A ‖G_BA(a) − a‖₁) …
    assert zero["idt_A"] == 0.0
    assert double["idt_A"] == pytest.approx(2 * base["idt_A"], rel=1e-6)
    # … and nothing that does not depend on it: B's terms and the D step are unchanged.
    for key in ("cycle_B", "idt_B", "D_A", "D_B"):
        assert zero[key] == base[key] == double[key], key


# ── The image pool.


def _images(*values: float) -> torch.Tensor:
    """(len(values), 3, 4, 4) images, image i filled with values[i]."""
    return torch.stack([torch.full((3, 4, 4), float(v)) for v in values])


def test_pool_of_size_zero_returns_the_input() -> None:
    pool = ImagePool(0)
    x = torch.randn(3, 3, 4, 4)
    assert torch.equal(pool.query(x), x)
    assert pool.images == []


def test_pool_until_full_returns_and_stores_the_inputs() -> None:
    pool = ImagePool(5)
    first, second = _images(0, 1, 2), _images(3, 4)
    torch.manual_seed(0)
    rng_before = torch.get_rng_state()
    assert torch.equal(pool.query(first), first)
    assert torch.equal(pool.query(second), second)
    assert torch.equal(torch.cat(pool.images), torch.cat([first, second]))
    assert torch.equal(torch.get_rng_state(), rng_before)  # no draws while filling


def test_full_pool_swaps_about_half() -> None:
    pool = ImagePool(5)
    pool.query(_images(*range(5)))
    torch.manual_seed(0)
    swapped = 0
    for k in range(5, 205):
        out = pool.query(_images(k))
        value = float(out[0, 0, 0, 0])
        assert torch.equal(out, torch.full_like(out, value))  # a whole image, not a mix
        if value != k:
            swapped += 1
            assert value < k and value == int(value)  # an image that was queried before
        assert len(pool.images) == 5
    assert 0.3 * 200 <= swapped <= 0.7 * 200, swapped
    # The pool keeps turning over: it holds recent images, not the first five.
    assert max(float(t[0, 0, 0, 0]) for t in pool.images) > 150


def test_pool_stores_detached_clones() -> None:
    pool = ImagePool(4)
    x = _images(1, 2)
    pool.query(x)
    x.add_(100)  # the caller reuses its buffer
    assert [float(t.max()) for t in pool.images] == [1.0, 2.0]
    w = torch.ones(1, requires_grad=True)
    pool.query(_images(3, 4) * w)
    assert not any(t.requires_grad for t in pool.images)


def test_pool_state_dict_round_trip() -> None:
    pool = ImagePool(3)
    pool.query(torch.randn(3, 3, 4, 4))
    buffer = io.BytesIO()
    torch.save(pool.state_dict(), buffer)  # as a checkpoint stores it
    buffer.seek(0)
    other = ImagePool(3)
    other.load_state_dict(torch.load(buffer, weights_only=True), CPU)
    assert len(other.images) == 3
    assert all(torch.equal(a, b) for a, b in zip(pool.images, other.images, strict=True))
    x = torch.randn(8, 3, 4, 4)
    torch.manual_seed(5)
    out = pool.query(x)
    torch.manual_seed(5)
    assert torch.equal(other.query(x), out)
    assert not torch.equal(out, x)  # some were swapped, so the pool's contents mattered


# ── Learning rate.


def test_linear_decay_factors() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = linear_decay(opt, epochs=3, epochs_decay=4)
    seen = []
    for _ in range(7):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradients: a no-op, in the order PyTorch expects
        scheduler.step()
    expected = [0.1 * f for f in (1, 1, 1, 1 - 1 / 5, 1 - 2 / 5, 1 - 3 / 5, 1 - 4 / 5)]
    assert seen == pytest.approx(expected, rel=1e-12)
    # The reference formula, factor(e) = 1 − max(0, e + 1 − epochs) / (epochs_decay + 1).
    assert seen == pytest.approx(
        [0.1 * (1 - max(0, e + 1 - 3) / (4 + 1)) for e in range(7)], rel=1e-12
    )


@pytest.mark.slow
def test_fit_by_epochs_logs_the_decaying_lr(root: Path, tmp_path: Path) -> None:
    cfg, task = build(root, "train.epochs=1", "train.epochs_decay=2", "train.lr=1e-3")
    result = fit(task, cfg.train, tmp_path / "run", cfg, show_progress=False)
    assert result.step == 3 * N_A
    lines = metrics(tmp_path / "run")
    assert [x["epoch"] for x in lines] == [0] * N_A + [1] * N_A + [2] * N_A
    factor = {0: 1.0, 1: 1 - 1 / 3, 2: 1 - 2 / 3}
    for x in lines:
        assert x["lr"] == pytest.approx(1e-3 * factor[x["epoch"]], rel=1e-9), x
    # D's optimizer follows the same schedule.
    assert task.opt_d.param_groups[0]["lr"] == pytest.approx(1e-3 / 3, rel=1e-9)


# ── EMA and the exported model.


def test_ema_is_the_running_average_of_the_weights(root: Path) -> None:
    _, task = build(root, "train.ema=0.5")
    start = {k: v.clone() for k, v in task.G_AB.state_dict().items()}
    task.train_step(batch_of(task, 0), Precision("fp32", CPU))
    ema = task.emas["G_AB"].model.state_dict()
    moved = 0
    for key, trained in task.G_AB.state_dict().items():
        expected = 0.5 * start[key] + 0.5 * trained
        assert torch.allclose(ema[key], expected, atol=1e-7), key
        moved += not torch.equal(trained, start[key])
    assert moved > 0


@pytest.mark.slow
def test_exported_model_holds_the_ema_weights(root: Path, tmp_path: Path) -> None:
    cfg, task = build(root, "train.ema=0.5", "train.steps=3")
    fit(task, cfg.train, tmp_path / "run", cfg, show_progress=False)
    run = tmp_path / "run"
    state = load_checkpoint(run / "state" / "last.pt")
    assert set(state["networks"]) == {"G_AB", "G_BA", "D_A", "D_B", "G_AB_ema", "G_BA_ema"}
    exported = load_file(run / "model.safetensors")
    assert {k.split(".", 1)[0] for k in exported} == {"G_AB", "G_BA"}
    for name in ("G_AB", "G_BA"):
        differs = 0
        for key, trained in state["networks"][name].items():
            tensor = exported[f"{name}.{key}"]
            assert torch.equal(tensor, state["networks"][f"{name}_ema"][key]), (name, key)
            differs += not torch.equal(tensor, trained)
        assert differs > 0, f"{name}: the export equals the trained weights, not the EMA"
    meta = json.loads((run / "model.json").read_text())
    assert meta["task"] == "cyclegan" and meta["ema"] is True
    assert {k: v["class"] for k, v in meta["networks"].items()} == {
        "G_AB": "ResnetGenerator",
        "G_BA": "ResnetGenerator",
    }
    assert meta["networks"]["G_AB"]["args"]["ngf"] == 8
    assert meta["directions"] == {"a2b": "G_AB", "b2a": "G_BA"}


# ── Learning.


@pytest.mark.slow
def test_overfits_a_single_pair(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    write_image(tmp_path / "pair" / "trainA" / "a.png", smooth_image(rng, CROP))
    write_image(tmp_path / "pair" / "trainB" / "b.png", smooth_image(rng, CROP))
    cfg, task = build(
        tmp_path / "pair", f"data.load_size={CROP}", "data.flip=false", "train.steps=100",
        "train.lr=1e-3",
    )
    fit(task, cfg.train, tmp_path / "run", cfg, show_progress=False)
    lines = metrics(tmp_path / "run")
    assert len(lines) == 100
    for key in ("cycle_A", "cycle_B"):
        first = lines[0][key]
        last = float(np.mean([x[key] for x in lines[-5:]]))
        # Measured (3 data seeds × 2 training seeds): last / first = 0.10–0.15.
        assert last < 0.3 * first, (key, first, last)


# ── Exact resume in a fresh process.


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [[], ["loss.pool_size=2", "train.ema=0.9"]],
    ids=["pool-filling", "pool-full-and-ema"],
)
def test_resume_in_a_fresh_process_is_bitwise_identical(
    root: Path, tmp_path: Path, extra: list[str]
) -> None:
    """8 steps straight == 4 steps, then 4 more resumed by `translate train --resume` in a new
    process. With pool_size 2 the pools are full and swapping (drawing from the RNG) by step 4."""
    for name, steps in (("straight", 8), ("split", 4)):
        cfg, task = build(root, "train.log_every=2", *extra, f"train.steps={steps}")
        fit(task, cfg.train, tmp_path / name, cfg, show_progress=False)
    rest = subprocess.run(
        translate_cmd("train", "cyclegan", "--out", "split", "--resume", "-q",
                      "--set", "train.steps=8"),
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert rest.returncode == 0, rest.stderr
    assert "resuming" in rest.stderr
    straight = load_checkpoint(tmp_path / "straight" / "state" / "last.pt")
    split = load_checkpoint(tmp_path / "split" / "state" / "last.pt")
    assert straight["step"] == split["step"] == 8
    pools = straight["extra"]
    expected = 2 if extra else 8  # batch size 1: one fake per domain per step
    assert [len(pools[p]["images"]) for p in ("pool_A", "pool_B")] == [expected, expected]
    # Everything: networks (and EMA copies), optimizers, RNG states, pools, position.
    assert_same_state(straight, split)
    records = metrics(tmp_path / "split")
    assert [x["step"] for x in records if "changed" not in x] == [2, 4, 6, 8]
    assert [x["changed"] for x in records if "changed" in x] == [{"train.steps": [4, 8]}]


# ── Samples and memory format.


@pytest.mark.slow
def test_sample_grid_file_size(root: Path, tmp_path: Path) -> None:
    cfg, task = build(root, "train.steps=2", "train.sample_every=1")
    fit(task, cfg.train, tmp_path / "run", cfg, show_progress=False)
    samples = sorted(p.name for p in (tmp_path / "run" / "samples").iterdir())
    assert samples == ["step_0000001.png", "step_0000002.png"]
    with Image.open(tmp_path / "run" / "samples" / samples[-1]) as im:
        # 3 columns (x, G(x), G'(G(x))) × 2 × 3 rows (A then B) of 32 px tiles, 2 px padding.
        assert im.size == (3 * (CROP + 2) + 2, 2 * 3 * (CROP + 2) + 2)


@pytest.mark.slow
def test_channels_last_gives_the_same_losses(root: Path) -> None:
    """NHWC is a layout, not a model change: the same seed gives the same losses, also after
    the first updates (step 1's losses come before any update, so they alone would not show
    wrong gradients)."""
    runs = {}
    for flag in ("false", "true"):
        _, task = build(root, f"train.channels_last={flag}")
        precision = Precision("fp32", CPU)
        runs[flag] = [task.train_step(batch_of(task, i), precision) for i in range(3)]
        weight = next(task.G_AB.parameters())
        assert weight.is_contiguous(memory_format=torch.channels_last) == (flag == "true")
    for step, (plain, nhwc) in enumerate(zip(runs["false"], runs["true"], strict=True), 1):
        assert set(plain) == set(nhwc) == ALL_LOSSES
        for key in plain:
            assert nhwc[key] == pytest.approx(plain[key], abs=1e-4), (step, key)


# ── A U-Net generator (model.net).


def test_a_unet_cyclegan_trains_saves_and_translates_at_any_size(root: Path,
                                                                   tmp_path: Path) -> None:
    """model.net=unet_64 with resize upsampling: both generators are U-Nets; the model file
    names them with their arguments and asks for mirror padding to a multiple of 64, so
    `translate infer` keeps an odd-sized image's size."""
    sets = [*TINY, f"data.root={root}", "model.net=unet_64", "model.upsample=resize",
            "data.load_size=64", "data.crop_size=64", "train.steps=2"]
    run = tmp_path / "run"
    result = invoke("train", "cyclegan", "--out", run,
                    *[a for s in sets for a in ("--set", s)], "-q")
    assert result.exit_code == 0, result.output
    meta = json.loads((run / "model.json").read_text())
    assert meta["size_multiple"] == 64 and meta["padding"] == "mirror"
    for name in ("G_AB", "G_BA"):
        assert meta["networks"][name]["class"] == "UnetGenerator"
        assert meta["networks"][name]["args"] == {
            "in_ch": 3, "out_ch": 3, "num_downs": 6, "ngf": 8, "norm": "instance",
            "dropout": False, "upsample": "resize"}
    write_image(tmp_path / "in" / "odd.png", smooth_image(np.random.default_rng(1), 37, 70))
    result = invoke("infer", run, tmp_path / "in", tmp_path / "out", "-q")
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "out" / "odd.png").array.shape == (37, 70, 3)


def test_a_unet_needs_a_crop_of_its_multiple(root: Path) -> None:
    with pytest.raises(TranslateError, match=r"data.crop_size.*multiple of 64.*unet_64"):
        build(root, "model.net=unet_64")  # the tiny crop is 32
    with pytest.raises(TranslateError, match="model.net"):
        build(root, "model.net=unet_32")
    with pytest.raises(TranslateError, match="model.input_skip.*upsample=resize"):
        build(root, "model.input_skip=true")  # the ResNet
