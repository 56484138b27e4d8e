"""A config never lies: every key a task accepts acts, or is refused at load naming the key and
the task; values that would crash later (ranges, NaN, sizes the networks cannot take, YAML
aliases that loop) are refused at load with one line naming the key and what it allows."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from conftest import error_line, invoke
from helpers import save_image, smooth_image

from translate.config import (
    SCHEMAS,
    SR_GENERATOR_LAYERS,
    gated_trunk_layers,
    load_config,
    min_input_size,
    patchgan_layers,
    resnet_trunk_layers,
    to_dict,
    to_yaml,
)
from translate.data.sr import collate
from translate.errors import TranslateError
from translate.nets.inpaint import InpaintGenerator
from translate.nets.patchgan import PatchDiscriminator
from translate.nets.resnet import ResnetGenerator
from translate.nets.sr import SRGenerator
from translate.runtime import Precision, seed_everything
from translate.train.checkpoint import load_checkpoint
from translate.train.cyclegan import CycleGanTask
from translate.train.inpaint import InpaintTask
from translate.train.loop import fit
from translate.train.mnist import GanTask, VaeTask
from translate.train.pix2pix import Pix2PixTask
from translate.train.sr import SrTask

CPU = torch.device("cpu")
CONFIGS = Path(__file__).parents[1] / "configs"
QUIET = ["train.log_every=1", "train.sample_every=1000", "train.checkpoint_every=1000",
         "train.device=cpu"]


def error_of(task: str, overrides: list[str] = (), path: Path | None = None,
             **kwargs: Any) -> str:
    with pytest.raises(TranslateError) as info:
        load_config(task, path=path, overrides=list(overrides), **kwargs)
    message = str(info.value)
    assert "\n" not in message, f"error message is not one line: {message!r}"
    return message


# ── Tiny data for the image tasks.


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four smooth 48 × 40 photos (SR and inpainting)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(4):
        save_image(root / f"p{i}.png", smooth_image(rng, 40, 48))
    return root


@pytest.fixture(scope="module")
def unaligned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """trainA/ and trainB/ with two 36 × 36 images each (CycleGAN)."""
    root = tmp_path_factory.mktemp("unaligned")
    rng = np.random.default_rng(1)
    for domain in "AB":
        for i in range(2):
            save_image(root / f"train{domain}" / f"{i}.png", smooth_image(rng, 36))
    return root


def tiny(task: str, data: dict[str, Path]) -> list[str]:
    """Overrides that make ``task`` small enough to build and step in a test."""
    return {
        "gan": ["train.batch_size=2500"],
        "vae": ["train.batch_size=2500"],
        "cyclegan": [f"data.root={data.get('unaligned')}", "model.ngf=4", "model.n_blocks=1",
                     "model.ndf=4", "data.load_size=36", "data.crop_size=32",
                     "train.epochs=0"],
        "sr": [f"data.root={data.get('photos')}", "model.nf=4", "model.n_blocks=1",
               "data.hr_size=32", "data.repeat=1", "train.batch_size=2"],
        "inpaint": [f"data.root={data.get('photos')}", "model.ngf=4", "model.n_blocks=1",
                    "model.ndf=4", "model.n_layers=2", "data.crop_size=32",
                    "train.batch_size=2"],
        # the unaligned folders' names pair (0.png ↔ 0.png)
        "pix2pix": [f"data.root={data.get('unaligned')}", "model.net=unet_128", "model.ngf=4",
                    "model.ndf=4", "data.load_size=128", "data.crop_size=128",
                    "train.epochs=0"],
    }[task]


TASK_CLASSES = {"gan": GanTask, "vae": VaeTask, "cyclegan": CycleGanTask, "sr": SrTask,
                "inpaint": InpaintTask, "pix2pix": Pix2PixTask}


def build(task: str, data: dict[str, Path], *overrides: str):
    cfg = load_config(task, overrides=[*QUIET, *tiny(task, data), *overrides])
    seed_everything(cfg.train.seed)
    return cfg, TASK_CLASSES[task](cfg, CPU)


# ── A. Keys a task cannot use: refused by the CLI, naming the key and the task, writing nothing.


REFUSED = [
    ("gan", "train.channels_last=true", []),
    ("vae", "train.channels_last=true", []),
    ("vae", "train.gan_loss=lsgan", []),
    ("gan", "train.fast_conv=true", []),
    ("vae", "train.fast_conv=false", []),
    ("pix2pix", "train.fast_conv=true", []),
    ("inpaint", "model.norm=batch", []),
    ("sr", "model.gc=16", []),
    ("sr", "data.degrade_prob=0.5", []),
    ("sr", "loss.perceptual_block=3", []),
    ("sr", "loss.perceptual_weights=vgg.weights.h5", []),
    # train.steps and train.epochs are alternatives; the decay follows the epochs.
    *[(task, "train.steps=3", ["--set", "train.epochs=2"]) for task in sorted(SCHEMAS)],
    *[(task, "train.epochs_decay=2", ["--set", "train.epochs=0"]) for task in sorted(SCHEMAS)],
    ("sr", "train.steps=3", ["--config", CONFIGS / "sr_x4_cpu.yaml"]),  # sets train.epochs
]


@pytest.mark.parametrize(("task", "setting", "extra"), REFUSED,
                         ids=[f"{t}-{s}" for t, s, _ in REFUSED])
def test_cli_refuses_a_key_the_task_cannot_use(task: str, setting: str, extra: list,
                                               tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = invoke("train", task, "--out", run, *extra, "--set", setting, "-q")
    assert result.exit_code != 0
    line = error_line(result)
    key = setting.split("=")[0]
    assert f"config key '{key}' has no effect for the {task} task" in line, line
    assert not run.exists()


@pytest.mark.parametrize("task", ["gan", "vae"])
def test_refused_keys_are_accepted_at_their_default(task: str) -> None:
    cfg = load_config(task, overrides=["train.channels_last=false", "train.gan_loss=bce"])
    assert cfg == SCHEMAS[task]()


def test_conditionally_unused_keys_are_accepted_where_they_act() -> None:
    load_config("sr", overrides=["model.block=rrdb", "model.gc=16"])
    load_config("sr", overrides=["data.blur=1", "data.degrade_prob=0.5"])
    load_config("sr", overrides=["loss.perceptual=0.1", "loss.perceptual_block=3"])
    load_config("inpaint", overrides=["model.gated=false", "model.norm=batch"])
    load_config("inpaint", overrides=["model.spectral_norm=false", "model.norm=batch"])


def test_steps_in_a_file_that_trains_by_epochs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  steps: 10\n  epochs: 2\n", encoding="utf-8")
    assert error_of("gan", path=path).startswith(
        "config key 'train.steps' has no effect for the gan task while train.epochs=2")
    # Without train.epochs, or with train.epochs=0 set over it, the steps act.
    assert load_config("gan", path=path, overrides=["train.epochs=0"]).train.steps == 10
    # The shipped epoch configs do not set train.steps, so setting the epochs alone is fine.
    assert load_config("cyclegan", CONFIGS / "cyclegan.yaml").train.epochs == 100
    assert load_config("cyclegan", overrides=["train.epochs=5"]).train.epochs == 5


def write_run_config(run: Path, task: str, *overrides: str) -> None:
    """A run folder's config.yaml as earlier versions wrote it: every key, resolved."""
    run.mkdir(parents=True)
    cfg = load_config(task, overrides=list(overrides))
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def test_resume_judges_only_the_overrides(tmp_path: Path) -> None:
    """A run's config.yaml holds every key (train.steps beside train.epochs > 0): resuming it is
    fine, but --set train.steps=N on a run trained by epochs is refused, not silently ignored."""
    run = tmp_path / "run"
    write_run_config(run, "sr", "train.epochs=3")
    assert load_config("sr", run / "config.yaml", from_run=True).train.epochs == 3
    before = sorted(p.name for p in run.iterdir())
    result = invoke("train", "sr", "--out", run, "--resume", "--set", "train.steps=10", "-q")
    assert result.exit_code != 0
    assert error_line(result).startswith(
        "error: config key 'train.steps' has no effect for the sr task while train.epochs=3")
    assert sorted(p.name for p in run.iterdir()) == before
    # Switching the run to steps is what the message offers, and is accepted.
    cfg = load_config("sr", run / "config.yaml", ["train.epochs=0", "train.steps=10"],
                      from_run=True)
    assert (cfg.train.epochs, cfg.train.steps) == (0, 10)


