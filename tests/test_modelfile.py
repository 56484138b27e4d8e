"""Inference model files (model.json + model.safetensors) and training checkpoints: round trips,
one-line errors, and atomic writes that leave nothing half-written."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import one_line
from torch import nn

from translate.errors import TranslateError
from translate.modelfile import load_model, save_model
from translate.nets.mlp import MLPGenerator
from translate.nets.vae import VAE
from translate.train.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint


def names_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def gan_dir(tmp_path: Path) -> tuple[Path, MLPGenerator]:
    torch.manual_seed(0)
    g = MLPGenerator(latent_dim=100)
    g(torch.randn(16, 100))  # move BatchNorm's running statistics off their initial values
    g.eval()
    folder = tmp_path / "gan"
    save_model(folder, "gan", {"G": g}, {"value_range": [-1.0, 1.0], "latent_dim": 100})
    return folder, g


@pytest.fixture
def vae_dir(tmp_path: Path) -> tuple[Path, VAE]:
    torch.manual_seed(1)
    vae = VAE(latent_dim=20, hidden=64).eval()
    folder = tmp_path / "vae"
    save_model(folder, "vae", {"vae": vae}, {"value_range": [0.0, 1.0], "latent_dim": 20})
    return folder, vae


def edit_json(folder: Path, change) -> None:
    path = folder / "model.json"
    description = json.loads(path.read_text(encoding="utf-8"))
    change(description)
    path.write_text(json.dumps(description), encoding="utf-8")


# --- model files ----------------------------------------------------------------------------------


@torch.no_grad()
def test_gan_round_trip(gan_dir: tuple[Path, MLPGenerator]) -> None:
    folder, g = gan_dir
    assert names_in(folder) == ["model.json", "model.safetensors"]  # no leftover temp files
    model = load_model(folder, task="gan")
    assert model.task == "gan" and model.path == folder
    assert model.meta["latent_dim"] == 100 and model.meta["value_range"] == [-1.0, 1.0]
    loaded = model.networks["G"]
    assert isinstance(loaded, MLPGenerator) and not loaded.training
    z = torch.randn(4, 100)
    assert torch.equal(loaded(z), g(z))  # eval mode: uses the saved running statistics


@torch.no_grad()
def test_vae_round_trip(vae_dir: tuple[Path, VAE]) -> None:
    folder, vae = vae_dir
    assert names_in(folder) == ["model.json", "model.safetensors"]
    loaded = load_model(folder).networks["vae"]
    assert isinstance(loaded, VAE) and loaded.latent_dim == 20
    z = torch.randn(3, 20)
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(loaded.decode(z), vae.decode(z))
    for a, b in zip(loaded.encode(x), vae.encode(x), strict=True):
        assert torch.equal(a, b)


def test_load_accepts_dir_json_and_safetensors_paths(vae_dir: tuple[Path, VAE]) -> None:
    folder, vae = vae_dir
    for path in (folder, folder / "model.json", folder / "model.safetensors", str(folder)):
        model = load_model(path)
        assert model.path == folder
        w = model.networks["vae"].to_mu.weight
        assert torch.equal(w, vae.to_mu.weight)


def test_save_over_an_existing_model_replaces_it(vae_dir: tuple[Path, VAE]) -> None:
    folder, _ = vae_dir
    torch.manual_seed(2)
    other = VAE(latent_dim=20, hidden=64)
    save_model(folder, "vae", {"vae": other}, {"latent_dim": 20})
    assert names_in(folder) == ["model.json", "model.safetensors"]
    assert torch.equal(load_model(folder).networks["vae"].to_mu.weight, other.to_mu.weight)


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(TranslateError) as info:
        load_model(tmp_path / "nowhere")
    assert one_line(info) == f"model not found: {tmp_path / 'nowhere'}"


def test_dir_without_model(tmp_path: Path) -> None:
    with pytest.raises(TranslateError) as info:
        load_model(tmp_path)
    assert one_line(info).startswith(f"{tmp_path} holds no model")
    (tmp_path / "model.json").write_text("{}")  # one file of the two is not enough
    with pytest.raises(TranslateError) as info:
        load_model(tmp_path)
    assert one_line(info).startswith(f"{tmp_path} holds no model")


def test_task_filter(vae_dir: tuple[Path, VAE]) -> None:
    folder, _ = vae_dir
    with pytest.raises(TranslateError) as info:
        load_model(folder, task="gan")
    assert one_line(info) == f"{folder} holds a 'vae' model; this command needs gan"
    with pytest.raises(TranslateError) as info:
        load_model(folder, task=("gan", "cyclegan"))
    assert one_line(info).endswith("holds a 'vae' model; this command needs gan or cyclegan")
    assert load_model(folder, task=("gan", "vae")).task == "vae"


def test_corrupt_json(vae_dir: tuple[Path, VAE]) -> None:
    folder, _ = vae_dir
    (folder / "model.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(TranslateError) as info:
        load_model(folder)
    assert one_line(info) == f"{folder / 'model.json'} is not valid JSON"


def test_json_of_something_else(vae_dir: tuple[Path, VAE]) -> None:
    folder, _ = vae_dir
    (folder / "model.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(TranslateError) as info:
        load_model(folder)
    assert one_line(info) == f"{folder / 'model.json'} is not a translate model description"


def test_unknown_network_class(vae_dir: tuple[Path, VAE]) -> None:
    folder, _ = vae_dir
    edit_json(folder, lambda d: d["networks"]["vae"].update({"class": "os.system"}))
    with pytest.raises(TranslateError) as info:
        load_model(folder)
    assert one_line(info) == f"{folder / 'model.json'}: unknown network class 'os.system'"


def test_bad_constructor_arguments(vae_dir: tuple[Path, VAE]) -> None:
    folder, _ = vae_dir
    edit_json(folder, lambda d: d["networks"]["vae"]["args"].update({"depth": 3}))
    with pytest.raises(TranslateError) as info:
        load_model(folder)
    assert one_line(info).startswith(f"{folder / 'model.json'}: bad arguments for VAE:")


def test_weights_that_do_not_match_the_args(vae_dir: tuple[Path, VAE]) -> None:
    folder, _ = vae_dir
    edit_json(folder, lambda d: d["networks"]["vae"]["args"].update({"latent_dim": 50}))
    with pytest.raises(TranslateError) as info:
        load_model(folder)
    text = one_line(info)
    assert text.startswith(f"{folder / 'model.safetensors'} (vae) does not match the network:")
    assert "to_mu.weight (20, 64) vs (50, 64)" in text


def test_weights_stored_under_another_name(gan_dir: tuple[Path, MLPGenerator]) -> None:
    folder, _ = gan_dir
    edit_json(folder, lambda d: d.update({"networks": {"gen": d["networks"]["G"]}}))
    with pytest.raises(TranslateError) as info:
        load_model(folder)
    assert "(gen) does not match the network: missing net.0.weight" in one_line(info)


def test_weights_of_a_sibling_folder_load_and_bad_names_are_refused(
        vae_dir: tuple[Path, VAE], tmp_path: Path) -> None:
    """``"weights_of": NAME`` loads the weights of the model folder NAME beside this one (how one
    bundled run ships as two models); anything but a sibling folder's name is a one-line error."""
    folder, vae = vae_dir
    twin = tmp_path / "twin"
    twin.mkdir()
    description = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    (twin / "model.json").write_text(json.dumps({**description, "weights_of": folder.name}))
    loaded = load_model(twin).networks["vae"]
    for key, value in vae.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    for bad in ("../vae", "..", "", 3, "/etc"):
        edit_json(twin, lambda d, bad=bad: d.update({"weights_of": bad}))
        with pytest.raises(TranslateError) as info:
            load_model(twin)
        assert one_line(info) == (f"{twin / 'model.json'}: 'weights_of' must name a model "
                                  f"folder beside this one, got {bad!r}")
    edit_json(twin, lambda d: d.update({"weights_of": "gone"}))
    with pytest.raises(TranslateError) as info:
        load_model(twin)
    assert one_line(info).startswith(f"cannot read {tmp_path / 'gone' / 'model.safetensors'}:")


