"""The CLI's remaining faults (issue 16), each tested as a class.

* Option values: every numeric or fixed-choice option of every command is checked as it is
  parsed (range, finite, known choice): one ``error:`` line naming the option and what it takes,
  exit 2, nothing loaded or written.
* OUTPUT of ``infer`` keeps clear of every folder the command reads (input, masks, the model's
  folder): not equal, not inside, not holding one, however spelled (symlinks, ``..``, relative).
* ``export`` never replaces a file of the run, nor any existing file without ``--overwrite``;
  ``--out EXISTING_DIR`` writes inside it; files are written whole or not at all.
* Destinations that cannot be written (read-only, full, a file where a folder belongs) end
  infer, export, sample and eval in one line naming the path and the cause, with no temp file.
* Edited or damaged model files (model.json, an export's metadata) are refused in one line
  naming the key, before anything is built: types, ranges, a parameter budget.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import error_line, invoke
from helpers import fill_disk, read_only, save_cyclegan, save_image, smooth_image, tmpfs

from translate import cli
from translate.config import PRECISIONS
from translate.data.masks import HOLE_CONVENTIONS
from translate.data.masks import PRESETS as MASK_PRESETS
from translate.errors import TranslateError
from translate.eval.inpaint import PAIRINGS
from translate.export import export_model
from translate.export.safetensors import load_exported_network
from translate.modelfile import MAX_PARAMETERS, load_model, save_model
from translate.nets.inpaint import InpaintGenerator
from translate.nets.mlp import MLPGenerator
from translate.nets.resnet import ResnetGenerator
from translate.nets.sr import SRGenerator
from translate.runtime import resolve_device
from translate.tasks import TASKS


def temp_files(folder: Path) -> list[Path]:
    return list(folder.rglob(".translate-tmp-*"))


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` → a hash of its bytes."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error(result) -> str:
    """The one ``error:`` line of a failed command, with no traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    return error_line(result)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny model folders of every task inference and sampling take, random weights, plus an
    image folder and its masks."""
    root = tmp_path_factory.mktemp("faults-cli")
    torch.manual_seed(0)
    save_cyclegan(root / "cyclegan", ResnetGenerator(ngf=4, n_blocks=1),
                  ResnetGenerator(ngf=4, n_blocks=1))
    save_model(root / "sr", "sr", {"G": SRGenerator(scale=2, nf=4, n_blocks=1)},
               {"value_range": [0.0, 1.0], "scale": 2, "channels": 3})
    save_model(root / "inpaint", "inpaint", {"G": InpaintGenerator(ngf=4, n_blocks=1)},
               {"value_range": [-1.0, 1.0], "size_multiple": 4, "channels": 3})
    save_model(root / "gan", "gan", {"G": MLPGenerator(hidden=(8, 8)).eval()},
               {"value_range": [-1.0, 1.0], "latent_dim": 100})
    rng = np.random.default_rng(0)
    for i in range(3):
        save_image(root / "in" / f"im{i}.png", smooth_image(rng, 32))
        hole = np.zeros((32, 32), np.uint8)
        hole[8:16, 8 + i:16 + i] = 255
        save_image(root / "masks" / f"im{i}.png", hole)
    return {"root": root, **{p.name: p for p in root.iterdir()}}


# ── Option values.

# (command line with {m}: the model folders, {o}: a fresh output path; the option at fault)
BAD_OPTIONS = [
    ("infer {m}/cyclegan {m}/in {o} --workers -1", "--workers"),
    ("infer {m}/cyclegan {m}/in {o} --workers 100000", "--workers"),
    ("infer {m}/sr {m}/in {o} --outscale inf", "--outscale"),
    ("infer {m}/sr {m}/in {o} --outscale nan", "--outscale"),
    ("infer {m}/sr {m}/in {o} --outscale -2", "--outscale"),
    ("infer {m}/sr {m}/in {o} --outscale 0", "--outscale"),
    ("infer {m}/cyclegan {m}/in {o} --device tpu", "--device"),
    ("infer {m}/cyclegan {m}/in {o} --device cuda:x", "--device"),
    ("infer {m}/cyclegan {m}/in {o} --batch-size 0", "--batch-size"),
    ("infer {m}/cyclegan {m}/in {o} --precision xyz", "--precision"),
    ("infer {m}/inpaint {m}/in {o} --masks {m}/masks --hole xyz", "--hole"),
    ("infer {m}/cyclegan {m}/in {o} --ext xyz", "--ext"),
    ("infer {m}/cyclegan {m}/in {o} --max-pixels 0", "--max-pixels"),
    ("infer {m}/cyclegan {m}/in {o} --max-pixels -5", "--max-pixels"),
    ("infer {m}/sr {m}/in {o} --tile -3", "--tile"),
    ("infer {m}/sr {m}/in {o} --tile 16 --tile-overlap -1", "--tile-overlap"),
    ("sample {m}/gan --n 0 --out {o}.png", "--n"),
    ("sample {m}/gan --n -3 --out {o}.png", "--n"),
    ("sample {m}/gan --n 100000000 --out {o}.png", "--n"),
    ("sample {m}/gan --seed -1 --out {o}.png", "--seed"),
    ("sample {m}/gan --seed 1180591620717411303424 --out {o}.png", "--seed"),
    ("eval {m}/gan --n 1", "--n"),
    ("eval {m}/gan --seed -1", "--seed"),
    ("eval {m}/sr --hr {m}/in --scale 7", "--scale"),
    ("eval {m}/sr --hr {m}/in --tile -1", "--tile"),
    ("eval {m}/cyclegan --a {m}/in --b {m}/in --size 0", "--size"),
    ("eval {m}/cyclegan --a {m}/in --b {m}/in --size 100000", "--size"),
    ("eval {m}/cyclegan --a {m}/in --b {m}/in --n-max 0", "--n-max"),
    ("eval {m}/inpaint --images {m}/in --masks {m}/masks --hole xyz", "--hole"),
    ("eval {m}/inpaint --images {m}/in --masks {m}/masks --pair xyz", "--pair"),
    ("eval {m}/inpaint --images {m}/in --mask-preset thin --mask-preset xyz", "--mask-preset"),
    ("data prep --a {m}/in --b {m}/masks --out {o} --max-pixels 0", "--max-pixels"),
    ("data prep --a {m}/in --b {m}/masks --out {o} --seed -1", "--seed"),
    ("data prep --a {m}/in --b {m}/masks --out {o} --test-fraction nan", "--test-fraction"),
    ("data prep --a {m}/in --b {m}/masks --out {o} --test-fraction 1", "--test-fraction"),
    ("data prep --a {m}/in --b {m}/masks --out {o} --size 0", "--size"),
    ("data demo --out {o} --size 0", "--size"),
    ("data demo --out {o} --seed -1", "--seed"),
    ("report {m}/cyclegan --limit -1", "--limit"),
]


@pytest.mark.parametrize("line, option", BAD_OPTIONS, ids=[c for c, _ in BAD_OPTIONS])
def test_a_bad_option_value_is_one_line_naming_the_option(models: dict[str, Path], tmp_path: Path,
                                                          line: str, option: str) -> None:
    out = tmp_path / "out"
    before = digest(models["root"])
    args = line.format(m=models["root"], o=out).split()
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    text = one_error(result)
    value = args[len(args) - args[::-1].index(option)]  # the value after its last use
    assert text.startswith(f"error: {option} {value}: must be ")
    assert not list(tmp_path.iterdir())  # nothing written, not even the output folder
    assert digest(models["root"]) == before


@pytest.mark.parametrize("option, takes", [
    ("--workers", "an integer in [0, 64]"), ("--outscale", "a finite number > 0"),
    ("--device", "one of auto, cpu, cuda, cuda:N"),
    ("--precision", "one of auto, fp32, bf16, fp16"), ("--hole", "one of white, black")])
def test_the_message_names_what_the_option_takes(models: dict[str, Path], tmp_path: Path,
                                                 option: str, takes: str) -> None:
    value = {"--workers": "-1", "--outscale": "inf"}.get(option, "xyz")
    m = models["root"]
    result = invoke("infer", m / "sr", m / "in", tmp_path / "out", option, value)
    assert one_error(result) == f"error: {option} {value}: must be {takes}"


def test_the_cli_choices_are_the_librarys() -> None:
    assert cli.PRECISIONS.choices == PRECISIONS
    assert cli.HOLES.choices == HOLE_CONVENTIONS
    assert cli.PAIRS.choices == PAIRINGS
    assert cli.MASK_PRESETS.choices == tuple(MASK_PRESETS)


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "cpu:0:1", ""])
def test_resolve_device_refuses_unknown_devices(name: str) -> None:
    with pytest.raises(TranslateError, match="must be one of auto, cpu, cuda, cuda:N"):
        resolve_device(name)


# ── OUTPUT and the folders infer reads.


def _spell(path: Path, how: str, tmp_path: Path, suffix: str = "") -> str:
    """``path`` (+ ``suffix``) spelled through a symlink, with ``..``, or relative to the cwd."""
    if how == "symlink":
        link = tmp_path / f"link-{path.name}"
        if not link.exists():
            link.symlink_to(path, target_is_directory=True)
        return str(link) + suffix
    if how == "dotdot":
        return f"{path}/../{path.name}{suffix}"
    return os.path.relpath(str(path) + suffix)


@pytest.mark.parametrize("how", ["symlink", "dotdot", "relative"])
@pytest.mark.parametrize("relation", ["is", "inside", "holds"])
@pytest.mark.parametrize("folder", ["mask folder", "input folder", "model folder"])
def test_output_overlapping_a_folder_infer_reads_is_refused(
        models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str,
        relation: str, how: str) -> None:
    # Copies: the refusal is checked against folders this test may lose.
    work = tmp_path / "work"
    for name in ("inpaint", "in", "masks"):
        (work / name).mkdir(parents=True)
        for f in models[name].iterdir():
            (work / name / f.name).write_bytes(f.read_bytes())
    target = {"mask folder": work / "masks", "input folder": work / "in",
              "model folder": work / "inpaint"}[folder]
    monkeypatch.chdir(work)
    if relation == "holds":  # the output folder holds the read one: give its parent
        nested = work / "deep"
        nested.mkdir()
        target.rename(nested / target.name)
        target = nested / target.name
        out = _spell(nested, how, tmp_path)
    else:
        out = _spell(target, how, tmp_path, "/sub" if relation == "inside" else "")
    paths = {"mask folder": work / "masks", "input folder": work / "in",
             "model folder": work / "inpaint"}
    paths[folder] = target
    before = digest(work)
    for extra in ([], ["--overwrite"]):
        result = invoke("infer", paths["model folder"], paths["input folder"], out, "--masks",
                        paths["mask folder"], "-q", *extra)
        line = one_error(result)
        assert result.exit_code == 1
        assert f"the {folder}" in line and "choose an output folder outside it" in line
        assert {"is": " is the ", "inside": " is inside the ",
                "holds": " is inside the output folder "}[relation] in line
        assert digest(work) == before  # no mask taken for an output, none replaced


def test_infer_output_that_is_a_file_is_refused(models: dict[str, Path], tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("the user's\n")
    m = models["root"]
    line = one_error(invoke("infer", m / "cyclegan", m / "in", notes, "-q"))
    assert line == (f"error: output {notes} is a file, not a folder; choose a folder for "
                    "OUTPUT")
    line = one_error(invoke("infer", m / "cyclegan", m / "in", notes / "sub", "-q"))
    assert line == (f"error: cannot create the output folder {notes / 'sub'}: a part of the "
                    "path is a file, not a folder")
    assert notes.read_text() == "the user's\n" and sorted(tmp_path.iterdir()) == [notes]


# ── Destinations that cannot be written: read-only, full.


def test_infer_into_a_read_only_folder_is_one_line(models: dict[str, Path],
                                                   tmp_path: Path) -> None:
    m = models["root"]
    with read_only(tmp_path / "ro", lambda f: (f / "out").mkdir()) as cause:
        ro = tmp_path / "ro"
        line = one_error(invoke("infer", m / "cyclegan", m / "in", ro / "out", "-q"))
        assert line == f"error: cannot write in {ro / 'out'}: {cause}"
        line = one_error(invoke("infer", m / "cyclegan", m / "in", ro / "new", "-q"))
        assert line == f"error: cannot create the output folder {ro / 'new'}: {cause}"
        assert not temp_files(ro) and not list((ro / "out").iterdir())


def test_infer_on_a_full_disk_stops_in_one_line_and_resumes(models: dict[str, Path],
                                                             tmp_path: Path) -> None:
    m = models["root"]
    with tmpfs(tmp_path / "small", "1m") as disk:
        out = disk / "out"
        out.mkdir()
        fill_disk(disk, leave=0)
        result = invoke("infer", m / "cyclegan", m / "in", out, "--workers", 0, "-q")
        assert result.exit_code == 1
        assert one_error(result) == (
            f"error: cannot write {out / 'im0.png'}: no space left on the device (0 of 3 "
            "outputs done; the same command finishes the rest once it can write)")
        assert not temp_files(disk) and not list(out.iterdir())
        (disk / "filler").unlink()  # room again: the same command finishes
        result = invoke("infer", m / "cyclegan", m / "in", out, "-q")
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in out.iterdir()) == ["im0.png", "im1.png", "im2.png"]


def test_infer_failure_list_on_a_full_disk_is_one_line(models: dict[str, Path],
                                                       tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(3):
        (broken / f"bad{i}.png").write_bytes(b"not a png")
    with tmpfs(tmp_path / "small", "1m") as disk:
        out = disk / "out"
        out.mkdir()
        fill_disk(disk, leave=0)
        result = invoke("infer", models["cyclegan"], broken, out, "--workers", 0, "-q")
        assert result.exit_code == 1
        lines = [x for x in result.output.splitlines() if x.startswith("error:")]
        assert lines == [f"error: cannot write {out / 'failures.jsonl'}: no space left on the "
                         "device (0 of 3 outputs done; the same command finishes the rest once "
                         "it can write)"]
        assert "Traceback" not in result.output and not temp_files(disk)


def test_sample_and_eval_into_read_only_folders_are_one_line(models: dict[str, Path],
                                                             tmp_path: Path) -> None:
    m = models["root"]

    def fill(folder: Path) -> None:
        for name in ("sr", "gan"):
            (folder / name).mkdir()
            for f in m.joinpath(name).iterdir():
                (folder / name / f.name).write_bytes(f.read_bytes())

    with read_only(tmp_path / "ro", fill) as cause:
        ro = tmp_path / "ro"
        line = one_error(invoke("sample", ro / "gan", "--n", 4, "--out", ro / "grid.png"))
        assert line == f"error: cannot write {ro / 'grid.png'}: {cause}"
        # Refused before the evaluation runs, not after.
        line = one_error(invoke("eval", ro / "sr", "--hr", m / "in"))
        assert line == f"error: cannot write in {ro / 'sr'}: {cause}"
        assert not temp_files(ro)


def test_sample_out_that_is_a_folder_is_refused_before_work(models: dict[str, Path],
                                                             tmp_path: Path) -> None:
    folder = tmp_path / "dir.png"
    folder.mkdir()
    line = one_error(invoke("sample", models["gan"], "--out", folder))
    assert line == f"error: --out {folder} is a folder; give the image file to write"
    assert list(tmp_path.iterdir()) == [folder] and not list(folder.iterdir())


def test_sample_replaces_an_existing_file_only_with_overwrite(models: dict[str, Path],
                                                               tmp_path: Path) -> None:
    grid = tmp_path / "grid.png"
    grid.write_bytes(b"the user's own picture")
    line = one_error(invoke("sample", models["gan"], "--n", 4, "--out", grid))
    assert line == f"error: {grid} exists; add --overwrite to replace it"
    assert grid.read_bytes() == b"the user's own picture"
    result = invoke("sample", models["gan"], "--n", 4, "--out", grid, "--overwrite")
    assert result.exit_code == 0, result.output
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ── export: the run's files, existing files, folders; atomic writes.


@pytest.fixture
def run(models: dict[str, Path], tmp_path: Path) -> Path:
    """A copy of the tiny CycleGAN model folder with the files a training run has."""
    folder = tmp_path / "run"
    folder.mkdir()
    for f in models["cyclegan"].iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "config.yaml").write_text("task: cyclegan\n")
    (folder / "state").mkdir()
    (folder / "state" / "last.pt").write_bytes(b"checkpoint")
    (folder / "export.json").write_text("{}\n")
    return folder


@pytest.mark.parametrize("target", ["model.safetensors", "model.json", "config.yaml",
                                    "state/last.pt", "export.json", "export.json via symlink",
                                    "model.safetensors via ..", "model.json relative"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_export_never_replaces_a_file_of_the_run(run: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch, target: str,
                                                 overwrite: bool) -> None:
    name, _, how = target.partition(" ")
    if how == "via symlink":
        out = tmp_path / "link.safetensors"
        out.symlink_to(run / name)
    elif how == "via ..":
        out = f"{run}/state/../{name}"
    elif how == "relative":
        monkeypatch.chdir(tmp_path)
        out = f"run/{name}"
    else:
        out = run / name
    before = digest(run)
    result = invoke("export", run, "--format", "safetensors", "--direction", "a2b", "--out",
                    out, *(["--overwrite"] if overwrite else []))
    assert result.exit_code == 1
    assert one_error(result) == (f"error: {out} is a file of the run {run}; an export never "
                                 "replaces one: choose another --out")
    assert digest(run) == before and not temp_files(tmp_path)


def test_export_replaces_an_existing_file_only_with_overwrite(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.safetensors"
    out.write_bytes(b"the user's")
    args = ["export", run, "--format", "safetensors", "--direction", "a2b", "--out", out]
    line = one_error(invoke(*args))
    assert line == f"error: {out} exists; add --overwrite to replace it"
    assert out.read_bytes() == b"the user's"
    result = invoke(*args, "--overwrite")
    assert result.exit_code == 0, result.output
    assert load_exported_network(out)[1]["network"] == "G_AB"
    # The default destination too: a second export needs --overwrite.
    assert invoke("export", run, "--format", "safetensors").exit_code == 0
    line = one_error(invoke("export", run, "--format", "safetensors"))
    assert line == f"error: {run / 'export' / 'G_AB.safetensors'} exists; add --overwrite to " \
                   "replace it"


def test_export_out_an_existing_folder_writes_inside_it(run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    result = invoke("export", run, "--format", "safetensors", "--direction", "b2a", "--out",
                    folder)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["G_BA.safetensors"]
    # Both directions into a file: refused, naming why.
    line = one_error(invoke("export", run, "--format", "safetensors", "--out",
                            folder / "G_BA.safetensors"))
    assert line == (f"error: --out {folder / 'G_BA.safetensors'} is a file, not a folder: 2 "
                    "networks are exported, each to its own file")
    # Both directions into a file name not yet taken: refused too, not made a folder.
    line = one_error(invoke("export", run, "--format", "safetensors", "--out",
                            tmp_path / "both.safetensors"))
    assert line == (f"error: --out {tmp_path / 'both.safetensors'} names one .safetensors "
                    "file, but 2 networks are exported (G_AB, G_BA): give a folder, or one "
                    "--direction")
    assert not (tmp_path / "both.safetensors").exists()
    (folder / "G_AB.safetensors").mkdir()  # a folder where a file is to go
    line = one_error(invoke("export", run, "--format", "safetensors", "--out", folder,
                            "--overwrite"))
    assert line == f"error: {folder / 'G_AB.safetensors'} is a folder; choose a file name for --out"


@pytest.mark.parametrize("fmt", ["safetensors", "torchscript"])
def test_export_into_a_read_only_or_full_folder_is_one_line(run: Path, tmp_path: Path,
                                                            fmt: str) -> None:
    with read_only(tmp_path / "ro") as cause:
        out = tmp_path / "ro" / "g.bin"
        line = one_error(invoke("export", run, "--format", fmt, "--direction", "a2b", "--out",
                                out))
        assert line == f"error: cannot write {out}: {cause}"
        assert not temp_files(tmp_path / "ro")
    with tmpfs(tmp_path / "small", "1m") as disk:
        fill_disk(disk, leave=0)
        line = one_error(invoke("export", run, "--format", fmt, "--out", disk / "both"))
        assert line == f"error: cannot write {disk / 'both'}: no space left on the device"
        assert not temp_files(disk) and not (disk / "both").exists()  # all or nothing


def test_export_size_too_small_is_refused_in_a_few_lines(run: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def exporter_runs(*args, **kwargs):
        raise AssertionError("the exporter ran")

    monkeypatch.setattr(torch.onnx, "export", exporter_runs)
    for size, expected in [("1", "--size 1x1 is too small for this network: each side must be "
                                 "at least 5"),
                           ("3x64", "--size 3x64 is too small for this network: each side must "
                                    "be at least 5"),
                           ("5000", "--size '5000': each side must be at most 4096")]:
        result = invoke("export", run, "--size", size, "--direction", "a2b", "--out",
                        tmp_path / "g.onnx")
        assert len(result.output.strip().splitlines()) <= 3
        assert one_error(result) == f"error: {expected}"
    line = one_error(invoke("export", run, "--size", "64", "--format", "torchscript"))
    assert line == ("error: --size is for --format onnx without --dynamic (the other exports "
                    "take any size)")
    assert not (tmp_path / "g.onnx").exists() and not (run / "export").exists()


def test_export_size_of_a_latent_model_is_refused(models: dict[str, Path], tmp_path: Path) -> None:
    """A GAN's exported input is a latent vector: --size has nothing to act on."""
    line = one_error(invoke("export", models["gan"], "--size", "1", "--out", tmp_path / "g.onnx"))
    assert line == "error: --size is for image models; a 'gan' model's input is a latent vector"
    assert not (tmp_path / "g.onnx").exists()


