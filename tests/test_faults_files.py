"""Faults found by attacking the CLI with files and names, each tested as a class.

* File names that are not UTF-8 (``b"caf\\xe9.png"``): written under the same bytes, logged
  losslessly (``failures.jsonl``, ``prep.json``: ``path_bytes_b64``), printed escaped.
* File names of up to 255 bytes (the most a name may have): temp names fit whatever the output.
* Temp files and folders of a killed process: removed on the next start (infer, train, prep) —
  and only those: a user's look-alike names and a running writer's temps stay.
* ``translate report`` writes all or nothing.
* ``data prep``: the output size is bounded before any work; overlapping domain folders are
  refused.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, error_line, invoke
from helpers import save_image, smooth_image

from translate.data.prep import REPORT_NAME, SPLITS
from translate.infer import FAILURES
from translate.io.atomic import (
    atomic_write_text,
    remove_stale_temp_files,
    temp_path_for,
    temp_prefix,
)
from translate.io.images import read_image
from translate.io.paths import display, json_safe, path_from_record, path_record
from translate.modelfile import save_model
from translate.nets.resnet import ResnetGenerator

# 255 bytes each, the most one file name may hold: ASCII, 2-byte and 3-byte UTF-8.
LONG_NAMES = ["a" * 251 + ".png", "é" * 125 + "x.png", "日" * 83 + "xx.png"]
assert all(len(name.encode()) == 255 for name in LONG_NAMES)


def raw(path: Path) -> bytes:
    return os.fsencode(path)


def bytes_path(folder: Path, name: bytes) -> Path:
    """``folder / name`` for a name given as raw bytes (any bytes but / and NUL)."""
    return Path(os.fsdecode(raw(folder) + b"/" + name))


def names_under(folder: Path) -> set[bytes]:
    """Every file under ``folder``, as raw relative bytes."""
    return {raw(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def write_png(path: Path, seed: int, h: int = 16, w: int = 20) -> None:
    save_image(path, smooth_image(np.random.default_rng(seed), h, w))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CycleGAN model folder with random weights (these tests are about files)."""
    folder = tmp_path_factory.mktemp("faults-model")
    torch.manual_seed(0)
    nets = {name: ResnetGenerator(ngf=8, n_blocks=1).eval() for name in ("G_AB", "G_BA")}
    save_model(folder, "cyclegan", nets, {"value_range": [-1.0, 1.0],
                                          "directions": {"a2b": "G_AB", "b2a": "G_BA"},
                                          "size_multiple": 4, "channels": 3, "ema": False})
    return folder


# ── Helpers that make what a killed (or a still running) process leaves.

_WRITER = """
import sys, time
from pathlib import Path
from translate.io.atomic import make_temp_dir, temp_path_for
for arg in sys.argv[1:]:
    kind, _, where = arg.partition(":")
    if kind == "file":
        temp = temp_path_for(Path(where))
        temp.write_bytes(b"half")
    else:
        temp = make_temp_dir(Path(where))
        (temp / "trainA").mkdir()
    print(temp, flush=True)
print("ready", flush=True)
time.sleep(600)
"""


class Writer:
    """A process that made temp files (``file:PATH``: a temp for PATH) and staging folders
    (``dir:PARENT``) the way translate does, and now waits; ``kill()`` it to leave them stale."""

    def __init__(self, *specs: str):
        self.proc = subprocess.Popen([sys.executable, "-c", _WRITER, *specs], cwd=REPO,
                                     stdout=subprocess.PIPE, text=True,
                                     errors="surrogateescape")
        self.temps = []
        for line in self.proc.stdout:
            if line.strip() == "ready":
                break
            self.temps.append(Path(line.rstrip("\n")))
        assert len(self.temps) == len(specs), "the writer did not start"

    def kill(self) -> list[Path]:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()
        return self.temps


def killed_writer(*specs: str) -> list[Path]:
    return Writer(*specs).kill()