@pytest.mark.parametrize(("overrides", "left_out"), [
    (["train.epochs=3"], "steps"),
    (["train.epochs=0", "train.steps=7"], "epochs_decay"),  # at its default, 100: unused
    (["train.epochs=0", "train.epochs_decay=0"], None),  # not the default: kept, loads back
])
def test_saved_config_leaves_out_the_unused_length_key_and_loads_back(
        overrides: list[str], left_out: str | None, tmp_path: Path) -> None:
    cfg = load_config("cyclegan", overrides=overrides)
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(cfg), encoding="utf-8")
    saved = yaml.safe_load(path.read_text(encoding="utf-8"))["train"]
    assert set(to_dict(cfg)["train"]) - set(saved) == ({left_out} if left_out else set())
    assert load_config("cyclegan", path) == cfg  # as --config, and lossless


# ── A. Keys that now act: channels_last (SR), compile (gan, vae, sr), ema (gan, vae),
# epochs_decay (every task).


def sr_batch(task: SrTask) -> dict[str, torch.Tensor]:
    return task.to_device(collate([task.dataset.item(i, epoch=0) for i in (0, 1)]))


def conv_weights(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in net.parameters() if p.dim() == 4]


@pytest.mark.slow
def test_sr_channels_last_makes_nets_and_inputs_nhwc_with_the_same_losses(photos: Path) -> None:
    data = {"photos": photos}
    runs = {}
    for flag in (False, True):
        _, task = build("sr", data, f"train.channels_last={str(flag).lower()}", "loss.gan=true",
                        "train.ema=0.5")
        precision = Precision("fp32", CPU)
        batch = sr_batch(task)
        assert batch["lr"].is_contiguous(memory_format=torch.channels_last) == flag
        assert batch["hr"].is_contiguous(memory_format=torch.channels_last) == flag
        runs[flag] = [task.train_step(sr_batch(task), precision) for _ in range(2)]
        for net in (task.G, task.D, task.emas["G"].model):
            weights = conv_weights(net)
            assert weights and all(
                w.is_contiguous(memory_format=torch.channels_last) == flag for w in weights)
    for plain, nhwc in zip(runs[False], runs[True], strict=True):
        assert set(plain) == set(nhwc) == {"l1", "adv", "D"}
        for key in plain:
            assert nhwc[key] == pytest.approx(plain[key], abs=1e-4), key


