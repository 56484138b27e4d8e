"""Folder and file identity, not path spelling (issue 27, class 1).

Every command that writes beside something it reads compares what the folders and files *are*
(device and inode, ``translate.io.paths.overlap``), so a folder reached through another path —
a bind mount (what an NFS or container volume exposing one folder twice looks like), a symlink
alias, a symlinked parent — is still refused as the folder it is. Each refusal is one
``error:`` line, exit 1, and every file read is left byte for byte as it was, ``--overwrite``
or not. Bind mounts need root (CI runs as root); those cases skip with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import error_line, invoke
from helpers import save_image, save_tiny_image_models, smooth_image

from translate.io.paths import is_within, overlap, same_file


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return error_line(result)


@contextlib.contextmanager
def bind(source: Path, alias: Path) -> Iterator[Path]:
    """``source`` also shown at ``alias`` (a bind mount: no symlink, one folder, two paths)."""
    if os.geteuid() != 0:
        pytest.skip("a bind mount needs root")
    alias.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "--bind", str(source), str(alias)], capture_output=True,
                          text=True)
    if done.returncode:
        pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
    try:
        yield alias
    finally:
        subprocess.run(["umount", "-l", str(alias)], check=True)


def symlink(source: Path, alias: Path) -> Path:
    alias.symlink_to(source, target_is_directory=True)
    return alias


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """Tiny model folders (cyclegan, sr, inpaint), an image folder and its masks, in
    ``tmp_path/work`` (copies this test may lose)."""
    root = tmp_path / "work"
    save_tiny_image_models(root)
    rng = np.random.default_rng(0)
    for i in range(3):
        save_image(root / "in" / f"im{i}.png", smooth_image(rng, 32))
        hole = np.zeros((32, 32), np.uint8)
        hole[8:16, 8 + i:16 + i] = 255
        save_image(root / "masks" / f"im{i}.png", hole)
    (root / "in" / "sub").mkdir()
    save_image(root / "in" / "sub" / "deep.png", smooth_image(rng, 32))
    return root


# ── The helper itself.


def test_overlap_compares_identity_not_spelling(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "in" / "sub").mkdir(parents=True)
    (data / "out").mkdir()
    link = symlink(data, tmp_path / "link")
    alias = symlink(data / "in", tmp_path / "alias-link")
    assert overlap(alias, data / "in") == "same"
    assert overlap(link / "in" / "new" / "deeper", data / "in") == "inside"
    assert overlap(f"{link}/out/../in", data / "in") == "same"
    assert overlap(data, alias) == "holds"
    assert overlap(data / "out", data / "in") is None
    assert overlap(data / "in", data / "missing") is None
    assert is_within(link / "in" / "sub", data / "in") and not is_within(data, data / "in")
    with bind(data / "in", tmp_path / "bound") as bound:
        assert overlap(bound, data / "in") == "same"
        assert overlap(bound / "x" / "y", data / "in") == "inside"
        assert overlap(data, bound) == "holds"
        assert same_file(bound / "sub", data / "in" / "sub")
    # A subfolder mounted elsewhere: walking up from the mount finds the mount point's parent,
    # not the folder it belongs to; walking down finds it.
    with bind(data / "in" / "sub", tmp_path / "sub-mount") as sub:
        assert overlap(sub, data / "in") == "inside"
        assert overlap(data / "in", sub) == "holds"


# ── infer: OUTPUT vs INPUT, --masks and the model folder.

ALIASES = ["bind", "bind-parent", "bind-sub", "symlinked-parent"]


def _alias(kind: str, target: Path, tmp_path: Path,
           stack: contextlib.ExitStack) -> tuple[str, str]:
    """An OUTPUT that is ``target`` (or inside / holding it) through another path, and the
    relation the message must name."""
    if kind == "bind":  # the very folder, under a second path
        return str(stack.enter_context(bind(target, tmp_path / "mnt" / target.name))), "is"
    if kind == "bind-parent":  # inside it, through a mount of it
        return str(stack.enter_context(bind(target, tmp_path / "mnt" / target.name)) / "o"), \
            "inside"
    if kind == "bind-sub":  # a subfolder of it, mounted elsewhere: walking up cannot see it
        sub = target / "nested"
        sub.mkdir(exist_ok=True)
        return str(stack.enter_context(bind(sub, tmp_path / "mnt" / "elsewhere"))), "inside"
    link = symlink(target.parent, tmp_path / "parent-link")  # a folder through a linked parent
    return str(link / target.name / "o"), "inside"


@pytest.mark.parametrize("kind", ALIASES)
@pytest.mark.parametrize("folder", ["input folder", "mask folder", "model folder"])
def test_infer_output_that_is_a_read_folder_by_another_path_is_refused(
        work: Path, tmp_path: Path, kind: str, folder: str) -> None:
    target = {"input folder": work / "in", "mask folder": work / "masks",
              "model folder": work / "inpaint"}[folder]
    with contextlib.ExitStack() as stack:
        out, relation = _alias(kind, target, tmp_path, stack)
        before = digest(work)
        for extra in ([], ["--overwrite"]):
            result = invoke("infer", work / "inpaint", work / "in", out, "--masks",
                            work / "masks", "-q", *extra)
            line = one_error(result)
            where = "is the" if relation == "is" else "is inside the"
            assert line.startswith(f"error: output folder {out} {where} {folder} ")
            assert line.endswith("; choose an output folder outside it")
            assert digest(work) == before  # nothing read was taken for an output or replaced
        assert not Path(out).exists() or Path(out).samefile(target) or not any(
            Path(out).iterdir())


def test_infer_output_holding_the_input_through_a_mount_is_refused(work: Path,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with bind(work / "in", out / "photos"):  # the input, shown inside OUTPUT
        before = digest(work)
        line = one_error(invoke("infer", work / "cyclegan", work / "in", out, "-q",
                                "--overwrite"))
        assert line == (f"error: the input folder {work / 'in'} is inside the output folder "
                        f"{out}; choose an output folder outside it")
        assert digest(work) == before


def test_infer_of_one_file_into_its_own_folder_by_another_path_keeps_it(
        work: Path, tmp_path: Path) -> None:
    with bind(work / "in", tmp_path / "mnt") as alias:
        before = (work / "in" / "im0.png").read_bytes()
        result = invoke("infer", work / "cyclegan", work / "in" / "im0.png", alias, "-q",
                        "--overwrite")
        assert result.exit_code == 1, result.output
        assert "is the input itself" in (alias / "failures.jsonl").read_text()
        assert (work / "in" / "im0.png").read_bytes() == before


# ── data prep / edges / gray: --out vs the folders they read.


@pytest.mark.parametrize("kind", ["bind", "bind-parent", "bind-sub", "symlinked-parent"])
def test_data_prep_out_inside_a_domain_by_another_path_is_refused(
        work: Path, tmp_path: Path, kind: str) -> None:
    (work / "b").mkdir()
    for f in (work / "in").glob("*.png"):
        (work / "b" / f.name).write_bytes(f.read_bytes())
    with contextlib.ExitStack() as stack:
        out, _ = _alias(kind, work / "in", tmp_path, stack)
        before = digest(work)
        line = one_error(invoke("data", "prep", "--a", work / "in", "--b", work / "b",
                                "--out", out))
        assert line == (f"error: --out {out} is inside the domain A folder {work / 'in'}; "
                        "choose another --out")
        assert digest(work) == before


def test_data_prep_same_domain_folder_through_a_mount_is_refused(work: Path,
                                                                  tmp_path: Path) -> None:
    with bind(work / "in", tmp_path / "mnt") as alias:
        line = one_error(invoke("data", "prep", "--a", work / "in", "--b", alias,
                                "--out", tmp_path / "ds"))
        assert line == (f"error: --a and --b are the same folder ({work / 'in'}); give each "
                        "domain its own folder")
        line = one_error(invoke("data", "prep", "--a", work / "in", "--b", alias / "sub",
                                "--out", tmp_path / "ds"))
        assert line == (f"error: --b {alias / 'sub'} is inside --a {work / 'in'}; the domains' "
                        "folders must not overlap")
        line = one_error(invoke("data", "prep", "--paired", "--a", work / "in", "--b", alias,
                                "--out", tmp_path / "ds"))
        assert line == (f"error: --a and --b are the same folder ({work / 'in'}); give each "
                        "side its own folder")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("kind", ["bind-parent", "bind-sub"])
def test_data_gray_out_inside_the_photos_by_another_path_is_refused(
        work: Path, tmp_path: Path, kind: str) -> None:
    with contextlib.ExitStack() as stack:
        out, _ = _alias(kind, work / "in", tmp_path, stack)
        before = digest(work)
        line = one_error(invoke("data", "gray", work / "in", out))
        assert line == f"error: --out {out} is inside PHOTOS {work / 'in'}; choose another --out"
        assert digest(work) == before


# ── showcase: --out vs the images and the model folder.


@pytest.mark.parametrize("what", ["image folder", "model folder"])
@pytest.mark.parametrize("kind", ["bind", "symlinked-parent"])
def test_showcase_out_that_is_a_read_folder_by_another_path_is_refused(
        work: Path, tmp_path: Path, what: str, kind: str) -> None:
    target = work / "in" if what == "image folder" else work / "sr"
    with contextlib.ExitStack() as stack:
        out, relation = _alias(kind, target, tmp_path, stack)
        before = digest(work)
        line = one_error(invoke("showcase", work / "sr", work / "in", "--out", out,
                                "--device", "cpu"))
        shown = work / "in" if what == "image folder" else work / "sr"
        where = "is the" if relation == "is" else "is inside the"
        assert line == (f"error: output folder {out} {where} {what} {shown}; choose an output "
                         "folder outside it")
        assert digest(work) == before


# ── export: never a file of the run, however the run is reached.


@pytest.mark.parametrize("overwrite", [False, True])
def test_export_onto_the_runs_weights_through_a_mount_is_refused(
        work: Path, tmp_path: Path, overwrite: bool) -> None:
    run = work / "cyclegan"
    with bind(run, tmp_path / "mnt") as alias:
        before = digest(run)
        out = alias / "model.safetensors"
        result = invoke("export", run, "--format", "safetensors", "--direction", "a2b",
                        "--out", out, *(["--overwrite"] if overwrite else []))
        assert one_error(result) == (f"error: {out} is a file of the run {run}; an export "
                                     "never replaces one: choose another --out")
        assert digest(run) == before