def look_alikes(folder: Path) -> list[Path]:
    """Files a user may have that look like temp files but are not this program's (or are a
    temp of another host, whose processes this one cannot see)."""
    other_host = temp_prefix(1).split("-")[2].translate(str.maketrans("0123456789abcdef",
                                                                      "123456789abcdef0"))
    names = [".notes.abcdefgh.tmp",  # the old temp pattern
             ".result.png.k3_x9a0q.tmp",
             ".translate-tmp-notes.tmp",  # our prefix, not our name
             ".translate-tmp-" + "x" * 8 + ".tmp",
             temp_prefix(2 ** 22 + 1) + "abcdefgh.tmp.bak",  # ours + a suffix: a copy
             f".translate-tmp-{other_host}-999999-abcdefgh.tmp"]
    made = []
    for sub in (folder, folder / "sub"):
        sub.mkdir(parents=True, exist_ok=True)
        for name in names:
            (sub / name).write_text("the user's\n")
            made.append(sub / name)
    return made


# ── 6. File names that are not UTF-8.


def test_path_records_are_lossless_and_valid_utf8_json() -> None:
    utf8 = ["été 日本.png".encode(), b"two\nlines.png"]
    for name in [b"caf\xe9.png", b"\xff\xfe/x.png", *utf8]:
        path = Path(os.fsdecode(name))
        record = {**path_record(path), "reason": f"quoting {path}"}
        text = json.dumps(json_safe(record), ensure_ascii=False)
        text.encode("utf-8")  # what atomic_write_text does: must not raise
        back = json.loads(text)
        assert raw(path_from_record(back)) == name
        assert ("path_bytes_b64" in back) == (name not in utf8)  # only where text cannot say it
        shown = display(path)
        shown.encode("utf-8")
        assert shown.isprintable(), shown
    assert display(Path(os.fsdecode(b"caf\xe9.png"))) == "caf\\xe9.png"
    assert path_record(Path(os.fsdecode(b"caf\xe9.png"))) == {
        "path": "caf\\xe9.png", "path_bytes_b64": base64.b64encode(b"caf\xe9.png").decode()}


def test_infer_keeps_non_utf8_names_and_records_failures_by_their_bytes(
        model: Path, tmp_path: Path) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    good = [b"caf\xe9.png", b"d\xe9j\xe0/na\xefve.png", "été.png".encode(), b"[red]x.png"]
    bad = [b"bad\xff.png", b"two\nlines.png", b"d\xe9j\xe0/cut\xfe.png"]
    for i, name in enumerate(good):
        write_png(bytes_path(folder, name), i)
    for name in bad:
        bytes_path(folder, name).write_bytes(b"not an image")

    result = invoke("infer", model, folder, out, "-q")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{len(good)} written, 0 already there, {len(bad)} failed")
    assert len(lines) == 1 + len(bad)  # one line per failure: a newline in a name is escaped
    for shown in ("bad\\xff.png", "two\\x0alines.png", "d\\xe9j\\xe0/cut\\xfe.png"):
        assert any(shown in line for line in lines), (shown, lines)

    assert names_under(out) == {*good, FAILURES.encode()}
    for name in good:
        assert read_image(bytes_path(out, name)).array.shape == (16, 20, 3)
    text = (out / FAILURES).read_bytes().decode("utf-8")  # valid UTF-8, whatever the names
    records = [json.loads(line) for line in text.splitlines()]
    assert {raw(path_from_record(r)) for r in records} == {raw(bytes_path(folder, n)) for n in bad}
    assert all("not an image" in r["reason"] for r in records)


