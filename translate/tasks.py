"""The task table: every task the package knows, by name, and what holds for it in every layer.

The layers (tests/test_layering.py) forbid one dict holding a task's every part: its config
schema sits below the networks, its training task below inference. So this table, at the bottom,
names the tasks, and each layer keeps its own part in one explicit dict keyed by these names:

    translate.config.SCHEMAS              name → config schema
    translate.train.tasks.TASK_CLASSES    name → training Task
    translate.infer.build.PIPELINES       name → pipeline builder (the "image" tasks)
    translate.eval.run.EVALUATORS         name → evaluation
    translate.export.spec.EXPORTS         name → ExportSpec, or NOT_EXPORTABLE: name → why not

tests/test_tasks.py holds every one of them to exactly these names, and the CLI's choices to the
table's. Everything else that needs the list of tasks derives it from :data:`TASKS`
(:func:`names`). Adding a task is one row here plus its modules, each entered in its layer's dict.

Networks are named alike in every task, in training checkpoints (``state/last.pt``), in
``model.safetensors`` key prefixes and ``model.json``, and in exports: ``G`` and ``D`` for a
task's generator and discriminator, ``G_AB``, ``G_BA``, ``D_A`` and ``D_B`` for CycleGAN's two
directions, ``vae`` for the VAE, and ``NAME_ema`` for the moving average of network ``NAME``.
Files written before that naming load through each row's ``legacy_names``
(:func:`current_names`, applied where checkpoints and model files are read).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeVar

V = TypeVar("V")

Kind = Literal["latent", "image"]


@dataclass(frozen=True)
class TaskInfo:
    """One row of the task table.

    Attributes:
        name: the config name (``translate train NAME``), stored in checkpoints and model.json.
        kind: ``latent``: images are generated from a latent code (``translate sample``);
            ``image``: an image goes in and one comes out (``translate infer``, ONNX).
        value_range: the values the networks take and give, where model.json does not say.
        legacy_names: network name in files written before the one naming → its name now.
    """

    name: str
    kind: Kind
    value_range: tuple[float, float] = (-1.0, 1.0)  # tanh outputs
    legacy_names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


# gan and sr once named their networks in words.
_WORDS = MappingProxyType({"generator": "G", "discriminator": "D", "generator_ema": "G_ema"})

TASKS: dict[str, TaskInfo] = {row.name: row for row in (
    TaskInfo("gan", "latent", legacy_names=_WORDS),  # the MLP GAN on MNIST
    TaskInfo("vae", "latent"),  # the VAE on MNIST
    TaskInfo("cyclegan", "image"),  # unpaired translation between two domains
    TaskInfo("inpaint", "image"),  # fill masked holes
    TaskInfo("sr", "image", value_range=(0.0, 1.0), legacy_names=_WORDS),  # super-resolution
    TaskInfo("pix2pix", "image"),  # paired translation A → B (conditional GAN + L1)
)}


def names(kind: Kind | None = None) -> tuple[str, ...]:
    """The tasks' names in table order, or those of one ``kind``."""
    return tuple(name for name, row in TASKS.items() if kind is None or row.kind == kind)


def current_names(task: str, named: Mapping[str, V]) -> dict[str, V]:
    """``named`` (network name → anything) with the names of older files replaced by today's.

    A task not in the table keeps its names (callers refuse it with their own message).
    """
    legacy = _legacy_names(task)
    return {legacy.get(name, name): value for name, value in named.items()}


def current_keys(task: str, tensors: Mapping[str, V]) -> dict[str, V]:
    """``model.safetensors`` keys (``NETWORK.param``) with older network names replaced."""
    legacy = _legacy_names(task)
    out = {}
    for key, value in tensors.items():
        network, dot, rest = key.partition(".")
        out[f"{legacy.get(network, network)}{dot}{rest}"] = value
    return out


def _legacy_names(task: object) -> Mapping[str, str]:
    row = TASKS.get(task) if isinstance(task, str) else None  # a damaged file's task: no row
    return row.legacy_names if row is not None else {}
