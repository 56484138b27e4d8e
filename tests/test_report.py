"""``translate report`` (loss-curve PNGs, sample grid, eval tables, config; every <img> resolves)
and TensorBoard logging during training (``--tensorboard``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import GAN_RUN_ARGS, error_line, invoke
from helpers import img_sources
from PIL import Image

from translate.report import loss_groups


def test_loss_groups_split_on_the_first_underscore() -> None:
    records = [{"step": 1, "epoch": 0, "D_A": 0.5, "D_B": 0.4, "cycle_A": 2.0, "lr": 2e-4,
                "it_per_s": 3.0, "time": 1.0, "nonfinite_skipped": 0},
               {"step": 2, "cycle_B": 1.0}]
    assert loss_groups(records) == {"D": ["D_A", "D_B"], "cycle": ["cycle_A", "cycle_B"],
                                    "lr": ["lr"]}


def test_report_plots_losses_and_links_only_existing_images(gan_run: Path) -> None:
    translation = {  # what `translate eval` writes for a cyclegan run
        "metric": "FID-VGG16", "features": "VGG16 test features", "dir_a": "a", "dir_b": "b",
        "directions": {d: {"direction": d, "n_source": 3, "n_target": 4, "fid": 12.345,
                           "kid_mean": 0.0123, "kid_std": 0.002, "cycle_psnr": 21.5,
                           "cycle_ssim": 0.61234, "input_fid": 30.0, "input_kid_mean": 0.05,
                           "input_kid_std": 0.01} for d in ("a2b", "b2a")}}
    (gan_run / "eval_translation.json").write_text(json.dumps(translation))
    (gan_run / "eval.json").write_text(json.dumps({"frechet": 7.25, "histogram": [1, 2]}))
    result = invoke("report", gan_run)
    assert result.exit_code == 0, result.output
    page_path = gan_run / "report.html"
    page = page_path.read_text(encoding="utf-8")
    sources = img_sources(page)
    for src in sources:
        assert (page_path.parent / src).is_file(), f"broken <img> link {src}"
    plots = {Path(s).name for s in sources if s.startswith("report_")}
    assert plots == {"report_d.png", "report_g.png", "report_lr.png"}  # the MLP GAN's losses
    for name in plots:
        with Image.open(gan_run / name) as im:
            assert im.format == "PNG" and im.width > 300
            assert np.asarray(im.convert("L")).std() > 5  # something is drawn
    assert any(s.startswith("samples/step_") for s in sources)
    # the eval tables: the translation table and a generic key/value one
    assert "FID-VGG16 (translated vs real target)" in page and "12.35" in page
    assert "12.30 ± 2.00" in page and "0.6123" in page
    assert "frechet" in page and "7.25" in page
    assert "latent_dim" in page  # the config


def test_report_with_a_broken_eval_file_is_one_line(gan_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    (gan_run / "eval_bad.json").write_text("{not json")
    try:
        assert "eval_bad.json is not valid JSON" in error_line(
            invoke("report", gan_run, "--out", out))
    finally:
        (gan_run / "eval_bad.json").unlink()
    assert not out.exists()


def test_training_writes_tensorboard_scalars_and_grids(gan_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((gan_run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    tags = acc.Tags()
    assert {"d", "g", "lr", "it_per_s"} <= set(tags["scalars"])
    assert [e.step for e in acc.Scalars("g")] == [1, 2, 3, 4]
    logged = [json.loads(x)["g"] for x in (gan_run / "metrics.jsonl").read_text().splitlines()]
    assert [e.value for e in acc.Scalars("g")] == pytest.approx(logged, rel=1e-6)
    assert [e.step for e in acc.Images("samples")] == [2, 4]


@pytest.mark.slow
def test_tensorboard_missing_is_one_line_and_no_run_dir(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    run = tmp_path / "run"
    line = error_line(invoke("train", "gan", "--out", run, *GAN_RUN_ARGS))
    assert "--tensorboard needs the tensorboard package" in line
    assert not run.exists()