def test_data_prep_keeps_non_utf8_names_recoverable(tmp_path: Path) -> None:
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "ds"
    names_a = [b"caf\xe9.png", b"d\xe9j\xe0/\xff.png", b"plain.png"]
    for i, name in enumerate(names_a):
        write_png(bytes_path(a, name), i, 20, 24)
    bytes_path(a, b"bad\xfe.png").write_bytes(b"junk")
    bytes_path(a, b"zdup\xe9.png").write_bytes(bytes_path(a, b"plain.png").read_bytes())
    for i in range(3):
        write_png(b / f"b{i}.png", 10 + i, 20, 24)

    result = invoke("data", "prep", "--a", a, "--b", b, "--out", out, "--size", 16)
    assert result.exit_code == 0, result.output
    assert "bad\\xfe.png" in result.output
    info = json.loads((out / REPORT_NAME).read_bytes().decode("utf-8"))
    domain = info["domains"]["A"]
    sources = {raw(path_from_record(f, "source")): path_from_record(f, "output")
               for f in domain["files"]}
    assert set(sources) == set(names_a)
    for output in sources.values():
        assert read_image(out / output).array.shape[:2] == (16, 19)
    assert raw(sources[b"caf\xe9.png"].name) == b"caf\xe9.png"  # the same bytes
    assert raw(sources[b"d\xe9j\xe0/\xff.png"].name) == b"d\xe9j\xe0__\xff.png"
    [skipped] = domain["skipped"]
    assert raw(path_from_record(skipped, "file")) == b"bad\xfe.png"
    [duplicate] = domain["duplicates"]
    assert raw(path_from_record(duplicate, "file")) == b"zdup\xe9.png"
    assert raw(path_from_record(duplicate, "duplicate_of")) == b"plain.png"


def test_report_shows_and_links_non_utf8_names(gan_run: Path, tmp_path: Path) -> None:
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    write_png(bytes_path(inputs, b"caf\xe9.png"), 0)
    write_png(bytes_path(outputs, b"caf\xe9.png"), 1)
    result = invoke("report", gan_run, "--compare", f"t:{inputs}:{outputs}")
    assert result.exit_code == 0, result.output
    page = (gan_run / "report.html").read_text("utf-8")
    assert "caf\\xe9.png" in page and "caf%E9.png" in page


# ── 9. File names of 242–255 bytes.


@pytest.mark.parametrize("name", LONG_NAMES, ids=["ascii", "utf8-2", "utf8-3"])
def test_atomic_writes_fit_a_255_byte_name(tmp_path: Path, name: str) -> None:
    atomic_write_text(tmp_path / name, "whole\n")
    assert [p.name for p in tmp_path.iterdir()] == [name]
    assert len(temp_path_for(tmp_path / name).name.encode()) < 64  # fixed, whatever the name


def test_infer_writes_255_byte_names(model: Path, tmp_path: Path) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    for i, name in enumerate(LONG_NAMES):
        write_png(folder / name, i)
    (folder / ("b" * 251 + ".png")).write_bytes(b"corrupt")  # its failure is recorded too
    result = invoke("infer", model, folder, out, "-q")
    assert result.exit_code == 1, result.output
    assert f"{len(LONG_NAMES)} written, 0 already there, 1 failed" in result.output
    assert {p.name for p in out.iterdir()} == {*LONG_NAMES, FAILURES}


def test_data_prep_fits_long_and_deep_names(tmp_path: Path) -> None:
    a, b, out = tmp_path / "a", tmp_path / "b", tmp_path / "ds"
    sources = [*LONG_NAMES, "a" * 251 + ".jpg",  # clashes with the first: gets "__jpg" added
               f"{'d' * 200}/{'e' * 200}/{'f' * 200}.png"]  # flattened: 600+ bytes
    for i, name in enumerate(sources):
        write_png(a / name, i, 20, 24)
    for i in range(2):
        write_png(b / f"b{i}.png", 10 + i, 20, 24)
    result = invoke("data", "prep", "--a", a, "--b", b, "--out", out, "--size", 16,
                    "--test-fraction", 0)
    assert result.exit_code == 0, result.output
    info = json.loads((out / REPORT_NAME).read_text("utf-8"))
    outputs = {f["source"]: f["output"] for f in info["domains"]["A"]["files"]}
    assert set(outputs) == set(sources)
    assert len(set(outputs.values())) == len(sources)
    for output in outputs.values():
        assert len(Path(output).name.encode()) <= 255
        assert (out / output).is_file()
    for name in LONG_NAMES[1:]:  # no clash, 255 bytes: kept as they are
        assert outputs[name] == "trainA/" + name