# ── Edited or damaged model files.


def _edit(description: dict, change: str) -> None:
    args = description["networks"]["G_AB"]["args"]
    exec(change, {"d": description, "args": args, "nan": math.nan})  # noqa: S102 (test data)


MODEL_EDITS = [
    ("args['ngf'] = 100000", "'ngf' must be in [1, 4096], got 100000"),
    ("args['ngf'] = -4", "'ngf' must be in [1, 4096], got -4"),
    ("args['ngf'] = '64'", "'ngf' must be an int, got str '64'"),
    ("args['ngf'] = 4.5", "'ngf' must be an int, got float 4.5"),
    ("args['ngf'] = True", "'ngf' must be an int, got bool True"),
    ("args['n_blocks'] = 0", "'n_blocks' must be in [1, 1000], got 0"),
    ("args['ngf'] = 1024; args['n_blocks'] = 2",  # each in range, together too many
     f"ResnetGenerator with these arguments would have 793,051,139 parameters, over the "
     f"{MAX_PARAMETERS:,} a model file may ask for"),
    ("args['norm'] = 3", "'norm' must be a string, got int 3"),
    ("args['norm'] = 'group'", "bad arguments for ResnetGenerator: unknown norm 'group'"),
    ("args['depth'] = 3", "bad arguments for ResnetGenerator: it takes no argument 'depth'"),
    ("d['networks']['G_AB']['args'] = [1, 2]", "network 'G_AB' must be"),
    ("d['value_range'] = [1, 1]", "'value_range' must have lo < hi, got [1, 1]"),
    ("d['value_range'] = [1, -1]", "'value_range' must have lo < hi, got [1, -1]"),
    ("d['value_range'] = [nan, 1]", "'value_range' must be a finite number, got nan"),
    ("d['value_range'] = [0]", "'value_range' must be [lo, hi], got [0]"),
    ("d['value_range'] = 'wide'", "'value_range' must be [lo, hi], got 'wide'"),
    ("d['size_multiple'] = 0", "'size_multiple' must be in [1, 1024], got 0"),
    ("d['channels'] = '3'", "'channels' must be an int, got str '3'"),
    ("d['scale'] = 1e300", "'scale' must be an int, got float 1e+300"),
    ("d['ema'] = 'yes'", "'ema' must be a bool, got str 'yes'"),
    ("d['task'] = 'colorize'", f"unknown task 'colorize' (one of {', '.join(TASKS)})"),
    ("del d['task']", "unknown task None"),
    ("del d['networks']", "'networks' must map each network's name to its class and "
                          "arguments, got null"),
    ("d['networks'] = {}", "'networks' must map each network's name"),
    ("d['networks']['G_AB'] = 'ResnetGenerator'", "network 'G_AB' must be"),
    ("del d['networks']['G_AB']['class']", "unknown network class None"),
    ("d['directions'] = {'a2b': 'G_XY', 'b2a': 'G_BA'}", "'directions' must map a2b/b2a to "
                                                         "networks of the file"),
]


