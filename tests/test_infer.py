"""`translate infer` and TranslationPipeline on a tiny trained CycleGAN: sizes, names, modes and
bit depths kept; batching-invariant numerics; skip/overwrite; failures listed; bad input refused."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import error_line, invoke, translate_cmd
from helpers import (
    assert_no_temp_files,
    file_mtimes,
    files_under,
    smooth_image,
    stale_temp_name,
)
from PIL import Image

from translate.data.demo import build_demo
from translate.infer import FAILURES, TranslationPipeline, run_folder
from translate.infer.folder import default_decode_workers, plan_jobs
from translate.io.images import read_image, write_image
from translate.modelfile import load_model

TINY = [
    "model.ngf=8",
    "model.n_blocks=2",
    "model.ndf=8",
    "data.load_size=36",
    "data.crop_size=32",
    "train.epochs=0",
    "train.epochs_decay=0",
    "train.steps=4",
]
OLD_NS = 1_000_000_000 * 1_000_000_000  # an mtime (2001) no run could give a file it writes


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("infer")
    build_demo(root / "demo", size=40, seed=0)
    sets = [a for s in [*TINY, f"data.root={root / 'demo'}"] for a in ("--set", s)]
    result = invoke("train", "cyclegan", "--out", root / "run", *sets, "-q")
    assert result.exit_code == 0, result.output
    return root / "run"


@pytest.fixture
def odd(tmp_path: Path) -> Path:
    """A folder with odd-sized images, a subfolder, spaces and non-ASCII names."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    write_image(folder / "odd.png", smooth_image(rng, 67, 131))
    write_image(folder / "sub dir" / "été ñ 01.png", smooth_image(rng, 50, 33))
    return folder


# ── Sizes, names, formats.