# ── 12 and 14. Stale temps of killed processes removed on the next start; nothing else.


def test_stale_temps_of_killed_writers_only_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    users = look_alikes(folder)
    stale = killed_writer(f"file:{folder / 'x.png'}", f"file:{folder / 'sub' / 'y.png'}")
    running = Writer(f"file:{folder / 'z.png'}")  # another translate, still writing
    try:
        assert remove_stale_temp_files(folder) == 2
        assert not any(p.exists() for p in stale)
        assert all(p.exists() for p in users)
        assert running.temps[0].exists()
    finally:
        running.kill()
    assert remove_stale_temp_files(folder) == 1  # once it is gone, its temp is stale


def test_infer_start_removes_killed_temps_and_keeps_the_users(model: Path, tmp_path: Path) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    write_png(folder / "x.png", 0)
    users = look_alikes(out)
    stale = killed_writer(f"file:{out / 'x.png'}", f"file:{out / 'sub' / 'x.png'}")
    running = Writer(f"file:{out / 'sub' / 'y.png'}")
    try:
        result = invoke("infer", model, folder, out, "-q")
        assert result.exit_code == 0, result.output
        assert not any(p.exists() for p in stale)
        assert all(p.read_text() == "the user's\n" for p in users)
        assert running.temps[0].exists()
    finally:
        running.kill()


@pytest.mark.slow
def test_train_start_removes_a_checkpoint_cut_off_by_a_kill(gan_run: Path) -> None:
    state = gan_run / "state"
    users = look_alikes(state)
    [stale] = killed_writer(f"file:{state / 'last.pt'}")  # SIGKILL while writing last.pt
    result = invoke("train", "gan", "--out", gan_run, "--resume", "--set", "train.steps=5", "-q")
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert all(p.exists() for p in users)
    assert not [p for p in gan_run.rglob(".translate-tmp-*") if p not in users]


def _prep_inputs(root: Path) -> tuple[Path, Path]:
    a, b = root / "a", root / "b"
    for i in range(3):
        write_png(a / f"a{i}.png", i, 20, 24)
        write_png(b / f"b{i}.png", 10 + i, 20, 24)
    return a, b


_KILLED_PREP = """
import os, signal, sys
from translate.data import prep
real, moves = os.replace, []
def replace(src, dst):
    real(src, dst)
    if os.path.basename(dst) in prep.SPLITS and sys.argv[4] == "move":
        moves.append(dst)
        if len(moves) == 2:  # two splits moved into OUT, prep.json not yet
            os.kill(os.getpid(), signal.SIGKILL)
prep.os.replace = replace
real_write, writes = prep.write_image, []
def write_image(*args, **kwargs):
    real_write(*args, **kwargs)
    writes.append(1)
    if sys.argv[4] == "stage" and len(writes) == 2:  # mid-way through building the dataset
        os.kill(os.getpid(), signal.SIGKILL)
prep.write_image = write_image
prep.prep_dataset(sys.argv[1], sys.argv[2], sys.argv[3], size=16, show_progress=False)
"""