@pytest.mark.parametrize("change, message", MODEL_EDITS, ids=[c for c, _ in MODEL_EDITS])
def test_an_edited_model_json_is_refused_naming_the_key(run: Path, tmp_path: Path,
                                                        change: str, message: str) -> None:
    description = json.loads((run / "model.json").read_text())
    _edit(description, change)
    (run / "model.json").write_text(json.dumps(description))  # NaN as JSON's NaN
    out = tmp_path / "out"
    for command in (["infer", run, models_input(run), out, "-q"],
                    ["export", run, "--format", "safetensors"]):
        result = invoke(*command)
        assert result.exit_code == 1
        line = one_error(result)
        assert line.startswith(f"error: {run / 'model.json'}: ")
        assert message in line
    assert not out.exists() and not (run / "export").exists()


def models_input(run: Path) -> Path:
    """A one-image input folder beside ``run``."""
    folder = run.parent / "input"
    if not folder.exists():
        save_image(folder / "a.png", smooth_image(np.random.default_rng(1), 16))
    return folder


@pytest.fixture(scope="module")
def onnx_file(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny CycleGAN's a2b network exported to ONNX (the quicker TorchScript exporter)."""
    out = tmp_path_factory.mktemp("onnx") / "a2b.onnx"
    export_model(models["cyclegan"], "onnx", dynamic=True, direction="a2b", out=out,
                 onnx_exporter="torchscript")
    return out


ONNX_EDITS = [
    ("value_range", "[1, 1]", "'value_range' must have lo < hi, got [1, 1]"),
    ("value_range", "[NaN, 1]", "'value_range' must be a finite number, got nan"),
    ("value_range", "wide", "metadata 'value_range' is not a valid value: 'wide'"),
    ("value_range", None, "its metadata has no 'value_range'"),
    ("scale", "x", "metadata 'scale' is not a valid value: 'x'"),
    ("scale", "0", "'scale' must be in [1, 8], got 0"),
    ("size_multiple", "-4", "'size_multiple' must be in [1, 1024], got -4"),
    ("size_multiple", None, "its metadata has no 'size_multiple'"),
    ("max_side", "0", "'max_side' must be in [1, 65536], got 0"),
    ("task", "colorize", "unknown task 'colorize' in its metadata"),
    ("task", None, "its metadata has no 'task'"),
    ("direction", "up", "metadata 'direction' must be a2b or b2a, got 'up'"),
]


@pytest.mark.parametrize("key, value, message", ONNX_EDITS,
                         ids=[f"{k}={v}" for k, v, _ in ONNX_EDITS])
def test_edited_onnx_metadata_is_refused_naming_the_key(models: dict[str, Path], onnx_file: Path,
                                                        tmp_path: Path, key: str,
                                                        value: str | None, message: str) -> None:
    proto = onnx.load(onnx_file)
    props = {p.key: p.value for p in proto.metadata_props}
    if value is None:
        del props[key]
    else:
        props[key] = value
    del proto.metadata_props[:]
    for k, v in props.items():
        proto.metadata_props.add(key=k, value=v)
    edited = tmp_path / "edited.onnx"
    onnx.save(proto, edited)
    result = invoke("infer", edited, models["in"], tmp_path / "out", "-q")
    assert result.exit_code == 1
    line = one_error(result)
    assert line.startswith(f"error: {edited}: ") and message in line
    assert not (tmp_path / "out").exists()


def test_an_export_whose_model_json_asks_for_a_huge_network_is_refused(run: Path,
                                                                       tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save

    out = tmp_path / "g.safetensors"
    assert invoke("export", run, "--format", "safetensors", "--direction", "a2b", "--out",
                  out).exit_code == 0
    with safe_open(str(out), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    description = json.loads(meta["model_json"])
    description["networks"]["G_AB"]["args"].update(ngf=1024, n_blocks=2)
    meta["model_json"] = json.dumps(description)
    with pytest.raises(TranslateError, match="would have 793,051,139 parameters"):
        load_exported_network(save(tensors, metadata=meta), "edited")


def test_the_bundled_and_trained_model_files_pass_the_checks(models: dict[str, Path]) -> None:
    for name in ("cyclegan", "sr", "inpaint", "gan"):
        assert load_model(models[name]).task == name
    assert load_model(Path(cli.__file__).parent / "models" / "sr-x4").task == "sr"