def test_corrupt_safetensors(vae_dir: tuple[Path, VAE]) -> None:
    folder, _ = vae_dir
    (folder / "model.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(TranslateError) as info:
        load_model(folder)
    assert one_line(info).startswith(f"cannot read {folder / 'model.safetensors'}:")


def test_save_refuses_unregistered_network_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"Linear \(head\) is not in translate.modelfile.NETWORKS"):
        save_model(tmp_path / "m", "gan", {"head": nn.Linear(2, 2)})
    assert not (tmp_path / "m").exists()


# --- training checkpoints -------------------------------------------------------------------------


def draws() -> tuple[float, float, float, torch.Tensor]:
    return random.random(), float(np.random.rand()), float(np.random.randn()), torch.rand(5)


def test_checkpoint_round_trip_with_rng(tmp_path: Path) -> None:
    torch.manual_seed(3)
    net = nn.Linear(4, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(8, 4)).sum().backward()
    opt.step()
    random.seed(1)
    np.random.seed(2)
    np.random.randn()  # leave numpy with a cached Gaussian, the odd part of its state
    path = tmp_path / "ckpt.pt"
    save_checkpoint(
        path, {"step": 7, "net": net.state_dict(), "opt": opt.state_dict(), "rng": capture_rng()}
    )
    assert names_in(tmp_path) == ["ckpt.pt"]
    first = draws()
    state = load_checkpoint(path)
    assert state["format"] == 1 and state["step"] == 7
    for k, v in net.state_dict().items():
        assert torch.equal(state["net"][k], v)
    assert torch.equal(state["opt"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    restore_rng(state["rng"])
    second = draws()
    assert first[:3] == second[:3]
    assert torch.equal(first[3], second[3])
    assert draws()[0] != first[0]  # the generators moved on; the equality above is not vacuous


def test_checkpoint_of_garbage(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a checkpoint" * 4)
    with pytest.raises(TranslateError) as info:
        load_checkpoint(path)
    assert one_line(info).startswith(f"cannot load checkpoint {path}: ")
    path.write_bytes(b"")
    with pytest.raises(TranslateError) as info:
        load_checkpoint(path)
    assert one_line(info).startswith(f"cannot load checkpoint {path}: ")


def test_checkpoint_of_something_else(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"a": 1}, path)
    with pytest.raises(TranslateError) as info:
        load_checkpoint(path)
    assert one_line(info) == f"{path} is not a translate training checkpoint (format 1)"
    with pytest.raises(TranslateError) as info:
        load_checkpoint(tmp_path / "absent.pt")
    assert one_line(info) == f"no checkpoint at {tmp_path / 'absent.pt'}"


def test_crash_between_write_and_rename_keeps_the_old_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1, "w": torch.ones(3)})

    def crash(src: object, dst: object) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr("translate.io.atomic.os.replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert names_in(tmp_path) == ["ckpt.pt"]  # the temp file was removed


class FailsToPickle:
    def __reduce__(self):
        raise RuntimeError("simulated failure inside torch.save")


def test_crash_while_writing_keeps_the_old_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"step": 1})
    with pytest.raises(RuntimeError, match="simulated failure inside torch.save"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(1000), "bad": FailsToPickle()})
    assert load_checkpoint(path)["step"] == 1
    assert names_in(tmp_path) == ["ckpt.pt"]
