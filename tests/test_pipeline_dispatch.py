"""The library side of `translate infer` and `translate eval`: ``translate.infer.build_pipeline``
picks the pipeline for a model's task, ``translate.eval.run.evaluate_run`` the evaluation, and
both refuse, by name, options meant for another kind of model."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import error_line, invoke
from helpers import save_cyclegan
from PIL import Image

from translate.errors import TranslateError
from translate.eval.run import OPTION_TASKS, EvalOptions, EvalOutcome, check_options, evaluate_run
from translate.infer import (
    InpaintPipeline,
    MaskFolder,
    SRPipeline,
    TranslationPipeline,
    build_pipeline,
)
from translate.modelfile import save_model
from translate.nets.inpaint import InpaintGenerator
from translate.nets.mlp import MLPGenerator
from translate.nets.resnet import ResnetGenerator
from translate.nets.sr import SRGenerator

EVAL_FILES = ("eval.json", "eval_sr.json", "eval_inpaint.json", "eval_translation.json")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny saved model per task (ngf/nf 8, 2 blocks)."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    save_cyclegan(root / "cyclegan", ResnetGenerator(ngf=8, n_blocks=2),
                  ResnetGenerator(ngf=8, n_blocks=2))
    save_model(root / "sr", "sr", {"G": SRGenerator(scale=4, nf=8, n_blocks=2)},
               {"value_range": [0.0, 1.0], "scale": 4, "channels": 3})
    save_model(root / "inpaint", "inpaint", {"G": InpaintGenerator(ngf=8, n_blocks=2)},
               {"value_range": [-1.0, 1.0], "size_multiple": 4, "channels": 3})
    save_model(root / "gan", "gan", {"G": MLPGenerator(latent_dim=8, hidden=(16,))},
               {"value_range": [-1.0, 1.0], "latent_dim": 8})
    (root / "masks").mkdir()
    return {task: root / task for task in ("cyclegan", "sr", "inpaint", "gan", "masks")}


def _images(folder: Path, n: int = 2, size: tuple[int, int] = (32, 32)) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


# ── build_pipeline ──────────────────────────────────────────────────────────────────────────


def test_cyclegan_builds_a_translation_pipeline(models: dict[str, Path]) -> None:
    pipeline, masks = build_pipeline(models["cyclegan"], device="cpu", direction="b2a",
                                     precision="fp32", fast_conv=False)
    assert type(pipeline) is TranslationPipeline and masks is None
    assert pipeline.fast_conv is False
    x = torch.rand(1, 3, 20, 28)
    y = pipeline(x)
    assert y.shape == x.shape and 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    # b2a really runs G_BA: the a2b pipeline gives another image.
    a2b, _ = build_pipeline(models["cyclegan"], device="cpu", precision="fp32", fast_conv=False)
    assert (a2b(x) - y).abs().max() > 1e-3


def test_sr_builds_an_sr_pipeline_with_its_options(models: dict[str, Path]) -> None:
    pipeline, masks = build_pipeline(models["sr"], device="cpu", precision="fp32", tile=12,
                                     tile_overlap=4, outscale=2)
    assert type(pipeline) is SRPipeline and masks is None
    assert (pipeline.tile, pipeline.overlap, pipeline.outscale) == (12, 4, 2.0)
    assert pipeline(torch.rand(1, 3, 18, 22)).shape == (1, 3, 36, 44)  # ×2, not the model's ×4


def test_inpaint_builds_an_inpaint_pipeline_and_its_mask_folder(models: dict[str, Path]) -> None:
    pipeline, masks = build_pipeline(models["inpaint"], device="cpu", precision="fp32",
                                     masks=models["masks"], hole="black", max_pixels=5000)
    assert type(pipeline) is InpaintPipeline and type(masks) is MaskFolder
    assert (masks.root, masks.hole, masks.max_pixels) == (models["masks"], "black", 5000)
    hole = torch.zeros(1, 1, 24, 24)
    hole[..., 8:16, 8:16] = 1
    assert pipeline(torch.rand(1, 3, 24, 24), hole).shape == (1, 3, 24, 24)


@pytest.mark.parametrize(("task", "options", "message"), [
    ("cyclegan", {"outscale": 2.0}, "--outscale and --tile are for super-resolution models"),
    ("cyclegan", {"tile": 16}, "--outscale and --tile are for super-resolution models"),
    ("cyclegan", {"tile_overlap": 4}, "--tile-overlap is for super-resolution models"),
    ("cyclegan", {"masks": "MASKS"}, "--masks is for inpainting models"),
    ("sr", {"fast_conv": True}, "--fast-conv is for translation models"),
    ("sr", {"direction": "a2b"}, "--direction is for translation models"),
    ("sr", {"compile": True}, "--compile is for translation and inpainting models"),
    ("sr", {"masks": "MASKS"}, "--masks is for inpainting models"),
    ("inpaint", {"masks": "MASKS", "tile": 8}, "--outscale and --tile are for super-resolution"
                                               " models"),
    ("inpaint", {"masks": "MASKS", "direction": "b2a"}, "--direction is for translation models"),
    ("inpaint", {"masks": "MASKS", "fast_conv": True}, "--fast-conv is for translation models"),
])
def test_an_option_for_another_task_is_refused_by_name(models: dict[str, Path], task: str,
                                                       options: dict, message: str) -> None:
    options = {k: models["masks"] if v == "MASKS" else v for k, v in options.items()}
    expected = f"{message}; {models[task]} holds a '{task}' model"
    with pytest.raises(TranslateError, match=f"^{re.escape(expected)}$"):
        build_pipeline(models[task], device="cpu", **options)


def test_inpainting_needs_masks_and_a_gan_is_not_image_to_image(models: dict[str, Path]) -> None:
    with pytest.raises(TranslateError, match=re.escape(
            f"{models['inpaint']} holds an inpainting model: give the holes with --masks")):
        build_pipeline(models["inpaint"], device="cpu")
    with pytest.raises(TranslateError, match=re.escape(
            "holds a 'gan' model; this command needs cyclegan or inpaint or sr")):
        build_pipeline(models["gan"], device="cpu")


def test_onnx_files_refuse_pytorch_only_options(tmp_path: Path) -> None:
    # Refused before the file is opened: the message names the option, not the missing file.
    for option, flag in (({"tile_overlap": 4}, "--tile-overlap"), ({"outscale": 2.0}, "--outscale"),
                         ({"fast_conv": True}, "--fast-conv")):
        with pytest.raises(TranslateError, match=f"^{flag} needs the PyTorch model"):
            build_pipeline(tmp_path / "model.onnx", **option)
    with pytest.raises(TranslateError, match="model not found"):
        build_pipeline(tmp_path / "model.onnx")


def test_cli_infer_refuses_a_foreign_option_and_writes_nothing(models: dict[str, Path],
                                                              tmp_path: Path) -> None:
    images = _images(tmp_path / "in", n=1, size=(16, 16))
    result = invoke("infer", models["sr"], images, tmp_path / "out", "--direction", "b2a")
    assert result.exit_code == 1
    assert error_line(result) == (f"error: --direction is for translation models; "
                                  f"{models['sr']} holds a 'sr' model")
    assert not (tmp_path / "out").exists()
    result = invoke("infer", models["sr"], images, tmp_path / "out", "--outscale", 2, "-q")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "0.png").size == (32, 32)


# ── evaluate_run ────────────────────────────────────────────────────────────────────────────


def _given(name: str):
    """A value other than the default for each task-specific option."""
    default = {f.name: f.default for f in dataclasses.fields(EvalOptions)}[name]
    if default is False:
        return True
    if isinstance(default, int):
        return default + 8
    if default == ():
        return ("thin",)
    return 64 if name in ("n_max", "size", "scale") else Path("somewhere")


def test_check_options_refuses_each_option_for_other_tasks_only() -> None:
    assert set(OPTION_TASKS) <= {f.name for f in dataclasses.fields(EvalOptions)}
    for task in ("gan", "vae", "cyclegan", "inpaint", "sr"):
        check_options(task, EvalOptions(), "RUN")  # the defaults are fine for every task
    for name, (flag, tasks, what) in OPTION_TASKS.items():
        options = EvalOptions(**{name: _given(name)})
        for task in ("gan", "vae", "cyclegan", "inpaint", "sr"):
            if task in tasks:
                check_options(task, options, "RUN")
            else:
                with pytest.raises(TranslateError, match=re.escape(
                        f"{flag} is for {what} models; RUN holds a '{task}' model")):
                    check_options(task, options, "RUN")


def test_evaluate_run_scores_an_sr_model(models: dict[str, Path], tmp_path: Path) -> None:
    hr = _images(tmp_path / "hr", n=2, size=(32, 40))
    model = tmp_path / "sr"
    model.mkdir()
    for name in ("model.json", "model.safetensors"):  # a copy: the json is written beside it
        (model / name).write_bytes((models["sr"] / name).read_bytes())
    outcome = evaluate_run(model, EvalOptions(hr=hr, per_image=True))
    assert isinstance(outcome, EvalOutcome)
    assert outcome.path == model / "eval_sr.json" and outcome.seconds > 0
    (entry,) = json.loads(outcome.path.read_text()).values()
    assert entry["scale"] == 4 and len(entry["per_image"]) == 2


@pytest.mark.parametrize(("task", "args", "message"), [
    ("cyclegan", ["--hr", "DIR"], "--hr is for super-resolution models; {run} holds a "
                                  "'cyclegan' model"),
    ("gan", ["--a", "DIR"], "--a is for cyclegan and pix2pix models; {run} holds a 'gan' "
     "model"),
    ("sr", ["--mask-preset", "thin"], "--mask-preset is for inpainting models; {run} holds a "
                                      "'sr' model"),
    ("inpaint", ["--real", "DIR"], "--real is for gan and vae models; {run} holds a 'inpaint' "
                                   "model"),
    ("cyclegan", ["--per-image"], "--per-image is for super-resolution models; {run} holds a "
                                  "'cyclegan' model"),
    ("sr", [], "a super-resolution model is scored with --hr DIR [--lr DIR]"),
    ("inpaint", [], "an inpainting model is scored with --images DIR"),
    ("cyclegan", ["--a", "DIR"], "a cyclegan model needs --a DIR and --b DIR"),
])
def test_cli_eval_refuses_wrong_or_missing_options(models: dict[str, Path], tmp_path: Path,
                                                   task: str, args: list[str],
                                                   message: str) -> None:
    run = models[task]
    args = [str(tmp_path) if a == "DIR" else a for a in args]
    result = invoke("eval", run, *args)
    assert result.exit_code == 1
    assert error_line(result).startswith(f"error: {message.format(run=run)}")
    assert not [f for f in EVAL_FILES if (run / f).exists()]
