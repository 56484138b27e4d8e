"""`translate data demo`, `translate data prep` and the demo chain (configs/demo.yaml → train →
infer) through the CLI, shrunk to seconds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import error_line, invoke
from PIL import Image

from translate.data.prep import REPORT_NAME, SPLITS

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
COUNTS = {"trainA": 50, "trainB": 50, "testA": 10, "testB": 10}




def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by relative path → sha256 of its bytes."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-cli") / "demo"
    result = invoke("data", "demo", "--out", out, "--size", 40)
    assert result.exit_code == 0, result.output
    return out


def test_demo_writes_the_layout(demo: Path) -> None:
    assert sorted(p.name for p in demo.iterdir()) == sorted([*SPLITS, REPORT_NAME])
    assert {s: len(list((demo / s).glob("*.png"))) for s in SPLITS} == COUNTS
    with Image.open(next((demo / "trainB").glob("*.png"))) as im:
        assert (im.mode, im.size) == ("RGB", (40, 40))
    info = json.loads((demo / REPORT_NAME).read_text("utf-8"))
    assert info["size"] == 40
    assert not [p for p in demo.parent.iterdir() if p.name.startswith(".")]  # no staging left


def test_demo_again_into_the_same_folder_fails_and_keeps_it(demo: Path) -> None:
    before = digest(demo)
    result = invoke("data", "demo", "--out", demo, "--size", 40)
    assert result.exit_code == 1
    assert "already exists" in error_line(result)
    assert digest(demo) == before


def _folder(root: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (30 + i, 36, 3), dtype=np.uint8)).save(
            root / f"img{i}.png"
        )
    return root


def test_prep_small_folders(tmp_path: Path) -> None:
    a, b = _folder(tmp_path / "a", 4, 0), _folder(tmp_path / "b", 3, 1)
    out = tmp_path / "data"
    result = invoke("data", "prep", "--a", a, "--b", b, "--out", out, "--size", 24,
                    "--test-fraction", 0.25)
    assert result.exit_code == 0, result.output
    info = json.loads((out / REPORT_NAME).read_text("utf-8"))
    written = {d: info["domains"][d]["written"] for d in ("A", "B")}
    assert sum(written["A"].values()) == 4 and sum(written["B"].values()) == 3
    n_files = sum(len(list((out / s).glob("*.png"))) for s in SPLITS if (out / s).is_dir())
    assert n_files == 7
    with Image.open(next((out / "trainA").glob("*.png"))) as im:
        assert min(im.size) == 24


def test_prep_with_a_missing_folder_fails_in_one_line(tmp_path: Path) -> None:
    b = _folder(tmp_path / "b", 2, 1)
    out = tmp_path / "data"
    result = invoke("data", "prep", "--a", tmp_path / "missing", "--b", b, "--out", out)
    assert result.exit_code != 0
    line = error_line(result)
    assert "missing" in line and "does not exist" in line
    assert not out.exists()


@pytest.mark.slow
def test_demo_chain_train_then_infer(demo: Path, tmp_path: Path) -> None:
    run, out = tmp_path / "run", tmp_path / "winter"
    shrink = [
        f"data.root={demo}", "model.ngf=8", "model.ndf=8",  # the demo's U-Net, narrow
        "data.load_size=64", "data.crop_size=64", "train.epochs=1", "train.epochs_decay=0",
    ]
    sets = [a for s in shrink for a in ("--set", s)]
    result = invoke("train", "cyclegan", "--config", DEMO_CONFIG, *sets, "--out", run, "-q")
    assert result.exit_code == 0, result.output
    assert "trained cyclegan for 50 steps" in result.output  # one epoch of the 50 train pairs
    assert json.loads((run / "model.json").read_text())["task"] == "cyclegan"

    result = invoke("infer", run, demo / "testA", out, "--direction", "a2b", "-q")
    assert result.exit_code == 0, result.output
    inputs = sorted(p.name for p in (demo / "testA").iterdir())
    assert len(inputs) == COUNTS["testA"]
    assert sorted(p.name for p in out.iterdir()) == inputs
    for name in inputs:
        with Image.open(out / name) as im:
            assert (im.mode, im.size) == ("RGB", (40, 40))