@pytest.mark.parametrize("when", ["stage", "move"])
def test_data_prep_after_a_kill_completes_and_leaves_no_temp(tmp_path: Path, when: str) -> None:
    a, b = _prep_inputs(tmp_path)
    out = tmp_path / "datasets" / "ds"
    out.mkdir(parents=True)
    (out / "notes.txt").write_text("the user's\n")  # a non-empty OUT: splits move in one by one
    users = look_alikes(out.parent)
    (out.parent / f".{out.name}.tmp-abcd1234").mkdir()  # the old staging pattern: kept
    killed = subprocess.run([sys.executable, "-c", _KILLED_PREP, str(a), str(b), str(out), when],
                            cwd=REPO, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    hidden = {p.name for p in out.parent.iterdir()} | {p.name for p in out.iterdir()}
    assert any(name.startswith(".translate-tmp-") for name in hidden)  # what the kill left

    result = invoke("data", "prep", "--a", a, "--b", b, "--out", out, "--size", 16)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted([*SPLITS, REPORT_NAME, "notes.txt"])
    assert not [p for p in out.parent.iterdir()
                if p.name.startswith(".translate-tmp-") and p not in users]
    assert all(p.exists() for p in users)
    assert (out.parent / f".{out.name}.tmp-abcd1234").is_dir()


def test_a_running_preps_staging_folder_is_kept(tmp_path: Path) -> None:
    a, b = _prep_inputs(tmp_path)
    out = tmp_path / "ds"
    running = Writer(f"dir:{tmp_path}")  # another prep, building its dataset beside
    try:
        result = invoke("data", "prep", "--a", a, "--b", b, "--out", out, "--size", 16)
        assert result.exit_code == 0, result.output
        assert running.temps[0].is_dir()
    finally:
        running.kill()


# ── 15. A failing report leaves no file.


def _all_files(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
            for p in folder.rglob("*")}


def test_a_failing_report_writes_nothing(gan_run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    before = _all_files(gan_run)
    # Fails after the loss curves are drawn: the comparison has no images.
    line = error_line(invoke("report", gan_run, "--compare", f"t:{empty}:{empty}"))
    assert "no images under" in line
    assert _all_files(gan_run) == before

    (gan_run / "report.html").mkdir()  # an --out that cannot be written
    before = _all_files(gan_run)
    line = error_line(invoke("report", gan_run))
    assert "cannot write the report" in line
    assert _all_files(gan_run) == before

    line = error_line(invoke("report", gan_run, "--out", gan_run / "config.yaml" / "r.html"))
    assert "cannot write the report" in line
    assert _all_files(gan_run) == before
    line = error_line(invoke("report", gan_run, "--out", tmp_path / "new" / "deeper" / "r.html",
                             "--compare", f"t:{empty}:{empty}"))
    assert "no images under" in line
    assert not (tmp_path / "new").exists()  # no folder made for it either


# ── 16. data prep: bounded output size; overlapping domain folders.


def test_data_prep_refuses_a_size_over_the_pixel_budget(tmp_path: Path) -> None:
    a, b = _prep_inputs(tmp_path)
    out = tmp_path / "ds"
    line = error_line(invoke("data", "prep", "--a", a, "--b", b, "--out", out, "--size", 40000))
    assert "--size 40000" in line and "--max-pixels 150000000" in line
    assert "the largest --size it allows is 12247" in line  # isqrt(150_000_000)
    line = error_line(invoke("data", "prep", "--a", a, "--b", b, "--out", out, "--size", 101,
                             "--max-pixels", 10_000))
    assert "the largest --size it allows is 100" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # nothing made


def test_data_prep_skips_an_image_whose_output_is_over_the_budget(tmp_path: Path) -> None:
    a, b = _prep_inputs(tmp_path)
    write_png(a / "panorama.png", 5, 8, 60)  # 480 pixels in; 16 × 120 = 1920 out
    result = invoke("data", "prep", "--a", a, "--b", b, "--out", tmp_path / "ds", "--size", 16,
                    "--max-pixels", 1000)
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "ds" / REPORT_NAME).read_text("utf-8"))
    [skipped] = info["domains"]["A"]["skipped"]
    assert skipped["file"] == "panorama.png"
    assert "would have 120×16 = 1920 pixels, over the limit of 1000" in skipped["reason"]


def test_data_prep_refuses_overlapping_domain_folders(tmp_path: Path) -> None:
    a, b = _prep_inputs(tmp_path)
    write_png(a / "inner" / "x.png", 7)
    out = tmp_path / "ds"
    cases = [(a, a, "are the same folder"), (a, a / "inner", "--b ", "is inside --a"),
             (a / "inner", a, "--a ", "is inside --b"), (a, tmp_path / "a" / ".." / "a",
                                                         "are the same folder")]
    for first, second, *words in cases:
        line = error_line(invoke("data", "prep", "--a", first, "--b", second, "--out", out))
        assert all(w in line for w in words), line
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
