"""Bundled models: small trained models that ship inside the package (DESIGN.md, "Bundled models").

Each lives in a folder beside this file — ``model.safetensors`` + ``model.json`` (the same form a
run folder holds, so every command that takes a run takes it) and ``CARD.md`` (data, the exact
recipe: a config in ``configs/bundled/`` and a command, hardware, steps, wall time, and the eval
figures). Weights may be stored as fp16 to keep the wheel small; ``load_model`` copies them into
the fp32 networks. Two models of one run share its weights file: ``monet2photo``'s model.json says
``"weights_of": "photo2monet"`` (:func:`translate.modelfile.weights_file`) and swaps the directions.

Commands accept a bundled model's *name* wherever they take a run folder; an existing path always
wins over a name (:func:`resolve`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from translate.errors import TranslateError
from translate.io.paths import same_file
from translate.modelfile import weights_file

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bundled:
    """What ``translate models`` lists of one bundled model (read from its model.json)."""

    name: str
    path: Path
    task: str
    parameters: int
    bytes: int  # of the weights it loads (stored once where two models share them)
    data: str
    headline: str
    weights_of: str | None = None  # the bundled model whose weights it loads, if not its own


def names() -> list[str]:
    """The bundled models' names, sorted."""
    return sorted(p.parent.name for p in HERE.glob("*/model.json"))


def info(name: str) -> Bundled:
    folder = HERE / name
    meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    card = meta.get("card", {})
    params = int(card.get("parameters", 0))
    return Bundled(
        name=name,
        path=folder,
        task=meta.get("task", "?"),
        parameters=params,
        bytes=weights_file(folder, meta).stat().st_size,
        data=card.get("data", ""),
        headline=card.get("headline", ""),
        weights_of=meta.get("weights_of"),
    )


def is_bundled(path: str | Path) -> bool:
    """Whether ``path`` is the folder of a bundled model (inside the installed package)."""
    # By identity: the package reached through a bind mount or a second path is still it.
    return same_file(Path(os.path.realpath(path)).parent, HERE)


def outputs_folder(path: str | Path, what: str) -> Path:
    """Where a command puts what it makes from the model folder ``path`` (evaluations, exports):
    that folder, except for a bundled model, which lives inside the installed package (perhaps
    read-only, and never changed by a command): ``WHAT/NAME/`` under the current folder."""
    path = Path(path)
    return Path(what) / path.name if is_bundled(path) else path


def resolve(path_or_name: str | Path) -> Path:
    """A run folder / model folder / file as given, or the folder of the bundled model so named.

    An existing path wins over a name. Something that is neither an existing path nor a bundled
    name is a one-line error listing the names.
    """
    path = Path(path_or_name)
    if path.exists():
        return path
    text = str(path_or_name)
    if text in names():
        return HERE / text
    if "/" in text or "\\" in text or path.suffix:
        return path  # clearly meant as a path: let the caller say it is missing
    raise TranslateError(
        f"{text!r} is neither an existing path nor a bundled model "
        f"(bundled: {', '.join(names()) or 'none'}; see `translate models`)"
    )