@pytest.mark.slow
@pytest.mark.parametrize(("task", "expected"), [
    ("gan", ["G", "D"]), ("vae", ["vae"]), ("sr", ["G", "D"]),
])
def test_compile_wraps_the_networks_the_step_runs(task: str, expected: list[str], photos: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[Any] = []
    calls: dict[int, int] = {}

    def recording_compile(fn, **kwargs):
        compiled.append(fn)

        def run(*args, **kw):
            calls[id(fn)] = calls.get(id(fn), 0) + 1
            return fn(*args, **kw)

        return run

    monkeypatch.setattr(torch, "compile", recording_compile)
    data = {"photos": photos}
    extra = ["loss.gan=true"] if task == "sr" else []
    _, plain = build(task, data, *extra)
    assert compiled == []
    _, t = build(task, data, "train.compile=true", *extra)
    nets = [getattr(t, name) for name in expected]
    assert compiled == nets
    batch = sr_batch(t) if task == "sr" else t.to_device(t.dataset[list(range(8))])
    t.train_step(batch, Precision("fp32", CPU))
    assert all(calls.get(id(net), 0) > 0 for net in nets), calls  # the step ran through them


@pytest.mark.slow
@pytest.mark.parametrize(("task", "net", "saved"), [("gan", "G", "G"),
                                                    ("vae", "vae", "vae")])
def test_ema_is_kept_checkpointed_and_exported_for_the_mnist_tasks(
        task: str, net: str, saved: str) -> None:
    _, t = build(task, {}, "train.ema=0.5")
    model = getattr(t, net)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    t.train_step(t.to_device(t.dataset[list(range(64))]), Precision("fp32", CPU))
    ema = t.emas[net].model.state_dict()
    moved = 0
    for key, trained in model.state_dict().items():
        if trained.is_floating_point() and "running" not in key:
            assert torch.allclose(ema[key], 0.5 * start[key] + 0.5 * trained, atol=1e-7), key
            moved += not torch.equal(trained, start[key])
    assert moved > 0
    assert t.networks()[f"{saved}_ema"] is t.emas[net].model
    nets, meta = t.export()
    assert nets[saved] is t.emas[net].model and meta["ema"] is True


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(SCHEMAS))
def test_epochs_decay_schedules_every_optimizer_of_every_task(task: str, photos: Path,
                                                              unaligned: Path) -> None:
    data = {"photos": photos, "unaligned": unaligned}
    extra = ["loss.gan=true"] if task == "sr" else []
    _, t = build(task, data, "train.epochs=1", "train.epochs_decay=2", "train.lr=1e-3", *extra)
    assert set(t.schedulers) == set(t.optimizers()) and len(t.schedulers) >= 1
    seen = []
    for _ in range(3):
        seen.append([opt.param_groups[0]["lr"] for opt in t.optimizers().values()])
        for opt in t.optimizers().values():
            opt.step()  # no gradients: a no-op, in the order PyTorch expects
        t.end_epoch()
    for lrs, factor in zip(seen, (1.0, 2 / 3, 1 / 3), strict=True):
        assert lrs == pytest.approx([1e-3 * factor] * len(lrs), rel=1e-9)
    _, by_steps = build(task, data, *extra)
    assert by_steps.schedulers == {}


def metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_gan_epochs_decay_logs_a_falling_rate_and_resumes_it(tmp_path: Path) -> None:
    """5,000 digits at batch 2,500: 2 steps per epoch. 1 constant epoch + 2 decaying ones, then
    resumed with 2 more decay epochs: the resumed run continues the saved schedule (epoch 3),
    not a fresh one."""
    run = tmp_path / "run"
    cfg, t = build("gan", {}, "train.epochs=1", "train.epochs_decay=2", "train.lr=1e-3")
    assert fit(t, cfg.train, run, cfg, show_progress=False).step == 6
    lines = metrics(run)
    assert [x["epoch"] for x in lines] == [0, 0, 1, 1, 2, 2]
    for x in lines:  # factor(e) = 1 − max(0, e + 1 − epochs) / (epochs_decay + 1)
        assert x["lr"] == pytest.approx(1e-3 * (1 - x["epoch"] / 3), rel=1e-9), x
    state = load_checkpoint(run / "state" / "last.pt")  # saved in the last step of epoch 2
    assert (state["epoch"], state["batch_in_epoch"]) == (2, 2)
    assert {k: v["last_epoch"] for k, v in state["schedulers"].items()} == {"opt_g": 2,
                                                                             "opt_d": 2}
    cfg2, t2 = build("gan", {}, "train.epochs=1", "train.epochs_decay=4", "train.lr=1e-3")
    assert fit(t2, cfg2.train, run, cfg2, resume=True, show_progress=False).step == 10
    resumed = [x for x in metrics(run) if x["step"] > 6]
    assert [x["epoch"] for x in resumed] == [3, 3, 4, 4]
    for x in resumed:  # the new length, from the saved epoch: 1 − (e + 1 − 1) / 5
        assert x["lr"] == pytest.approx(1e-3 * (1 - x["epoch"] / 5), rel=1e-9), x


