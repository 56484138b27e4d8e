"""Issue 27, class 2: nothing a model folder or a run folder depends on is replaced by another
command — not another model's weights (which a ``weights_of`` sibling also reads), not its
model.json, not a training run's checkpoint — with or without ``--overwrite``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from tests.conftest import error_line, invoke
from translate.modelfile import load_model, save_model
from translate.models import HERE as BUNDLED
from translate.nets.resnet import ResnetGenerator


def _pair_sharing_weights(root: Path) -> tuple[Path, Path]:
    """Two model folders as photo2monet / monet2photo: the second reads the first's weights."""
    first, second = root / "a2b", root / "b2a"
    torch.manual_seed(0)
    nets = {"G_AB": ResnetGenerator(ngf=4, n_blocks=1), "G_BA": ResnetGenerator(ngf=4, n_blocks=1)}
    first.mkdir(parents=True)
    save_model(first, "cyclegan", nets, {"value_range": [-1.0, 1.0], "size_multiple": 4,
                                         "directions": {"a2b": "G_AB", "b2a": "G_BA"}})
    second.mkdir()
    meta = json.loads((first / "model.json").read_text())
    meta["weights_of"] = "a2b"
    meta["directions"] = {"a2b": "G_BA", "b2a": "G_AB"}
    (second / "model.json").write_text(json.dumps(meta))
    return first, second


def test_export_never_replaces_the_weights_another_model_reads(tmp_path):
    first, second = _pair_sharing_weights(tmp_path)
    before = (first / "model.safetensors").read_bytes()
    for target in (first / "model.safetensors", first / "model.json"):
        result = invoke("export", second, "--direction", "a2b", "--format", "safetensors",
                        "--out", target, "--overwrite")
        assert result.exit_code != 0
        assert "is a file of the model folder" in error_line(result)
    assert (first / "model.safetensors").read_bytes() == before
    load_model(second)  # both still load
    load_model(first)


def test_export_never_replaces_a_file_of_another_run(tmp_path):
    run = tmp_path / "run"
    (run / "state").mkdir(parents=True)
    (run / "config.yaml").write_text("task: sr\n")
    checkpoint = run / "state" / "last.safetensors"
    checkpoint.write_bytes(b"precious")
    shutil.copytree(BUNDLED / "sr-x4", tmp_path / "sr", ignore=shutil.ignore_patterns("*.md"))
    result = invoke("export", tmp_path / "sr", "--format", "safetensors", "--out", checkpoint,
                    "--overwrite")
    assert result.exit_code != 0
    assert f"is a file of the model folder {run}" in error_line(result)
    assert checkpoint.read_bytes() == b"precious"


def test_export_into_its_own_export_folder_may_replace_with_overwrite(tmp_path):
    shutil.copytree(BUNDLED / "sr-x4", tmp_path / "sr", ignore=shutil.ignore_patterns("*.md"))
    for _ in range(2):
        result = invoke("export", tmp_path / "sr", "--format", "safetensors", "--overwrite")
        assert result.exit_code == 0, result.output
    assert (tmp_path / "sr" / "export" / "G.safetensors").is_file()


def test_sample_never_replaces_a_models_weights(tmp_path):
    first, _ = _pair_sharing_weights(tmp_path)
    weights = first / "model.safetensors"
    before = weights.read_bytes()
    result = invoke("sample", "mnist-gan", "--n", "4", "--out", weights.with_suffix(".png"))
    assert result.exit_code == 0, result.output  # a new file beside is fine
    link = tmp_path / "grid.png"
    link.symlink_to(weights)  # another spelling of the weights file
    again = invoke("sample", "mnist-gan", "--n", "4", "--out", link, "--overwrite")
    assert again.exit_code != 0
    assert "is a file of the model folder" in error_line(again)
    assert weights.read_bytes() == before
