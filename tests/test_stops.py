"""Stop signals during long work on one item (issue 27, class 3): SIGTERM / Ctrl-C are acted on
between the tiles of a large SR image, between the images of showcase and eval loops and between
the photos of the data makers, ending in "stopped early" with exit 128 + the signal and no
partial output; and the folder runner's bar moves tile by tile within one large image."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import invoke
from helpers import assert_no_temp_files, files_under, save_tiny_image_models, smooth_image
from PIL import Image

from translate.infer import SRPipeline
from translate.modelfile import load_model
from translate.signals import Stopped, StopSignals, check

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_tiny_image_models(tmp_path_factory.mktemp("models"))


def _pipe(model: Path, tile: int = 12, overlap: int = 4) -> SRPipeline:
    return SRPipeline(load_model(model), "cpu", "fp32", tile=tile, tile_overlap=overlap)


def test_check_does_nothing_outside_a_stop_block() -> None:
    check()  # the Python API keeps the default signal behaviour: nothing to act on


def test_a_tiled_image_reports_every_tile_in_order(models: dict[str, Path]) -> None:
    pipe = _pipe(models["sr"])
    heard: list[tuple[int, int]] = []
    pipe.on_tile = lambda done, total: heard.append((done, total))
    x = torch.rand(1, 3, 40, 40)
    out = pipe.pixels(x)
    # LR 40 in tiles of 12 overlapping by 4: starts 0, 8, 16, 24, 28 on each axis.
    assert heard == [(i, 25) for i in range(1, 26)]
    assert out.shape == (1, 80, 80, 3)


def test_a_stop_between_tiles_ends_the_image_at_the_next_tile(models: dict[str, Path]) -> None:
    pipe = _pipe(models["sr"])
    heard: list[int] = []

    def tile_done(done: int, total: int) -> None:
        heard.append(done)
        if done == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # caught by StopSignals: only a flag is set

    pipe.on_tile = tile_done
    with StopSignals() as stop, pytest.raises(Stopped) as excinfo:
        pipe.pixels(torch.rand(1, 3, 40, 40))
    assert stop.received == signal.SIGTERM
    assert heard == [1, 2, 3]  # no tile ran after the signal
    assert excinfo.value.exit_code == 143 and excinfo.value.name == "SIGTERM"


# A `translate infer` whose SR tiles take 0.1 s each (a slow model, made of the tiny one), and
# that touches MARKER once the first tiles of a large image are done.
_SLOW_INFER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from translate.infer import sr
    marker, args = Path(sys.argv[1]), sys.argv[2:]
    own = sr.SRPipeline._run
    calls = []
    def slow(self, x):
        y = own(self, x)
        time.sleep(0.1)
        calls.append(1)
        if len(calls) == 3:  # the small image's one forward and two tiles of the large one
            marker.touch()
        return y
    sr.SRPipeline._run = slow
    from translate.cli import app
    app(args, prog_name="translate")
""")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=["sigterm", "ctrl-c"])
def test_infer_stops_between_the_tiles_of_a_large_image_and_writes_no_part_of_it(
        models: dict[str, Path], tmp_path: Path, sig: signal.Signals, code: int) -> None:
    src, out, marker = tmp_path / "in", tmp_path / "out", tmp_path / "tiles-started"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(smooth_image(rng, 10)).save(src / "a_small.png")  # one forward, written
    Image.fromarray(smooth_image(rng, 160)).save(src / "b_large.png")  # 169 tiles: 17 s
    cmd = [sys.executable, "-c", _SLOW_INFER, str(marker), "infer", str(models["sr"]), str(src),
           str(out), "--tile", "16", "--tile-overlap", "4", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, f"ended before the tiles: {proc.communicate()}"
        assert time.monotonic() < deadline, "no tile within 120 s"
        time.sleep(0.01)
    sent = time.monotonic()
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == code, stderr[-3000:]
    # 166 tiles (16.6 s of them) were left: ending within 8 s (the tile in progress, the
    # writes queued, the interpreter's exit on a busy CI machine) means between tiles.
    assert took < 8, f"{took:.1f} s from the signal to the end: not acted on between tiles"
    assert f"stopped early ({sig.name}): 1 not attempted" in stderr, stderr[-3000:]
    assert "1 written, 0 already there, 0 failed, of 2" in stderr, stderr[-3000:]
    assert files_under(out) == {"a_small.png"}  # the large image: no file, whole or partial
    assert_no_temp_files(out)
    assert Image.open(out / "a_small.png").size == (20, 20)


def test_data_gray_stops_between_photos_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    from translate.data import edges

    photos, out = tmp_path / "photos", tmp_path / "sets" / "gray"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(smooth_image(rng, 24)).save(photos / f"p{i}.png")
    own, made = edges.gray_from_photo, []

    def gray_then_signal(rgb: np.ndarray) -> np.ndarray:
        made.append(1)
        if len(made) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return own(rgb)

    monkeypatch.setattr(edges, "gray_from_photo", gray_then_signal)
    result = invoke("data", "gray", photos, out, "--size", 16)
    assert result.exit_code == 143, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert lines == ["error: stopped early (SIGTERM); nothing was written: run the same command "
                     "again to do it"]
    assert len(made) == 2  # the third photo was never started
    assert not out.exists() and not out.parent.exists()  # nor the parent it made, nor staging
    assert sorted(os.listdir(tmp_path)) == ["photos"]


def test_showcase_stops_between_images_and_removes_what_it_wrote(
        models: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    from translate.infer import sr

    images, out = tmp_path / "images", tmp_path / "show"
    images.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        Image.fromarray(smooth_image(rng, 32)).save(images / f"i{i}.png")
    own, runs = sr.SRPipeline._run, []

    def run_then_signal(self, x):
        y = own(self, x)
        runs.append(1)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C during the first image
        return y

    monkeypatch.setattr(sr.SRPipeline, "_run", run_then_signal)
    result = invoke("showcase", models["sr"], images, "--out", out, "--limit", 3)
    assert result.exit_code == 130, result.output
    assert "error: stopped early (SIGINT)" in result.output
    assert runs == [1]  # the second image never ran
    assert not out.exists()  # its first image's files and the folder it made are gone


def test_eval_sr_stops_at_the_next_image_and_writes_no_results(
        models: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    """eval/sr.py's loop has no check of its own: the pipeline's, before each image, serves."""
    import shutil

    from translate.infer import sr

    model, hr = tmp_path / "model", tmp_path / "hr"
    shutil.copytree(models["sr"], model)
    hr.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(smooth_image(rng, 32)).save(hr / f"h{i}.png")
    own, runs = sr.SRPipeline._run, []

    def run_then_signal(self, x):
        runs.append(1)
        y = own(self, x)  # checks for a stop first
        if len(runs) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # during the first image
        return y

    monkeypatch.setattr(sr.SRPipeline, "_run", run_then_signal)
    before = files_under(model)
    result = invoke("eval", model, "--hr", hr)
    assert result.exit_code == 143, result.output
    assert "error: stopped early (SIGTERM)" in result.output
    assert runs == [1, 1]  # the second image's forward was stopped by its check
    assert files_under(model) == before  # no eval_sr.json


def test_export_stops_between_the_checked_shapes_and_writes_nothing(
        models: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    import shutil

    from translate.export import check as export_check

    model = tmp_path / "model"
    shutil.copytree(models["cyclegan"], model)
    own, checked = export_check.max_error, []

    def error_then_signal(a, b):
        checked.append(1)
        os.kill(os.getpid(), signal.SIGTERM)
        return own(a, b)

    monkeypatch.setattr(export_check, "max_error", error_then_signal)
    before = files_under(model)
    result = invoke("export", model, "--format", "torchscript")
    assert result.exit_code == 143, result.output
    assert checked == [1]  # the next shape was never checked
    assert files_under(model) == before  # no export/ file, no export.json


def test_the_infer_bar_moves_tile_by_tile(models: dict[str, Path], tmp_path: Path,
                                          monkeypatch) -> None:
    from rich.progress import Progress

    from translate import console
    from translate.infer import run_folder

    updates: list[dict] = []

    class Recording(Progress):
        def update(self, task_id, **fields):
            updates.append(fields)
            super().update(task_id, **fields)

    monkeypatch.setattr(console, "progress_bar",
                        lambda transient=False: Recording(console=console.console))
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(smooth_image(np.random.default_rng(4), 40)).save(src / "big.png")
    pipe = _pipe(models["sr"])
    report = run_folder(pipe, src, tmp_path / "out", show_progress=False)
    assert report.written == 1
    tiles = [u for u in updates if str(u.get("info", "")).startswith("tile ")]
    assert [u["info"] for u in tiles] == [f"tile {i}/25" for i in range(1, 26)]
    assert [u["completed"] for u in tiles] == pytest.approx([i / 25 for i in range(1, 26)])
    assert pipe.on_tile is None  # the runner's callback is removed after the run
