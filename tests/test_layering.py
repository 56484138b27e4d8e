"""The house's layers (DESIGN.md, "Layers"): an import only ever points down this list.

Every module under ``translate/`` is parsed with ``ast`` (imports at module level and inside
functions alike, ``import translate.x`` and ``from translate import x`` forms, relative imports)
and mapped to its layer by its first name below ``translate``; an import of a module from a
higher layer fails, naming file:line and both modules. Imports within one layer are allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "translate"

# Bottom to top. The one written copy of the order; docs/ARCHITECTURE.md quotes it.
LAYERS: tuple[tuple[str, ...], ...] = (
    # small helpers and the task table (translate/tasks.py), no project imports
    ("errors", "console", "perf", "signals", "version", "tasks"),
    ("io", "config"),  # files and images; typed configs
    ("data", "nets"),  # datasets, masks, degradations; networks (pure modules)
    ("runtime", "modelfile"),  # device, Precision, the process group; model files
    ("train",),  # the adversarial core, the one loop, checkpoints, tasks
    ("infer",),  # folder runner, the pad/crop wrapper, a pipeline per task, onnx
    # measure, ship and show: evaluation, export, `translate import` of reference weights,
    # reports, samples, bundled models, translate.load (api)
    ("eval", "export", "importer", "report", "sample", "models", "api"),
    # the shell; the package __init__ may import anything lazily (a public translate.load)
    ("cli", "__main__", "__init__"),
)
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def layer(module: str) -> int | None:
    """Layer of a dotted module name under ``translate`` (``translate`` itself is ``__init__``)."""
    parts = module.split(".")
    assert parts[0] == "translate", module
    return LAYER_OF.get(parts[1] if len(parts) > 1 else "__init__")


def package_modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted name → file of every module (``pkg/__init__.py`` is the package ``pkg``)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = ("translate", *path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_modules(
    source: str, module: str, *, is_package: bool, known: set[str]
) -> list[tuple[int, str]]:
    """(line, module) for every ``translate`` module that ``source`` imports, at any depth.

    ``from translate.x import y`` imports ``translate.x.y`` where that is a module in ``known``
    and ``translate.x`` otherwise (``y`` is then a name defined there).
    """
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from ..x import y
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in known else base))
    ours = [(line, name) for line, name in found
            if name == "translate" or name.startswith("translate.")]
    return list(dict.fromkeys(ours))  # `from m import a, b` is one import of m


def violations(
    source: str, module: str, path: str, *, is_package: bool = False,
    known: set[str] | None = None,
) -> list[str]:
    """One line per import in ``source`` of a module from a layer above ``module``'s."""
    known = set(package_modules()) if known is None else known
    own = layer(module)
    out = []
    for line, target in imported_modules(source, module, is_package=is_package, known=known):
        theirs = layer(target)
        if own is not None and theirs is not None and theirs > own:
            out.append(f"{path}:{line}: {module} (layer {own}) imports {target} (layer {theirs})")
    return out


def test_every_module_has_a_layer():
    unmapped = [f"{path.relative_to(PACKAGE.parent)}: {name}"
                for name, path in package_modules().items() if layer(name) is None]
    assert not unmapped, "modules with no layer in LAYERS:\n" + "\n".join(unmapped)


def test_imports_only_point_down():
    modules = package_modules()
    known = set(modules)
    found = []
    for name, path in modules.items():
        found += violations(path.read_text(encoding="utf-8"), name,
                            str(path.relative_to(PACKAGE.parent)),
                            is_package=path.name == "__init__.py", known=known)
    assert not found, "imports from a higher layer:\n" + "\n".join(found)


def test_the_parser_sees_every_import_form():
    """The checker is not vacuous: each import form of a higher layer is caught, with its line."""
    known = {"translate", "translate.train", "translate.train.loop", "translate.infer",
             "translate.nets", "translate.nets.layers", "translate.data", "translate.data.prep",
             "translate.errors", "translate.cli"}
    source = (
        "import torch\n"
        "from translate.errors import TranslateError\n"  # down: allowed
        "from translate.nets.layers import crop_to\n"  # same layer: allowed
        "from translate.train.loop import fit\n"  # 3: up
        "import translate.infer\n"  # 4: up
        "def f():\n"
        "    from translate import cli\n"  # 7: up, inside a function
        "    from ..train import loop\n"  # 8: up, relative
        "    from translate import __version__\n"  # 9: the package __init__, top layer
    )
    found = violations(source, "translate.data.prep", "translate/data/prep.py", known=known)
    assert found == [
        "translate/data/prep.py:4: translate.data.prep (layer 2) imports translate.train.loop"
        " (layer 4)",
        "translate/data/prep.py:5: translate.data.prep (layer 2) imports translate.infer"
        " (layer 5)",
        "translate/data/prep.py:7: translate.data.prep (layer 2) imports translate.cli (layer 7)",
        "translate/data/prep.py:8: translate.data.prep (layer 2) imports translate.train.loop"
        " (layer 4)",
        "translate/data/prep.py:9: translate.data.prep (layer 2) imports translate (layer 7)",
    ]


@pytest.mark.parametrize("name, expected", [
    ("translate", 7), ("translate.cli", 7), ("translate.errors", 0), ("translate.tasks", 0),
    ("translate.io.images", 1),
    ("translate.nets.vgg", 2), ("translate.runtime", 3), ("translate.train.loop", 4),
    ("translate.infer.sr", 5), ("translate.infer.wrap", 5), ("translate.eval.features", 6),
    ("translate.export.spec", 6), ("translate.models.mnist", 6), ("translate.infer_sr", None),
    ("translate.newthing", None),
])
def test_layer_of_a_module(name, expected):
    assert layer(name) == expected


def test_an_unmapped_module_is_reported(tmp_path):
    root = tmp_path / "translate"
    (root / "nets").mkdir(parents=True)
    for rel in ("__init__.py", "nets/__init__.py", "nets/mlp.py", "newthing.py"):
        (root / rel).write_text("")
    modules = package_modules(root)
    assert set(modules) == {"translate", "translate.nets", "translate.nets.mlp",
                            "translate.newthing"}
    assert [name for name in modules if layer(name) is None] == ["translate.newthing"]


def test_the_world_is_read_through_runtime():
    """``runtime.WORLD`` is rebound when a process joins the group, so a name imported from it
    would stay the single-process world: nothing imports it by name."""
    root = PACKAGE.parent
    found = []
    for path in sorted([*PACKAGE.rglob("*.py"), *(root / "tests").rglob("*.py"),
                        *(root / "scripts").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.ImportFrom) and node.module == "translate.runtime"
                    and any(a.name == "WORLD" for a in node.names)):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not found, "WORLD imported by name (read runtime.WORLD instead): " + ", ".join(found)
