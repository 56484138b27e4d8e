"""The CLI end to end on tiny settings: files written, exit codes, one-line errors."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest
from conftest import MNIST_TEST, error_line, invoke, needs_mnist_test
from helpers import files_under
from PIL import Image

from translate import __version__

TINY = [
    "--set",
    "train.steps=20",
    "--set",
    "train.log_every=10",
    "--set",
    "train.sample_every=10",
    "--set",
    "train.checkpoint_every=10",
    "-q",
]


@pytest.fixture(scope="module")
def vae2_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "vae2"
    result = invoke("train", "vae", "--out", run, "--set", "model.latent_dim=2", *TINY)
    assert result.exit_code == 0, result.output
    return run


def test_version_and_help_examples() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"translate {__version__}"
    for command in ("train", "sample", "eval"):
        result = invoke(command, "--help")
        assert result.exit_code == 0
        assert "Example: translate " + command in result.output


def test_train_gan_writes_the_run_directory(gan_run: Path) -> None:
    names = files_under(gan_run)
    [events] = [n for n in names if n.startswith("tensorboard/")]  # asked for (--tensorboard)
    assert events.startswith("tensorboard/events.out.tfevents.")
    assert names - {events} == {
        "config.yaml",
        "state/last.pt",
        "model.safetensors",
        "model.json",
        "metrics.jsonl",
        "samples/step_0000002.png",
        "samples/step_0000004.png",
    }
    assert Image.open(gan_run / "samples/step_0000004.png").size == (242, 242)  # 8×(28+2)+2


def test_sample_grid_size_and_seed(gan_run: Path, tmp_path: Path) -> None:
    for name, seed in [("a.png", 1), ("b.png", 1), ("c.png", 2)]:
        result = invoke("sample", gan_run, "--n", 16, "--out", tmp_path / name, "--seed", seed)
        assert result.exit_code == 0, result.output
    a = Image.open(tmp_path / "a.png")
    assert a.size == (4 * 30 + 2, 4 * 30 + 2)
    assert a.tobytes() == Image.open(tmp_path / "b.png").tobytes()
    assert a.tobytes() != Image.open(tmp_path / "c.png").tobytes()


@pytest.mark.slow
def test_vae_manifold_and_interpolation(vae2_run: Path, tmp_path: Path) -> None:
    result = invoke("sample", vae2_run, "--manifold", "--out", tmp_path / "m.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "m.png").size == (20 * 29 + 1, 20 * 29 + 1)
    result = invoke("sample", vae2_run, "--interpolate", "--out", tmp_path / "i.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "i.png").size == (10 * 30 + 2, 8 * 30 + 2)


def test_sample_errors(gan_run: Path, tmp_path: Path) -> None:
    assert "needs a VAE" in error_line(
        invoke("sample", gan_run, "--manifold", "--out", tmp_path / "x.png")
    )
    assert not (tmp_path / "x.png").exists()
    assert ".png, .jpg or .webp" in error_line(
        invoke("sample", gan_run, "--out", tmp_path / "x.gif")
    )
    assert "model not found" in error_line(invoke("sample", tmp_path / "nope"))


@pytest.mark.slow
def test_manifold_needs_a_2d_latent(tmp_path: Path) -> None:
    run = tmp_path / "vae20"
    assert invoke("train", "vae", "--out", run, *TINY).exit_code == 0
    line = error_line(invoke("sample", run, "--manifold", "--out", tmp_path / "m.png"))
    assert "needs a 2-D latent; this VAE has 20" in line


@pytest.mark.slow
@needs_mnist_test
def test_eval_gan_and_vae_write_eval_json(gan_run: Path, vae2_run: Path) -> None:
    for run, task in [(gan_run, "gan"), (vae2_run, "vae")]:
        result = invoke("eval", run, "--real", MNIST_TEST, "--n", 300)
        assert result.exit_code == 0, result.output
        data = json.loads((run / "eval.json").read_text())
        assert data["task"] == task and sum(data["histogram"]) == 300
        assert data["frechet"] > data["frechet_floor"] > 0
        assert "test split, 10000 images" in data["reference"]
        assert (data["test_nelbo"] is None) == (task == "gan")
        if task == "vae":
            assert 50 < data["test_nelbo"] < 600


@pytest.mark.slow
def test_resume_extends_a_run(gan_run: Path) -> None:
    result = invoke("train", "gan", "--out", gan_run, "--resume", "--set", "train.steps=6", "-q")
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and (gan_run / "samples/step_0000006.png").is_file()


def test_bad_config_inputs_fail_in_one_line_and_leave_nothing(tmp_path: Path) -> None:
    out = tmp_path / "never"
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("train: [unclosed\n")
    cases = [
        (["--config", tmp_path / "missing.yaml"], "config file not found"),
        (["--config", bad_yaml], "is not valid YAML"),
        (["--set", "train.lrr=1"], "unknown config key 'train.lrr'"),
        (["--set", "train.steps=ten"], "config key 'train.steps'"),
        (["--set", "train.gan_loss=wgan"], "'wgan' is not one of bce, lsgan, hinge, ragan"),
        (["--set", "data.source=" + str(tmp_path / "nodata")], "is not a folder"),
    ]
    for extra, message in cases:
        result = invoke("train", "gan", "--out", out, *extra, "-q")
        assert result.exit_code == 1
        assert message in error_line(result)
        assert not out.exists()


def test_idx_with_wrong_magic_is_named(tmp_path: Path) -> None:
    data = tmp_path / "idx"
    data.mkdir()
    with gzip.open(data / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">I", 0x12345678) + b"\0" * 64)
    with gzip.open(data / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x00000801, 1) + b"\0")
    result = invoke("train", "gan", "--out", tmp_path / "r", "--set", f"data.source={data}", "-q")
    line = error_line(result)
    assert "magic number 0x12345678" in line and "train-images-idx3-ubyte.gz" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_resume_errors(gan_run: Path, tmp_path: Path) -> None:
    assert "needs --out" in error_line(invoke("train", "gan", "--resume"))
    assert "not a run directory" in error_line(
        invoke("train", "gan", "--out", tmp_path, "--resume")
    )
    line = error_line(invoke("train", "vae", "--out", gan_run, "--resume"))
    assert "is for task 'gan', not 'vae'" in line
    line = error_line(
        invoke("train", "gan", "--out", gan_run, "--resume", "--set", "model.latent_dim=50")
    )
    assert "cannot change model.latent_dim (100 → 50: it changes the networks)" in line
    assert "cannot be combined" in error_line(
        invoke("train", "gan", "--out", gan_run, "--resume", "--config", "x.yaml")
    )
    empty = tmp_path / "norun"
    empty.mkdir()
    (empty / "config.yaml").write_text("task: gan\n")
    assert "no checkpoint (state/last.pt)" in error_line(
        invoke("train", "gan", "--out", empty, "--resume")
    )


def test_model_of_another_task_is_refused(gan_run: Path, tmp_path: Path) -> None:
    meta = json.loads((gan_run / "model.json").read_text())
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes((gan_run / "model.safetensors").read_bytes())
    (other / "model.json").write_text(json.dumps({**meta, "task": "cyclegan"}))
    assert "holds a 'cyclegan' model" in error_line(
        invoke("sample", other, "--out", tmp_path / "a.png")
    )
    # Mismatched weights: the description asks for a different architecture.
    meta["networks"]["G"]["args"]["latent_dim"] = 64
    (other / "model.json").write_text(json.dumps(meta))
    assert "does not match the network" in error_line(invoke("eval", other, "--n", 10))
