"""The task table (translate/tasks.py): every layer's part of a task is keyed by exactly its names,
the CLI offers exactly them, and files from before the one naming of networks still load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from translate import tasks
from translate.cli import TaskName, app
from translate.config import INERT, SCHEMAS
from translate.eval.run import EVALUATORS, OPTION_TASKS
from translate.export.spec import EXPORTS, NOT_EXPORTABLE
from translate.infer.build import PIPELINES
from translate.infer.onnx import IMAGE_TASKS
from translate.modelfile import load_model, save_model
from translate.nets.mlp import MLPDiscriminator, MLPGenerator
from translate.nets.sr import SRGenerator
from translate.train.checkpoint import load_checkpoint, save_checkpoint
from translate.train.tasks import TASK_CLASSES

NAMES = set(tasks.TASKS)


def test_every_task_has_every_part():
    assert NAMES == {"gan", "vae", "cyclegan", "inpaint", "sr", "pix2pix"}
    assert set(SCHEMAS) == NAMES
    assert set(TASK_CLASSES) == NAMES
    assert set(EVALUATORS) == NAMES
    assert set(EXPORTS) | set(NOT_EXPORTABLE) == NAMES
    assert not set(EXPORTS) & set(NOT_EXPORTABLE)
    assert all(reason.strip() for reason in NOT_EXPORTABLE.values())
    assert set(PIPELINES) == set(tasks.names("image")) == set(IMAGE_TASKS)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_each_part_is_the_named_tasks(name: str):
    row = tasks.TASKS[name]
    assert row.name == name
    assert SCHEMAS[name]().task == name  # a config says its own task
    assert TASK_CLASSES[name].name == name  # as does the Task written into checkpoints
    assert row.kind in ("latent", "image")


def test_the_cli_offers_exactly_the_table():
    assert [t.value for t in TaskName] == list(tasks.TASKS)
    result = CliRunner().invoke(app, ["train", "stylegan"])
    assert result.exit_code == 2
    words = " ".join(result.output.replace("│", " ").split())  # the error box wraps lines
    assert ("'stylegan' is not one of 'gan', 'vae', 'cyclegan', 'inpaint', 'sr', 'pix2pix'"
            in words)


def test_lists_keyed_by_task_name_only_name_tasks_of_the_table():
    assert set(INERT) <= NAMES
    assert {t for _, these, _ in OPTION_TASKS.values() for t in these} <= NAMES


def test_legacy_names_map_to_todays():
    assert tasks.current_names("sr", {"generator": 1, "discriminator": 2, "generator_ema": 3}) \
        == {"G": 1, "D": 2, "G_ema": 3}
    assert tasks.current_names("gan", {"G": 1, "D": 2}) == {"G": 1, "D": 2}
    assert tasks.current_names("cyclegan", {"G_AB": 1, "generator": 2}) == {"G_AB": 1,
                                                                            "generator": 2}
    assert tasks.current_keys("gan", {"generator.net.0.weight": 1, "G_ema.x": 2}) \
        == {"G.net.0.weight": 1, "G_ema.x": 2}
    assert tasks.current_names(["not", "a", "task"], {"generator": 1}) == {"generator": 1}


def _legacy_model(folder: Path, task: str, net: torch.nn.Module, meta: dict) -> None:
    """A model folder as written before the one naming: the generator under ``generator``."""
    save_model(folder, task, {"generator": net}, meta)
    tensors = load_file(folder / "model.safetensors")
    assert all(k.startswith("generator.") for k in tensors)


def test_a_legacy_sr_model_folder_loads_and_infers(tmp_path: Path):
    torch.manual_seed(0)
    net = SRGenerator(scale=2, nf=4, n_blocks=1)
    _legacy_model(tmp_path / "m", "sr", net, {"value_range": [0.0, 1.0], "scale": 2,
                                              "channels": 3, "receptive_radius": 4})
    model = load_model(tmp_path / "m")
    assert list(model.networks) == ["G"] and list(model.meta["networks"]) == ["G"]
    for key, value in net.state_dict().items():
        assert torch.equal(model.networks["G"].state_dict()[key], value), key

    from PIL import Image
    (tmp_path / "in").mkdir()
    Image.new("RGB", (12, 10), (90, 40, 200)).save(tmp_path / "in" / "a.png")
    result = CliRunner().invoke(app, ["infer", str(tmp_path / "m"), str(tmp_path / "in"),
                                      str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "a.png").size == (24, 20)


def test_a_legacy_gan_model_folder_exports_under_todays_name(tmp_path: Path):
    _legacy_model(tmp_path / "m", "gan", MLPGenerator(latent_dim=4, hidden=(8,)),
                  {"value_range": [-1.0, 1.0], "latent_dim": 4})
    result = CliRunner().invoke(app, ["export", str(tmp_path / "m"), "--format", "safetensors"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "export" / "G.safetensors").is_file()


def test_a_legacy_checkpoint_loads_under_todays_names(tmp_path: Path):
    g, d = MLPGenerator(latent_dim=4, hidden=(8,)), MLPDiscriminator(hidden=(8,))
    arch = {"generator": {"class": "MLPGenerator", "args": g.config},
            "discriminator": {"class": "MLPDiscriminator", "args": d.config}}
    save_checkpoint(tmp_path / "last.pt", {
        "task": "gan", "architecture": arch,
        "networks": {"generator": g.state_dict(), "discriminator": d.state_dict()}})
    state = load_checkpoint(tmp_path / "last.pt")
    assert list(state["networks"]) == ["G", "D"] and list(state["architecture"]) == ["G", "D"]
    assert torch.equal(state["networks"]["G"]["net.0.weight"], g.state_dict()["net.0.weight"])


def _rename_back(run: Path) -> None:
    """Rewrite a run folder of today's gan into the names older versions wrote."""
    old = {"G": "generator", "D": "discriminator", "G_ema": "generator_ema"}
    path = run / "state" / "last.pt"
    state = torch.load(path, weights_only=True)
    for key in ("networks", "architecture"):
        state[key] = {old.get(k, k): v for k, v in state[key].items()}
    torch.save(state, path)
    meta = json.loads((run / "model.json").read_text())
    meta["networks"] = {old.get(k, k): v for k, v in meta["networks"].items()}
    (run / "model.json").write_text(json.dumps(meta))
    tensors = load_file(run / "model.safetensors")
    save_file({old[k.split(".")[0]] + k[k.index("."):]: v for k, v in tensors.items()},
              run / "model.safetensors")


