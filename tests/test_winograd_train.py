"""Winograd F(4x4, 3x3) convolutions in training (``train.fast_conv``) and ``auto`` precision
on the CPU chosen by a cached micro-benchmark (``translate.runtime``).

The conv: forward and both gradients against ``F.conv2d``'s; the conversion keeps the ordinary
parameters, state_dict and model files; a short run with it agrees with one without; resume is
exact with it on. The choice: fp32 against bf16 with the timings stubbed, the cache, the pin,
and what ``translate train`` says.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import invoke
from helpers import assert_same_state, fresh_cli, smooth_image
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F

from translate import runtime
from translate.config import TrainConfig, load_config
from translate.errors import TranslateError
from translate.io.images import write_image
from translate.modelfile import load_model
from translate.nets.resnet import ResnetGenerator
from translate.nets.winograd import (
    WinogradTrainConv2d,
    fast_training,
    winograd_conv2d,
    winograd_in_use,
)
from translate.runtime import CPU_PRECISION_ENV, Precision, choose_cpu_precision, seed_everything
from translate.train.checkpoint import load_checkpoint
from translate.train.cyclegan import CycleGanTask
from translate.train.loop import Task, fit

CPU = torch.device("cpu")
# fp32 error bound, relative to the largest |value| of the reference (output or gradient):
# F(4x4, 3x3)'s transforms add sums of up to 36 terms; measured at most 2.4e-6 on these convs
# (6.2e-6 on a 256-channel one at 64x64). float64: the algorithm itself is exact.
REL_FP32 = 2e-5
REL_FP64 = 1e-12


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max()) if a.numel() else 0.0


# ── The conv: values and gradients.


@pytest.mark.parametrize("dtype, bound", [(torch.float32, REL_FP32), (torch.float64, REL_FP64)])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("size", [(16, 16), (13, 18)], ids=["whole-tiles", "ragged"])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_forward_and_gradients_match_conv2d(dtype: torch.dtype, bound: float,
                                            channels_last: bool, size: tuple[int, int],
                                            padding_mode: str) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 48, 3, padding=1, padding_mode=padding_mode).to(dtype)
    fast = copy.deepcopy(conv)
    assert fast_training(fast, min_channels=1) == 1
    assert type(fast) is WinogradTrainConv2d
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 64, *size, dtype=dtype).contiguous(memory_format=memory_format)
    grad_out = torch.randn(2, 48, *size, dtype=dtype)
    results = []
    for net in (conv, fast):
        xi = x.clone().requires_grad_(True)
        y = net(xi)
        y.backward(grad_out)
        results.append((y.detach(), xi.grad, net.weight.grad, net.bias.grad))
        assert y.is_contiguous(memory_format=memory_format)
    names = ("output", "input gradient", "weight gradient", "bias gradient")
    for name, ref, got in zip(names, *results, strict=True):
        assert rel_error(got, ref) <= bound, (name, rel_error(got, ref))


def test_the_bound_can_fail() -> None:
    """The comparison sees a wrong kernel transform: a weight off by 1e-3 breaks REL_FP32."""
    torch.manual_seed(0)
    x = torch.randn(1, 16, 12, 12)
    w = torch.randn(8, 16, 3, 3)
    assert rel_error(winograd_conv2d(x, w, None), F.conv2d(x, w)) <= REL_FP32
    assert rel_error(winograd_conv2d(x, w * (1 + 1e-4), None), F.conv2d(x, w)) > REL_FP32


def test_autocast_runs_the_stock_conv() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 16, 3, padding=1)
    fast = copy.deepcopy(conv)
    fast_training(fast, min_channels=1)
    x = torch.randn(1, 16, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(fast(x), conv(x))


# ── The conversion keeps the ordinary network.


def test_conversion_keeps_parameters_state_dict_and_outputs() -> None:
    torch.manual_seed(0)
    net = ResnetGenerator(3, 3, ngf=32, n_blocks=2)  # residual blocks at 128 channels
    before = {k: v.clone() for k, v in net.state_dict().items()}
    params = list(net.parameters())
    assert fast_training(net) == 4  # 2 blocks x 2 convs; the 64-channel and strided convs stay
    assert all(a is b for a, b in zip(params, net.parameters(), strict=True))
    assert_same_state(before, dict(net.state_dict()))
    plain = ResnetGenerator(3, 3, ngf=32, n_blocks=2)
    plain.load_state_dict(net.state_dict())
    assert not any(isinstance(m, WinogradTrainConv2d) for m in plain.modules())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(net(x), plain(x), rtol=0, atol=1e-5)


# ── Training with it: a CycleGAN whose residual blocks have 128 channels.

TINY = ["model.ngf=32", "model.n_blocks=2", "model.ndf=8", "data.load_size=36",
        "data.crop_size=32", "train.device=cpu", "train.epochs=0", "train.log_every=1",
        "train.sample_every=1000", "train.checkpoint_every=1000", "loss.pool_size=2"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unaligned")
    rng = np.random.default_rng(0)
    for domain in "AB":
        for i in range(3):
            write_image(root / f"train{domain}" / f"{i}.png", smooth_image(rng, 40))
    return root


def build(root: Path, *overrides: str) -> tuple[Any, CycleGanTask]:
    cfg = load_config("cyclegan", overrides=[*TINY, f"data.root={root}", *overrides])
    seed_everything(cfg.train.seed)
    return cfg, CycleGanTask(cfg, CPU)


def metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# Losses of 6-step runs from the same seed. Step 1 (every loss computed through the converted
# convs, before any update): measured max |difference| 1.7e-6. After that Adam amplifies any
# rounding difference (an update is ~lr * sign(gradient) where a gradient is near 0), about
# tenfold per step here, for direct convs alike: the same run with channels_last (another
# oneDNN kernel, another rounding) drifts as far (measured 1.1e-1 by step 6, Winograd 7.2e-2).
# So later steps are held to that run-to-run spread: at most SPREAD_FACTOR times it.
STEP1_TOLERANCE = 1e-5
SPREAD_FACTOR = 5.0


def loss_diffs(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[float]:
    """Per step, the largest |difference| over the named losses."""
    return [max(abs(x[k] - y[k]) for k in x if k.startswith(("D_", "G_", "cycle_", "idt_")))
            for x, y in zip(a, b, strict=True)]


@pytest.mark.slow
def test_short_run_with_and_without_fast_conv_agrees(root: Path, tmp_path: Path) -> None:
    runs = {}
    for name, overrides in (("direct", ["train.fast_conv=false"]),
                            ("winograd", ["train.fast_conv=true"]),
                            ("direct-nhwc", ["train.fast_conv=false", "train.channels_last=true"])):
        cfg, task = build(root, *overrides, "train.steps=6")
        assert task.fast_conv == (8 if name == "winograd" else 0)  # 2 G x 2 blocks x 2 convs
        assert task.precision is not None and task.precision.name == "fp32"
        fit(task, cfg.train, tmp_path / name, cfg, show_progress=False)
        runs[name] = metrics(tmp_path / name)
    assert [r["step"] for r in runs["winograd"]] == list(range(1, 7))
    winograd = loss_diffs(runs["direct"], runs["winograd"])
    spread = loss_diffs(runs["direct"], runs["direct-nhwc"])
    assert 0 < winograd[0] <= STEP1_TOLERANCE, winograd  # 0: the Winograd path never ran
    within = [w <= SPREAD_FACTOR * s + STEP1_TOLERANCE
              for w, s in zip(winograd, spread, strict=True)]
    assert all(within), (winograd, spread)
    # The model files hold the same tensors (names, shapes, dtypes) and load as plain convs.
    files = [load_file(tmp_path / name / "model.safetensors") for name in ("direct", "winograd")]
    assert {k: (v.shape, v.dtype) for k, v in files[0].items()} == \
        {k: (v.shape, v.dtype) for k, v in files[1].items()}
    model = load_model(tmp_path / "winograd")
    assert not any(isinstance(m, WinogradTrainConv2d)
                   for net in model.networks.values() for m in net.modules())


@pytest.mark.slow
def test_resume_with_fast_conv_is_bitwise_identical(root: Path, tmp_path: Path) -> None:
    """4 steps straight == 2 steps, then 2 more resumed in a fresh process, Winograd convs on."""
    _, task = build(root, "train.fast_conv=true", "train.steps=4")
    assert task.fast_conv == 8  # the same config, run below, converts 8 convs
    sets = [a for o in (*TINY, f"data.root={root}", "train.fast_conv=true") for a in ("--set", o)]
    for name, steps in (("straight", 4), ("split", 2)):
        done = fresh_cli(tmp_path, "train", "cyclegan", "--out", name, *sets,
                         "--set", f"train.steps={steps}", "-q")
        assert "Winograd F(4x4, 3x3) for 8 convs" in done.stdout + done.stderr
    rest = fresh_cli(tmp_path, "train", "cyclegan", "--out", "split", "--resume", "-q",
                     "--set", "train.steps=4")
    assert "Winograd F(4x4, 3x3) for 8 convs" in rest.stdout + rest.stderr
    straight = load_checkpoint(tmp_path / "straight" / "state" / "last.pt")
    split = load_checkpoint(tmp_path / "split" / "state" / "last.pt")
    assert straight["step"] == split["step"] == 4
    assert_same_state(straight, split)


def _flip_shape_timings(cache: Path) -> int:
    """Every per-shape Winograd timing in ``cache``'s precision.json swapped (Winograd's
    verdict reversed) and marked quiet (trusted); returns how many."""
    path = cache / "precision.json"
    entries = json.loads(path.read_text())
    shapes = [e for key, e in entries.items() if " | Winograd " in key]
    for e in shapes:
        e["direct"], e["winograd"], e["quiet"] = e["winograd"], e["direct"], True
    path.write_text(json.dumps(entries))
    return len(shapes)


def _trust_shape_timings(cache: Path) -> None:
    path = cache / "precision.json"
    entries = json.loads(path.read_text())
    for e in entries.values():
        e["quiet"] = True
    path.write_text(json.dumps(entries))


@pytest.mark.slow
def test_resume_keeps_the_measured_conv_choices_when_the_machine_measures_otherwise(
        root: Path, tmp_path: Path) -> None:
    """``auto`` measured, ``train.fast_conv`` null: the resumed process's own measurements say
    the opposite of every choice the run made (fp32's Winograd off, each shape's verdict
    reversed), as a busy machine may; it computes as the checkpoint says, and 4 steps straight
    equal 2 + 2 resumed."""
    cache = tmp_path / "cache"
    cache.mkdir()
    key = f"{runtime.cpu_model()} | torch {torch.__version__}"
    pays = {"fp32": 1.0, "fp32_winograd": 0.5, "bf16": 4.0, "quiet": True}
    # the residual blocks' convs (128 channels on 10x10 maps; batch 1, and 3 in a sample grid):
    # Winograd measured faster, so they compute by it (another shape is measured when met)
    shapes = {f"{key} | Winograd {n}x128x10x10 -> 128, 1 threads":
              {"direct": 1.0, "winograd": 0.5, "quiet": True} for n in (1, 3)}
    (cache / "precision.json").write_text(json.dumps({key: pays, **shapes}))
    env = {"TRANSLATE_CACHE": str(cache), CPU_PRECISION_ENV: None}
    sets = [a for o in (*TINY, f"data.root={root}") for a in ("--set", o)]
    fresh_cli(tmp_path, "train", "cyclegan", "--out", "straight", *sets, "--set",
              "train.steps=4", "-q", env=env)
    _trust_shape_timings(cache)  # the split run's first half decides as the straight run did
    fresh_cli(tmp_path, "train", "cyclegan", "--out", "split", *sets, "--set",
              "train.steps=2", "-q", env=env)
    first = load_checkpoint(tmp_path / "split" / "state" / "last.pt")["conv_choices"]
    assert first["winograd"] and first["measured"]
    assert [1, 128, 10, 10] in [c[2] for c in first["shapes"] if c[3]]
    assert _flip_shape_timings(cache) > 0
    entries = json.loads((cache / "precision.json").read_text())
    entries[key] = {**pays, "fp32_winograd": 2.0}  # Winograd now measures slower: off
    (cache / "precision.json").write_text(json.dumps(entries))
    rest = fresh_cli(tmp_path, "train", "cyclegan", "--out", "split", "--resume", "-q",
                     "--set", "train.steps=4", env=env)
    assert "convs: Winograd convs on (the checkpoint's" in rest.stdout + rest.stderr
    straight = load_checkpoint(tmp_path / "straight" / "state" / "last.pt")
    split = load_checkpoint(tmp_path / "split" / "state" / "last.pt")
    assert straight["step"] == split["step"] == 4
    assert split["conv_choices"] == straight["conv_choices"]
    assert_same_state(straight, split)


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_a_shape_first_met_under_no_grad_is_measured(mode: Any, monkeypatch: Any,
                                                     tmp_path: Path) -> None:
    # a sample grid is the first input of its size, under no_grad: the conv still measures
    monkeypatch.setenv("TRANSLATE_CACHE", str(tmp_path))
    net = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1))
    fast_training(net, min_channels=1, decide=runtime.winograd_pays)
    x = torch.randn(1, 8, 12, 12)
    rng = torch.random.get_rng_state()
    with mode():
        y = net(x)
    assert y.shape == (1, 8, 12, 12)
    assert list(net[0].winograd_shapes) == [(1, 8, 12, 12)]
    # … and drew nothing from the global RNG (a run that measures draws as one that did not)
    assert torch.equal(torch.random.get_rng_state(), rng)


def test_keep_conv_choices_turns_winograd_off_and_sets_each_shape() -> None:
    task = Task()
    task.device = CPU
    nets = (nn.Sequential(nn.Conv2d(128, 128, 3, padding=1)),)
    task.use_fast_conv(TrainConfig(fast_conv=True, precision="fp32"), *nets)
    assert task.fast_conv == 1 and isinstance(nets[0][0], WinogradTrainConv2d)
    said = task.keep_conv_choices({"winograd": False, "measured": False, "shapes": []})
    assert said is not None and said.startswith("Winograd convs off")
    assert type(nets[0][0]) is nn.Conv2d and task.fast_conv == 0
    assert task.conv_choices() == {"winograd": False, "measured": False, "shapes": []}
    shape = [1, 128, 8, 8]
    said = task.keep_conv_choices({"winograd": True, "measured": True,
                                   "shapes": [[0, "0", shape, False]]})
    assert said is not None and said.startswith("Winograd convs on")
    conv = nets[0][0]
    assert isinstance(conv, WinogradTrainConv2d) and not conv.uses_winograd(tuple(shape))
    assert task.conv_choices() == {"winograd": True, "measured": True,
                                   "shapes": [[0, "0", shape, False]]}


def test_fast_conv_true_is_refused_on_a_gpu_and_with_16_bit_precision() -> None:
    task = Task()
    task.device = torch.device("cuda")
    with pytest.raises(TranslateError, match="train.fast_conv': true is a CPU path; on cuda"):
        task.use_fast_conv(TrainConfig(fast_conv=True), nn.Conv2d(128, 128, 3))
    with pytest.raises(TranslateError, match="train.fast_conv': true computes the convs at fp32"):
        load_config("cyclegan", overrides=["train.fast_conv=true", "train.precision=bf16"])


def test_fast_conv_false_and_narrow_convs_convert_nothing() -> None:
    for cfg, nets in ((TrainConfig(fast_conv=False), [nn.Conv2d(128, 128, 3)]),
                      (TrainConfig(), [nn.Conv2d(64, 64, 3)])):
        task = Task()
        task.device = CPU
        task.use_fast_conv(cfg, *nets)
        assert task.fast_conv == 0
        assert type(nets[0]) is nn.Conv2d


# ── `auto` precision on the CPU: the choice, with the timings stubbed.

# Seconds per conv step: AMX-like (bf16 2x fp32, 1.25x the Winograd fp32 at 1.6x), and
# AVX-512 without AMX (bf16 at 0.61x fp32, as bench_train measured on such a Xeon).
AMX = {"fp32": 1.0, "fp32_winograd": 0.625, "bf16": 0.5}
NO_AMX = {"fp32": 1.0, "fp32_winograd": 0.625, "bf16": 1.64}


SLOW_WINOGRAD = {"fp32": 1.0, "fp32_winograd": 1.25, "bf16": 1.64}  # Winograd 0.8x direct


@pytest.mark.parametrize("timings, winograd, expected, ratio", [
    (AMX, False, ("bf16", False), "2.00x"),
    (AMX, True, ("bf16", False), "1.25x"),  # the Winograd fp32: still above the margin
    ({**AMX, "bf16": 0.6}, True, ("fp32", True), "1.04x"),  # within the margin
    ({**AMX, "bf16": 0.6}, False, ("bf16", False), "1.67x"),
    (NO_AMX, False, ("fp32", False), "0.61x"),
    (NO_AMX, True, ("fp32", True), "0.38x"),  # fp32, its Winograd convs 1.6x direct
    (SLOW_WINOGRAD, True, ("fp32", False), "0.61x"),  # Winograd measured slower: direct
    ({**SLOW_WINOGRAD, "bf16": 0.8}, True, ("bf16", False), "1.25x"),  # vs the direct fp32
])
def test_cpu_choice_from_timings(timings: dict[str, float], winograd: bool,
                                 expected: tuple[str, bool], ratio: str) -> None:
    name, why, use_winograd = choose_cpu_precision(timings, winograd)
    assert (name, use_winograd) == expected
    assert ratio in why  # bf16 against fp32 as the run would compute it
    assert ("Winograd" in why) == winograd


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, float]]:
    """Unpinned ``auto`` with a fresh cache and a stub micro-benchmark; holds one entry per
    measurement made."""
    monkeypatch.delenv(CPU_PRECISION_ENV, raising=False)
    monkeypatch.setenv("TRANSLATE_CACHE", str(tmp_path / "cache"))
    calls: list[dict[str, float]] = []

    def measure() -> dict[str, float]:
        calls.append(dict(AMX))
        return dict(AMX)

    monkeypatch.setattr(runtime, "measure_cpu_convs", measure)
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (0.0, 0.0, 0.0))  # a quiet machine
    # each conv shape's own measurement: Winograd pays on maps of at least 16x16 here
    monkeypatch.setattr(runtime, "_WINOGRAD_PAYS", {})
    monkeypatch.setattr(runtime, "measure_winograd_conv", lambda shape, out_channels: {
        "direct": 1.0, "winograd": 0.6 if shape[-1] >= 16 else 1.2})
    return calls


def test_auto_measures_once_per_cpu_and_torch_version(
        measured: list[dict[str, float]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    first = Precision("auto", CPU, measure=True)
    assert (first.name, first.chosen, len(measured)) == ("bf16", True, 1)
    assert "measured now" in first.reason and "2.00x as fast as fp32" in first.reason
    again = Precision("auto", CPU, measure=True, winograd=True)
    assert (again.name, len(measured)) == ("bf16", 1)  # from the cache
    assert "cached in" in again.reason and "1.25x" in again.reason
    cache = tmp_path / "cache" / "precision.json"
    keys = list(json.loads(cache.read_text()))
    assert keys == [f"{runtime.cpu_model()} | torch {torch.__version__}"]
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    Precision("auto", CPU, measure=True)
    assert len(measured) == 2 and len(json.loads(cache.read_text())) == 2
    cache.write_text("{not json")  # a broken cache is measured over
    assert Precision("auto", CPU, measure=True).name == "bf16" and len(measured) == 3
    assert json.loads(cache.read_text())


def test_a_measurement_on_busy_cores_is_not_kept(measured: list[dict[str, float]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    first = Precision("auto", CPU, measure=True)
    assert first.name == "bf16" and "under load 64.0, so measured again next time" in first.reason
    Precision("auto", CPU, measure=True)
    assert len(measured) == 2  # not trusted: measured again
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert "measured now, kept in" in Precision("auto", CPU, measure=True).reason
    assert "cached in" in Precision("auto", CPU, measure=True).reason
    assert len(measured) == 3


def test_named_precisions_and_inference_never_measure(measured: list[dict[str, float]]) -> None:
    assert Precision("fp32", CPU, measure=True).name == "fp32"
    assert Precision("bf16", CPU, measure=True, winograd=True).name == "bf16"
    assert Precision("auto", CPU).name == "fp32"  # inference's auto: fp32 on a CPU
    assert measured == []


def test_named_fp32_measures_only_whether_its_winograd_convs_pay(
        measured: list[dict[str, float]], monkeypatch: pytest.MonkeyPatch) -> None:
    p = Precision("fp32", CPU, measure=True, winograd=True)
    assert (p.name, p.chosen, p.winograd, len(measured)) == ("fp32", False, True, 1)
    assert "Winograd convs measured 1.60x the direct conv on this CPU, used" in p.reason
    monkeypatch.setattr(runtime, "measure_cpu_convs", lambda: dict(SLOW_WINOGRAD))
    monkeypatch.setenv("TRANSLATE_CACHE", str(Path(p.reason.split("kept in ")[1][:-1]).parents[1]
                                              / "other"))
    assert not Precision("fp32", CPU, measure=True, winograd=True).winograd


# ── train.fast_conv: null -- each conv shape decided by its own measurement.


def test_a_conv_asks_once_per_input_shape_and_computes_as_told() -> None:
    torch.manual_seed(0)
    asked: list[tuple[tuple[int, ...], int]] = []

    def decide(shape: tuple[int, ...], out_channels: int) -> bool:
        asked.append((shape, out_channels))
        return shape[-1] >= 16  # Winograd on the larger map only

    plain = nn.Conv2d(128, 160, 3, padding=1)
    net = copy.deepcopy(plain)
    wrapped = nn.Sequential(net)
    assert fast_training(wrapped, decide=decide) == 1 and winograd_in_use(wrapped) == 1
    small, large = torch.randn(1, 128, 8, 8), torch.randn(2, 128, 16, 16)
    # the small map: the stock conv, bit for bit
    assert torch.equal(net(small), plain(small)) and torch.equal(net(small), plain(small))
    out = net(large)  # the large one by Winograd: equal within fp32 Winograd rounding, not bitwise
    torch.testing.assert_close(out, plain(large), rtol=0, atol=1e-5)
    assert not torch.equal(out, plain(large))
    net(large)
    assert asked == [((1, 128, 8, 8), 160), ((2, 128, 16, 16), 160)]  # once per shape
    assert winograd_in_use(wrapped) == 1
    never = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1))
    fast_training(never, decide=lambda shape, out_channels: False)
    never(small)
    assert winograd_in_use(never) == 0


def test_winograd_pays_is_measured_once_per_shape_and_kept(
        measured: list[dict[str, float]], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    shapes: list[tuple[int, ...]] = []

    def measure(shape: tuple[int, ...], out_channels: int) -> dict[str, float]:
        shapes.append(shape)
        return {"direct": 1.0, "winograd": 0.6 if shape[-1] >= 16 else 1.2}

    monkeypatch.setattr(runtime, "measure_winograd_conv", measure)
    assert runtime.winograd_pays((1, 256, 32, 32), 256)
    assert not runtime.winograd_pays((1, 128, 8, 8), 128)
    assert runtime.winograd_pays((1, 256, 32, 32), 256) and len(shapes) == 2
    cache = json.loads((tmp_path / "cache" / "precision.json").read_text())
    entry = cache[f"{runtime.cpu_model()} | torch {torch.__version__} | Winograd 1x128x8x8 -> "
                  f"128, {torch.get_num_threads()} threads"]
    assert (entry["direct"], entry["winograd"], entry["quiet"]) == (1.0, 1.2, True)
    monkeypatch.setattr(runtime, "_WINOGRAD_PAYS", {})  # a new process: read from the cache
    assert not runtime.winograd_pays((1, 128, 8, 8), 128) and len(shapes) == 2
    # the margin: 1.04x is not enough, 1.05x is
    monkeypatch.setattr(runtime, "measure_winograd_conv",
                        lambda shape, c: {"direct": 1.04, "winograd": 1.0})
    assert not runtime.winograd_pays((1, 64, 64, 64), 64)
    monkeypatch.setattr(runtime, "measure_winograd_conv",
                        lambda shape, c: {"direct": 1.05, "winograd": 1.0})
    assert runtime.winograd_pays((1, 64, 64, 65), 64)


def test_null_decides_per_shape_true_and_the_pin_convert_every_conv(
        measured: list[dict[str, float]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "measure_cpu_convs", lambda: dict(NO_AMX))  # fp32 wins
    for cfg, pinned, decide in ((TrainConfig(), False, runtime.winograd_pays),
                                (TrainConfig(fast_conv=True), False, None),
                                (TrainConfig(), True, None)):
        if pinned:
            monkeypatch.setenv(CPU_PRECISION_ENV, "fp32")
        task = Task()
        task.device = CPU
        net = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1), nn.Conv2d(128, 128, 3, padding=1))
        task.use_fast_conv(cfg, net)
        assert task.fast_conv == 2 and task.precision.name == "fp32"
        assert all(c.winograd_decide is decide for c in net)
        net(torch.randn(1, 128, 8, 8))  # a small map: measured slower, so direct under null
        assert task.winograd_convs() == (0 if decide else 2)


def test_the_real_winograd_measurement_times_both_ways() -> None:
    timings = runtime.measure_winograd_conv((1, 128, 8, 8), 128, rounds=1)
    assert set(timings) == {"direct", "winograd"}
    assert all(0 < t < 60 for t in timings.values())


def test_the_environment_pins_auto(measured: list[dict[str, float]],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CPU_PRECISION_ENV, "fp32")
    p = Precision("auto", CPU, measure=True, winograd=True)
    assert (p.name, p.winograd, measured) == ("fp32", True, [])  # pinned: the default
    assert CPU_PRECISION_ENV in p.reason
    assert Precision("fp32", CPU, measure=True, winograd=True).winograd and measured == []
    monkeypatch.setenv(CPU_PRECISION_ENV, "fp16")
    with pytest.raises(TranslateError, match="must be fp32 or bf16"):
        Precision("auto", CPU, measure=True)


def test_the_real_micro_benchmark_times_three_ways() -> None:
    timings = runtime.measure_cpu_convs(rounds=1)
    assert set(timings) == {"fp32", "fp32_winograd", "bf16"}
    assert all(0 < t < 60 for t in timings.values())


@pytest.mark.slow
def test_train_says_which_precision_it_chose_and_why(
        measured: list[dict[str, float]], root: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["train", "cyclegan", "-q", *[a for o in [*TINY, f"data.root={root}",
                                                      "train.steps=1"] for a in ("--set", o)]]
    result = invoke(*args, "--out", tmp_path / "bf16")
    assert result.exit_code == 0, result.output
    assert ("precision: bf16 (auto: a conv step ran 1.25x as fast as fp32 with Winograd convs "
            "on this CPU (measured now") in " ".join(result.output.split())
    assert "Winograd F(4x4, 3x3)" not in result.output  # bf16 runs the stock convs
    monkeypatch.setattr(runtime, "measure_cpu_convs", lambda: dict(NO_AMX))
    monkeypatch.setenv("TRANSLATE_CACHE", str(tmp_path / "other-cache"))
    result = invoke(*args, "--out", tmp_path / "fp32")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "precision: fp32 (auto: bf16 ran a conv step at 0.38x fp32 with Winograd convs" in text
    # the residual blocks' 8x8 maps measured slower by Winograd (the stub): direct convs
    assert "Winograd F(4x4, 3x3)" not in text
    monkeypatch.setattr(runtime, "measure_winograd_conv",
                        lambda shape, out_channels: {"direct": 1.0, "winograd": 0.6})
    monkeypatch.setattr(runtime, "_WINOGRAD_PAYS", {})  # as in a new process
    monkeypatch.setenv("TRANSLATE_CACHE", str(tmp_path / "third-cache"))
    result = invoke(*args, "--out", tmp_path / "fp32-winograd")
    assert result.exit_code == 0, result.output
    assert "Winograd F(4x4, 3x3) for 8 convs (train.fast_conv)" in " ".join(result.output.split())


@pytest.mark.slow
def test_a_run_trained_with_direct_convs_resumes_with_winograd(root: Path,
                                                              tmp_path: Path) -> None:
    """The checkpoint holds ordinary conv weights either way: ``train.fast_conv`` takes effect
    on resume, recorded as a change."""
    cfg, task = build(root, "train.fast_conv=false", "train.steps=2")
    fit(task, cfg.train, tmp_path / "run", cfg, show_progress=False)
    cfg, task = build(root, "train.fast_conv=true", "train.steps=3")
    assert task.fast_conv == 8
    result = fit(task, cfg.train, tmp_path / "run", cfg, resume=True, show_progress=False)
    assert result.step == 3
    records = metrics(tmp_path / "run")
    assert [x["changed"] for x in records if "changed" in x] == [
        {"train.fast_conv": [False, True], "train.steps": [2, 3]}]
    assert [x["step"] for x in records if "changed" not in x] == [1, 2, 3]