def test_outputs_keep_size_names_and_subfolders(run: Path, odd: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("infer", run, odd, out, "-q")
    assert result.exit_code == 0, result.output
    assert files_under(out) == {"odd.png", "sub dir/été ñ 01.png"}
    for name, size in [("odd.png", (131, 67)), ("sub dir/été ñ 01.png", (33, 50))]:
        with Image.open(out / name) as im, Image.open(odd / name) as src:
            assert (im.format, im.mode, im.size) == ("PNG", "RGB", size)
            assert not np.array_equal(np.asarray(im), np.asarray(src))  # the model ran
    assert "2 written, 0 already there, 0 failed" in result.output
    assert_no_temp_files(out)


def test_ext_changes_the_format(run: Path, odd: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("infer", run, odd, out, "--ext", "jpg", "-q")
    assert result.exit_code == 0, result.output
    assert files_under(out) == {"odd.jpg", "sub dir/été ñ 01.jpg"}
    with Image.open(out / "odd.jpg") as im:
        assert (im.format, im.size) == ("JPEG", (131, 67))


def test_a_single_image_as_input(run: Path, odd: Path, tmp_path: Path) -> None:
    out = tmp_path / "single"
    result = invoke("infer", run, odd / "sub dir" / "été ñ 01.png", out, "-q")
    assert result.exit_code == 0, result.output
    assert files_under(out) == {"été ñ 01.png"}
    with Image.open(out / "été ñ 01.png") as im:
        assert im.size == (33, 50)


def test_gray_alpha_and_16_bit_are_kept(run: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder, out = tmp_path / "in", tmp_path / "out"
    write_image(folder / "gray.png", smooth_image(rng, 36, 44)[..., 0])
    alpha = rng.integers(0, 256, (36, 44), dtype=np.uint8)
    alpha[0, :4] = [0, 1, 254, 255]
    write_image(folder / "rgba.png", smooth_image(rng, 36, 44), alpha=alpha)
    deep = rng.integers(0, 65536, (36, 44, 3), dtype=np.uint16)
    write_image(folder / "deep.png", deep, bit_depth=16)
    write_image(folder / "deep_gray.png", deep[..., 1], bit_depth=16)
    assert read_image(folder / "deep.png").bit_depth == 16  # the input really is 16-bit

    result = invoke("infer", run, folder, out, "-q")
    assert result.exit_code == 0, result.output
    with Image.open(out / "gray.png") as im:
        assert (im.mode, im.size) == ("L", (44, 36))
    rgba = read_image(out / "rgba.png")
    assert rgba.array.shape == (36, 44, 3) and rgba.alpha is not None
    assert np.array_equal(rgba.alpha, alpha)
    for name, channels in [("deep.png", 3), ("deep_gray.png", 1)]:
        image = read_image(out / name)
        assert image.bit_depth == 16 and image.array.dtype == np.uint16, name
        assert image.array.shape == (36, 44, channels), name
        assert image.array.max() > 255, name
        # Not 8-bit values scaled up (x * 257): real 16-bit resolution.
        assert np.any(image.array % 257 != 0), name


# ── The pipeline's numerics.


def test_batching_does_not_change_results(run: Path) -> None:
    model = load_model(run, task="cyclegan")
    pipeline = TranslationPipeline(model, "a2b", "cpu", "fp32")
    x = torch.rand(3, 3, 30, 42, generator=torch.Generator().manual_seed(0))  # padded to 32 × 44
    y = pipeline(x)
    assert y.shape == x.shape
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    alone = torch.cat([pipeline(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(y, alone, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_compiled_pipeline_matches_eager_at_every_size(run: Path, odd: Path, tmp_path: Path,
                                                       monkeypatch) -> None:
    compiled_nets = []
    real_compile = torch.compile

    def recording_compile(net, **kwargs):
        compiled_nets.append(kwargs)
        return real_compile(net, **kwargs)

    monkeypatch.setattr("translate.infer.translation.torch.compile", recording_compile)
    result = invoke("infer", run, odd, tmp_path / "compiled", "--compile", "-q")
    assert result.exit_code == 0, result.output
    assert compiled_nets == [{"dynamic": True}]  # the CLI flag reached the pipeline
    assert invoke("infer", run, odd, tmp_path / "eager", "-q").exit_code == 0
    for name in ("odd.png", "sub dir/été ñ 01.png"):  # two sizes
        compiled, eager = tmp_path / "compiled" / name, tmp_path / "eager" / name
        with Image.open(compiled) as a, Image.open(eager) as b:
            assert a.size == b.size
            assert np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max() <= 1, name
    pipeline = TranslationPipeline(load_model(run, task="cyclegan"), "a2b", "cpu", "fp32",
                                   compile=True)
    assert isinstance(pipeline.net, torch._dynamo.eval_frame.OptimizedModule)


def test_b2a_runs_g_ba(run: Path) -> None:
    model = load_model(run, task="cyclegan")
    a2b = TranslationPipeline(model, "a2b", "cpu", "fp32")
    b2a = TranslationPipeline(model, "b2a", "cpu", "fp32")
    x = torch.rand(2, 3, 32, 36, generator=torch.Generator().manual_seed(1))  # no padding needed
    with torch.no_grad():
        expected = ((model.networks["G_BA"](x * 2 - 1) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(b2a(x), expected, atol=1e-6, rtol=0)
    assert float((a2b(x) - b2a(x)).abs().max()) > 1e-3


# ── Skip, overwrite, failures.


def _age(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(OLD_NS, OLD_NS))


def test_existing_outputs_are_skipped_unless_overwrite(run: Path, odd: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert invoke("infer", run, odd, out, "-q").exit_code == 0
    _age(out)
    again = invoke("infer", run, odd, out, "-q")
    assert again.exit_code == 0, again.output
    assert "0 written, 2 already there" in again.output
    assert set(file_mtimes(out).values()) == {OLD_NS}
    report = run_folder(TranslationPipeline(load_model(run), "a2b", "cpu", "fp32"), odd, out,
                        show_progress=False)
    assert (report.total, report.skipped_existing, report.written) == (2, 2, 0)
    assert set(file_mtimes(out).values()) == {OLD_NS}

    redo = invoke("infer", run, odd, out, "--overwrite", "-q")
    assert redo.exit_code == 0, redo.output
    assert "2 written, 0 already there" in redo.output
    mtimes = file_mtimes(out)
    assert set(mtimes) == {"odd.png", "sub dir/été ñ 01.png"}
    assert OLD_NS not in mtimes.values()
    assert_no_temp_files(out)


def _truncated_jpeg(rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(smooth_image(rng, 64, 64)).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


def test_bad_files_are_listed_and_the_rest_is_written(run: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    folder, out = tmp_path / "in", tmp_path / "out"
    write_image(folder / "good1.png", smooth_image(rng, 40, 44))
    write_image(folder / "sub" / "good2.jpg", smooth_image(rng, 36, 52))
    (folder / "sub" / "corrupt.jpg").write_bytes(_truncated_jpeg(rng))
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image\n")

    result = invoke("infer", run, folder, out, "-q")
    assert result.exit_code == 1, result.output
    assert files_under(out) == {"good1.png", "sub/good2.jpg", FAILURES}
    failures = [json.loads(x) for x in (out / FAILURES).read_text("utf-8").splitlines()]
    reasons = {Path(f["path"]).relative_to(folder).as_posix(): f["reason"] for f in failures}
    assert len(failures) == 3
    assert set(reasons) == {"sub/corrupt.jpg", "empty.png", "notes.png"}
    assert reasons["empty.png"] == "empty file"
    assert reasons["notes.png"].startswith("not an image")
    assert reasons["sub/corrupt.jpg"].startswith("truncated or corrupt")
    assert "2 written, 0 already there, 3 failed" in result.output
    assert_no_temp_files(out)

    for name in ("sub/corrupt.jpg", "empty.png", "notes.png"):
        (folder / name).unlink()
    clean = invoke("infer", run, folder, out, "-q")
    assert clean.exit_code == 0, clean.output
    assert files_under(out) == {"good1.png", "sub/good2.jpg"}  # failures.jsonl removed


def test_image_too_small_for_the_network_is_a_failure_not_a_crash(run: Path, tmp_path: Path):
    """A 4 × 4 image reaches the ResNet bottleneck at 1 × 1, which InstanceNorm/ReflectionPad
    cannot take; that file must be listed in failures.jsonl while the others are written."""
    rng = np.random.default_rng(3)
    folder, out = tmp_path / "in", tmp_path / "out"
    write_image(folder / "a_good.png", smooth_image(rng, 40, 44))
    write_image(folder / "b_tiny.png", smooth_image(rng, 4, 4))
    write_image(folder / "c_good.png", smooth_image(rng, 40, 44))
    result = invoke("infer", run, folder, out, "-q")
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert result.exit_code == 1, result.output
    assert files_under(out) == {"a_good.png", "c_good.png", FAILURES}
    [failure] = [json.loads(x) for x in (out / FAILURES).read_text("utf-8").splitlines()]
    assert Path(failure["path"]).name == "b_tiny.png"


# ── Bad input: one line, exit 1, nothing written.


def test_model_of_another_task_is_refused(gan_run: Path, odd: Path, tmp_path: Path) -> None:
    result = invoke("infer", gan_run, odd, tmp_path / "out")
    assert result.exit_code == 1
    line = error_line(result)
    assert "holds a 'gan' model" in line and "cyclegan" in line
    assert not (tmp_path / "out").exists()


def test_unknown_direction_names_the_directions(run: Path, odd: Path, tmp_path: Path) -> None:
    result = invoke("infer", run, odd, tmp_path / "out", "--direction", "c2d")
    assert result.exit_code == 1
    line = error_line(result)
    assert "'c2d'" in line and "a2b, b2a" in line
    assert not (tmp_path / "out").exists()


def test_output_inside_input_is_refused(run: Path, odd: Path) -> None:
    before = files_under(odd)
    result = invoke("infer", run, odd, odd / "translated")
    assert result.exit_code == 1
    assert "is inside the input folder" in error_line(result)
    assert not (odd / "translated").exists()
    assert files_under(odd) == before


def test_missing_input_and_missing_model(run: Path, odd: Path, tmp_path: Path) -> None:
    result = invoke("infer", run, tmp_path / "nope", tmp_path / "out")
    assert result.exit_code == 1
    assert "input not found" in error_line(result)
    result = invoke("infer", tmp_path / "no-model", odd, tmp_path / "out")
    assert result.exit_code == 1
    assert "model not found" in error_line(result)
    assert not (tmp_path / "out").exists()


# ── --fail-fast, collisions, containment.


def _failures(out: Path) -> list[dict[str, str]]:
    return [json.loads(x) for x in (out / FAILURES).read_text("utf-8").splitlines()]


def test_fail_fast_stops_at_the_first_failure(run: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    folder, out = tmp_path / "in", tmp_path / "out"
    before, after = [f"a{i}.png" for i in range(4)], [f"c{i}.png" for i in range(4)]
    for name in before + after:
        write_image(folder / name, smooth_image(rng, 32, 36))
    (folder / "b_bad.png").write_bytes(b"")

    result = invoke("infer", run, folder, out, "--fail-fast", "--workers", 0, "-q")
    assert result.exit_code == 1, result.output
    # The inputs before the bad one were queued and written; none after it was started.
    assert files_under(out) == {*before, FAILURES}
    [failure] = _failures(out)
    assert (Path(failure["path"]).name, failure["reason"]) == ("b_bad.png", "empty file")
    assert "4 written, 0 already there, 1 failed, of 9" in result.output
    assert "stopped early (--fail-fast): 4 not attempted" in result.output
    assert_no_temp_files(out)

    rest = invoke("infer", run, folder, out, "--workers", 0, "-q")  # without it: the rest
    assert rest.exit_code == 1, rest.output
    assert "4 written, 4 already there, 1 failed" in rest.output
    assert "stopped early" not in rest.output
    assert files_under(out) == {*before, *after, FAILURES}


def test_two_inputs_with_one_output_do_not_overwrite(run: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    folder, out = tmp_path / "in", tmp_path / "out"
    write_image(folder / "a.jpg", smooth_image(rng, 40, 44))  # sorts first: it owns out/a.png
    write_image(folder / "a.png", smooth_image(rng, 36, 52))
    write_image(folder / "b.png", smooth_image(rng, 36, 52))
    for attempt in ("first", "again"):
        result = invoke("infer", run, folder, out, "--ext", "png", "-q")
        assert result.exit_code == 1, f"{attempt}: {result.output}"
        assert files_under(out) == {"a.png", "b.png", FAILURES}
        with Image.open(out / "a.png") as im:
            assert im.size == (44, 40), attempt  # a.jpg's result, not overwritten by a.png's
        [failure] = _failures(out)
        assert Path(failure["path"]).name == "a.png"
        assert f"already the output of {folder / 'a.jpg'}" in failure["reason"]
    assert "0 written, 2 already there, 1 failed" in result.output  # a rerun still reports it


def test_input_inside_output_is_refused(run: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    out = tmp_path / "out"
    write_image(out / "photos" / "x.png", smooth_image(rng, 32, 32))
    result = invoke("infer", run, out / "photos", out)
    assert result.exit_code == 1
    assert "is inside the output folder" in error_line(result)
    assert files_under(out) == {"photos/x.png"}


def test_an_output_that_escapes_is_one_failure(run: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    folder, out, elsewhere = tmp_path / "in", tmp_path / "out", tmp_path / "elsewhere"
    write_image(folder / "sub" / "x.png", smooth_image(rng, 32, 32))
    write_image(folder / "y.png", smooth_image(rng, 32, 32))
    elsewhere.mkdir()
    out.mkdir()
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)
    result = invoke("infer", run, folder, out, "-q")
    assert result.exit_code == 1, result.output
    assert (out / "y.png").is_file()
    assert not any(elsewhere.iterdir())
    [failure] = _failures(out)
    assert failure["path"] == str(folder / "sub" / "x.png")
    assert "would be written outside" in failure["reason"]


def test_stale_temp_files_are_removed_at_the_start(run: Path, odd: Path, tmp_path: Path):
    out = tmp_path / "out"
    stale = [out / stale_temp_name("k3_x9a0q"), out / "sub dir" / stale_temp_name("abcdefgh")]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half an image")
    (out / ".keep").write_text("not ours\n")
    (out / "notes.tmp").write_text("not hidden: not ours\n")
    (out / ".odd.png.k3_x9a0q.tmp").write_text("a user's file; the old temp pattern\n")
    result = invoke("infer", run, odd, out, "-q")
    assert result.exit_code == 0, result.output
    assert files_under(out) == {".keep", "notes.tmp", ".odd.png.k3_x9a0q.tmp", "odd.png",
                                "sub dir/été ñ 01.png"}


def test_ranks_split_the_inputs_whatever_exists(tmp_path: Path) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    for i in range(7):
        (folder / f"{i}.png").parent.mkdir(exist_ok=True)
        (folder / f"{i}.png").write_bytes(b"")
    (out / "3.png").parent.mkdir()
    (out / "3.png").write_bytes(b"")  # rank 1 skips it; the split must not shift
    shards = [plan_jobs(folder, out, rank=r, world_size=2) for r in range(2)]
    assert [j.src.name for j in shards[0].jobs] == ["0.png", "2.png", "4.png", "6.png"]
    assert [j.src.name for j in shards[1].jobs] == ["1.png", "5.png"]
    assert (shards[0].existing, shards[1].existing) == (0, 1)


# ── Interruption (a fresh process, signalled mid-run) and resuming by running it again.

MANY, SIDE = 64, 24  # enough images that a run is still going when the first output appears


def _many_images(folder: Path) -> set[str]:
    rng = np.random.default_rng(8)
    names = {f"img{i:03d}.png" for i in range(MANY)}
    for name in sorted(names):
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(folder / name)
    return names


def _signal_mid_run(cmd: list[str], out: Path, sig: signal.Signals, group: bool
                    ) -> subprocess.CompletedProcess:
    """Start ``cmd``, wait for its first output file, send ``sig`` (to the whole process group
    as a terminal's Ctrl-C does when ``group``) and wait for the end."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.glob("img*.png"))):
        assert proc.poll() is None, f"ended before any output: {proc.communicate()}"
        assert time.monotonic() < deadline, "no output within 120 s"
        time.sleep(0.005)
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def _final_files_decode(out: Path) -> set[str]:
    """The images under their final names, each decoded completely (truncation is an error)."""
    names = {p.name for p in out.glob("*.png")}
    for name in names:
        image = read_image(out / name)
        assert image.array.shape == (SIDE, SIDE, 3), name
    return names


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "group", "workers", "code"),
    [
        (signal.SIGTERM, False, 0, 143),
        (signal.SIGINT, True, 2, 130),  # Ctrl-C reaches the decoding workers too
        (signal.SIGKILL, False, 0, -9),
    ],
    ids=["sigterm", "ctrl-c", "sigkill"],
)
def test_interrupted_run_leaves_whole_files_and_a_rerun_completes_it(
        run: Path, tmp_path: Path, sig: signal.Signals, group: bool, workers: int, code: int
) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    names = _many_images(folder)
    if sig != signal.SIGKILL:
        (folder / "000_bad.png").write_bytes(b"")  # sorts first: failed before the signal
    cmd = translate_cmd("infer", str(run), str(folder), str(out), "--workers", str(workers), "-q")

    stopped = _signal_mid_run(cmd, out, sig, group)
    assert stopped.returncode == code, stopped.stderr[-3000:]
    done = _final_files_decode(out)
    assert done < names, "the run finished before the signal: nothing was tested"
    if sig == signal.SIGKILL:
        # What a killed writer leaves: temp files the next run must clear.
        (out / stale_temp_name()).write_bytes(b"half")
    else:
        assert_no_temp_files(out)
        [failure] = _failures(out)
        assert Path(failure["path"]).name == "000_bad.png"
        summary = f"{len(done)} written, 0 already there, 1 failed, of {MANY + 1}"
        assert summary in stopped.stderr, stopped.stderr[-3000:]
        left = MANY - len(done)
        assert f"stopped early ({sig.name}): {left} not attempted" in stopped.stderr
        (folder / "000_bad.png").unlink()

    _age(out)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{MANY - len(done)} written, {len(done)} already there, 0 failed" in again.stderr
    assert files_under(out) == names
    assert _final_files_decode(out) == names
    assert {n for n, t in file_mtimes(out).items() if t == OLD_NS} == done  # untouched
    assert_no_temp_files(out)


# ── Sharding across two gloo ranks (processes started as torchrun would).


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("bad_rank", [0, 1])
def test_two_ranks_share_the_inputs_and_merge_failures(run: Path, tmp_path: Path,
                                                       bad_rank: int) -> None:
    rng = np.random.default_rng(9)
    folder, out = tmp_path / "in", tmp_path / "out"
    names = [f"img{i}.png" for i in range(9)]  # sorted: input i goes to rank i % 2
    for name in names:
        write_image(folder / name, smooth_image(rng, 32, 36))
    bad = names.pop(4 + bad_rank)
    (folder / bad).write_bytes(b"")
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port()), "CUDA_VISIBLE_DEVICES": ""}
    cmd = translate_cmd("infer", str(run), str(folder), str(out), "--workers", "0", "-q")
    procs = [subprocess.Popen(cmd, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert codes == [1, 1], results  # the rank without a failure fails too

    assert files_under(out) == {*names, FAILURES}  # the per-rank lists were merged and removed
    [failure] = _failures(out)
    assert failure == {"path": str(folder / bad), "reason": "empty file"}
    rank0, rank1 = (stderr for _, stderr in results)
    match = re.search(r"8 written, 0 already there, 1 failed, of 9 .* × 2 ranks "
                      r"\(written per rank: (\d+), (\d+)\)", rank0)
    assert match, rank0
    # Each output written once: the ranks' counts add up to the distinct files written, and
    # rank 0 has inputs 0, 2, 4, 6, 8, rank 1 inputs 1, 3, 5, 7.
    assert [int(n) for n in match.groups()] == [5 - (bad_rank == 0), 4 - (bad_rank == 1)]
    assert "written" not in rank1, rank1  # only rank 0 prints the summary


def test_default_decode_workers_leave_the_cpu_models_threads_alone(monkeypatch) -> None:
    monkeypatch.setattr("translate.infer.folder.os.cpu_count", lambda: 8)
    monkeypatch.setattr("translate.infer.folder.torch.get_num_threads", lambda: 6)
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert default_decode_workers(5, gpu) == 0  # a handful of files: no processes
    assert default_decode_workers(100, gpu) == 4
    assert default_decode_workers(100, cpu) == 2  # the 2 cores the 6 compute threads leave
    monkeypatch.setattr("translate.infer.folder.torch.get_num_threads", lambda: 8)
    assert default_decode_workers(100, cpu) == 0