@pytest.mark.slow
def test_resuming_a_step_run_by_epochs_is_refused_not_restarted(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg, t = build("gan", {}, "train.steps=2")
    fit(t, cfg.train, run, cfg, show_progress=False)
    cfg2, t2 = build("gan", {}, "train.epochs=2")
    with pytest.raises(TranslateError, match="holds no learning-rate schedule"):
        fit(t2, cfg2.train, run, cfg2, resume=True, show_progress=False)


# ── B. Values that validate and then crash: refused at load, naming the key and the range.


BAD_VALUES = [
    ("gan", ["train.beta1=2"], "train.beta1", "in [0, 1)"),
    ("gan", ["train.beta2=-0.5"], "train.beta2", "in [0, 1)"),
    ("gan", ["train.lr=nan"], "train.lr", "finite number > 0"),
    ("gan", ["train.lr=inf"], "train.lr", "finite number > 0"),
    ("gan", ["train.lr=0"], "train.lr", "> 0"),
    ("vae", ["train.ema=1"], "train.ema", "in [0, 1)"),
    ("gan", [f"train.seed={2**32}"], "train.seed", "in [0, 4294967295]"),
    ("gan", ["train.seed=-1"], "train.seed", "in [0, 4294967295]"),
    ("gan", ["model.latent_dim=-5"], "model.latent_dim", "> 0"),
    ("vae", ["model.hidden=0"], "model.hidden", "> 0"),
    ("gan", ["train.batch_size=0"], "train.batch_size", "> 0"),
    ("gan", ["train.batch_size=1"], "train.batch_size", "must be >= 2 for the gan task"),
    ("gan", ["train.num_workers=-1"], "train.num_workers", ">= 0"),
    ("gan", ["train.max_nonfinite=0"], "train.max_nonfinite", "> 0"),
    ("gan", ["train.device=cuda:abc"], "train.device", "cuda:N"),
    ("gan", ["train.device=cuda:-1"], "train.device", "cuda:N"),
    ("gan", ["train.device=gpu"], "train.device", "cuda:N"),
    ("cyclegan", ["data.crop_size=30", "data.load_size=36"], "data.crop_size", "multiple of 4"),
    ("cyclegan", ["data.crop_size=20", "data.load_size=36"], "data.crop_size", "must be >= 24"),
    ("cyclegan", ["model.n_layers=5", "data.crop_size=64", "data.load_size=72"],
     "data.crop_size", "must be >= 96"),
    ("cyclegan", ["loss.pool_size=-1"], "loss.pool_size", ">= 0"),
    ("cyclegan", ["loss.lambda_a=-1"], "loss.lambda_a", ">= 0"),
    ("sr", ["data.hr_size=4"], "data.hr_size", "must be >= 8"),
    ("sr", ["model.scale=3", "data.hr_size=3"], "data.hr_size", "must be >= 6"),
    ("sr", ["loss.gan=true", "data.hr_size=20"], "data.hr_size", "must be >= 24"),
    ("sr", ["model.scale=5"], "model.scale", "in [2, 4]"),
    ("sr", ["data.jpeg=96"], "data.jpeg", "in [0, 95]"),
    ("sr", ["data.degrade_prob=1.5", "data.noise=2"], "data.degrade_prob", "in [0, 1]"),
    ("sr", ["data.blur=1000"], "data.blur", "in [0, data.hr_size=128]"),
    ("sr", ["loss.perceptual_block=0"], "loss.perceptual_block", "in [1, 5]"),
    ("inpaint", ["model.n_down=6", "data.crop_size=96"], "model.n_down", "must be in [0, 5]"),
    ("inpaint", ["model.n_down=3", "data.crop_size=36"], "model.n_down", "must be in [0, 2]"),
    ("inpaint", ["data.crop_size=8"], "data.crop_size", "must be >= 24"),
    ("inpaint", ["model.gated=false", "data.crop_size=2", "loss.adversarial=0"],
     "data.crop_size", "must be >= 4"),
    ("inpaint", ["loss.hole=-1"], "loss.hole", ">= 0"),
]


@pytest.mark.parametrize(("task", "overrides", "key", "allowed"), BAD_VALUES,
                         ids=[f"{t}-{'-'.join(o)}" for t, o, _, _ in BAD_VALUES])
def test_bad_values_are_refused_at_load(task: str, overrides: list[str], key: str,
                                        allowed: str) -> None:
    message = error_of(task, overrides)
    assert message.startswith(f"config key '{key}'"), message
    assert allowed in message, message


def test_cli_bad_value_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    result = invoke("train", "gan", "--out", tmp_path / "run", "--set", "train.beta1=2", "-q")
    assert result.exit_code != 0
    assert error_line(result) == "error: config key 'train.beta1': must be in [0, 1), got 2.0"
    assert not (tmp_path / "run").exists()


def numeric_fields() -> list[tuple[str, str, dataclasses.Field, type]]:
    """(task, section.key, field, type) for every int and float field of every schema."""
    out = []
    for task, schema in SCHEMAS.items():
        for section in dataclasses.fields(schema):
            if section.default_factory is dataclasses.MISSING:  # the task name
                continue
            cls = type(section.default_factory())  # type: ignore[misc]
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                if hints[f.name] in (int, float):
                    out.append((task, f"{section.name}.{f.name}", f, hints[f.name]))
    return out


def test_every_numeric_field_states_its_range() -> None:
    fields = numeric_fields()
    assert len(fields) > 40  # the walk found the schemas' fields
    missing = [(task, key) for task, key, f, _ in fields if "range" not in f.metadata]
    assert not missing, f"numeric config keys without a Range: {missing}"


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_every_float_field_of_every_schema_refuses_non_finite_values(bad: str) -> None:
    floats = [(task, key) for task, key, _, kind in numeric_fields() if kind is float]
    assert len(floats) > 15
    for task, key in floats:
        message = error_of(task, [f"{key}={bad}"])
        assert message.startswith(f"config key '{key}': must be a finite number"), message


# ── B. Sizes: the config's shape arithmetic agrees with the real networks.


def runs(net: torch.nn.Module, *inputs: torch.Tensor) -> bool:
    """Whether ``net`` takes the inputs and gives a non-empty output."""
    try:
        with torch.no_grad():
            out = net(*inputs)
    except (RuntimeError, ValueError):
        return False
    return out.numel() > 0


@pytest.mark.parametrize("n_layers", [1, 2, 3, 4])
def test_patchgan_minimum_matches_the_network(n_layers: int) -> None:
    size = min_input_size(patchgan_layers(n_layers))
    assert size == 3 * 2**n_layers  # h = H / 2**n_layers − 2 ≥ 1, as the network's comment says
    for norm in ("instance", "none"):
        net = PatchDiscriminator(3, 4, n_layers, norm).eval()
        assert runs(net, torch.rand(1, 3, size, size))
        assert not runs(net, torch.rand(1, 3, size - 1, size - 1))


def test_resnet_generator_minimum_matches_the_network() -> None:
    size = min_input_size(resnet_trunk_layers(2, n_blocks=1))
    assert size == 5
    net = ResnetGenerator(3, 3, ngf=4, n_blocks=1).eval()
    assert runs(net, torch.rand(1, 3, 8, 8))  # 5 rounded up to the size multiple 4
    assert not runs(net, torch.rand(1, 3, 4, 4))


@pytest.mark.parametrize("gated", [True, False])
@pytest.mark.parametrize("n_down", [0, 1, 2, 3])
def test_inpaint_generator_minimum_matches_the_network(gated: bool, n_down: int) -> None:
    layers = gated_trunk_layers(n_down) if gated else resnet_trunk_layers(n_down, n_blocks=1)
    multiple = 2**n_down
    size = -(-min_input_size(layers) // multiple) * multiple
    net = InpaintGenerator(ngf=4, n_blocks=1, gated=gated, n_down=n_down).eval()

    def takes(side: int) -> bool:
        return runs(net, torch.rand(1, 3, side, side), torch.zeros(1, 1, side, side))

    assert takes(size)
    if size > multiple:
        assert not takes(size - multiple)


def test_sr_generator_minimum_matches_the_network() -> None:
    size = min_input_size(SR_GENERATOR_LAYERS)
    assert size == 2
    net = SRGenerator(2, nf=4, n_blocks=1).eval()
    assert runs(net, torch.rand(1, 3, size, size))
    assert not runs(net, torch.rand(1, 3, size - 1, size - 1))


# ── B. YAML that cannot be a config.


# Ten times more at each of six levels: 10**6 values from a file of seven lines.
ALIAS_BOMB = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcde", "bcdef", strict=True))


@pytest.mark.parametrize(("text", "message"), [
    ("train: &a\n  steps: 3\n  x: *a\n", "the YAML alias at 'train.x' refers to itself"),
    ("model: &m {latent_dim: *m}\n", "the YAML alias at 'model.latent_dim' refers to itself"),
    ("train:\n  lr: &a [*a]\n", "the YAML alias at 'train.lr.0' refers to itself"),
    ("train: " + "[" * 3000 + "]" * 3000 + "\n", "nests too deeply to be a config"),
    (ALIAS_BOMB, "values once its YAML aliases are expanded"),
    ("train: 5\n", "config key 'train': must be a mapping of keys"),
])
def test_yaml_that_cannot_be_a_config_is_one_line(text: str, message: str,
                                                  tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    assert message in error_of("gan", path=path)


def test_cli_self_referring_alias_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("train: &a\n  x: *a\n", encoding="utf-8")
    result = invoke("train", "gan", "--config", path, "--out", tmp_path / "run", "-q")
    assert result.exit_code != 0
    assert "refers to itself" in error_line(result)
    assert not (tmp_path / "run").exists()


def test_a_section_cannot_be_overridden_whole() -> None:
    assert error_of("gan", ["train=5"]).startswith("config key 'train' is a section")