@pytest.mark.slow
def test_a_legacy_gan_run_resumes_exactly(tmp_path: Path):
    """2 steps, written under the old names, resumed to 4 = 4 steps straight, bitwise."""
    common = ["--set", "model.latent_dim=4", "--set", "train.batch_size=8",
              "--set", "train.ema=0.5", "--set", "train.sample_every=1000", "-q"]
    runner = CliRunner()
    straight = runner.invoke(app, ["train", "gan", "--out", str(tmp_path / "a"),
                                   "--set", "train.steps=4", *common])
    assert straight.exit_code == 0, straight.output
    first = runner.invoke(app, ["train", "gan", "--out", str(tmp_path / "b"),
                                "--set", "train.steps=2", *common])
    assert first.exit_code == 0, first.output
    _rename_back(tmp_path / "b")
    assert "generator" in torch.load(tmp_path / "b" / "state" / "last.pt",
                                     weights_only=True)["networks"]
    resumed = runner.invoke(app, ["train", "gan", "--out", str(tmp_path / "b"), "--resume",
                                  "--set", "train.steps=4", "-q"])
    assert resumed.exit_code == 0, resumed.output
    a = load_checkpoint(tmp_path / "a" / "state" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "state" / "last.pt")
    assert b["step"] == 4 and set(b["networks"]) == {"G", "D", "G_ema"}
    for name, params in a["networks"].items():
        for key, value in params.items():
            assert torch.equal(value, b["networks"][name][key]), (name, key)
    assert list(load_model(tmp_path / "b").networks) == ["G"]
