"""Small things a user meets (issue 27, class 9): bool config keys take only true/false, the
model list is readable at 80 columns, and the pair makers drop exact duplicates as data prep
does. (--max-memory's usage exit code: tests/test_sr_memory.py.)"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, translate_cmd
from helpers import smooth_image
from PIL import Image

from translate import models
from translate.config import SCHEMAS, bool_keys, load_config
from translate.errors import TranslateError

BOOL_KEYS = sorted((task, key) for task in SCHEMAS for key in bool_keys(task))


def test_the_bool_keys_are_found() -> None:
    assert ("pix2pix", "model.dropout") in BOOL_KEYS
    assert ("sr", "train.fast_conv") in BOOL_KEYS  # bool | None
    assert len(BOOL_KEYS) >= 20


@pytest.mark.parametrize(("task", "key"), BOOL_KEYS)
@pytest.mark.parametrize("value", ["2", "-1", "0.5", "10"])
def test_a_bool_key_set_to_another_number_is_refused_naming_it(task: str, key: str,
                                                               value: str) -> None:
    with pytest.raises(TranslateError) as excinfo:
        load_config(task, overrides=[f"{key}={value}"])
    assert str(excinfo.value) == f"config key '{key}': must be true or false, got {value}"


def test_a_bool_key_in_a_file_set_to_a_number_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("model:\n  dropout: 2\n")
    with pytest.raises(TranslateError, match=r"^config key 'model.dropout': must be true or "
                       "false, got 2$"):
        load_config("pix2pix", path)


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), ("1", True),
                                                 ("0", False), ("no", False)])
def test_true_false_and_0_1_still_set_a_bool_key(value: str, expected: bool) -> None:
    assert load_config("pix2pix", overrides=[f"model.dropout={value}"]).model.dropout is expected


def test_cli_refuses_dropout_2_in_one_line(tmp_path: Path) -> None:
    result = invoke("train", "pix2pix", "--set", "model.dropout=2", "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert result.output.strip() == ("error: config key 'model.dropout': must be true or false, "
                                     "got 2")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("columns", [80, 100])
def test_models_is_readable_at_80_columns(columns: int) -> None:
    """A block per model: its name first on its line, no line longer than the terminal, and
    every word of its texts whole (a six-column table broke them into pieces)."""
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "dumb"}
    done = subprocess.run(translate_cmd("models"), capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= columns, "\n".join(lines)
    assert "…" not in done.stderr  # nothing cut short
    words = done.stderr.split()
    for name in models.names():
        m = models.info(name)
        assert any(line.startswith(f"{name}  {m.task} · {m.parameters:,} parameters")
                   for line in lines), (name, done.stderr)
        for text in (m.data, m.headline):
            for word in text.split():
                assert word in words, (name, word, done.stderr)


def test_data_gray_drops_exact_duplicates_as_data_prep_does(tmp_path: Path) -> None:
    photos, out = tmp_path / "photos", tmp_path / "gray"
    rng = np.random.default_rng(5)
    unique = [smooth_image(rng, 24) for _ in range(4)]
    (photos / "sub").mkdir(parents=True)
    for i, image in enumerate(unique):
        Image.fromarray(image).save(photos / f"p{i}.png")
    Image.fromarray(unique[1]).save(photos / "sub" / "copy.png")  # same pixels, another name
    Image.fromarray(unique[2]).save(photos / "p2_again.png")
    result = invoke("data", "gray", photos, out, "--size", 16, "--test-fraction", 0.5)
    assert result.exit_code == 0, result.output
    prep = json.loads((out / "prep.json").read_text())
    for side in ("A", "B"):
        duplicates = {d["file"]: d["duplicate_of"] for d in prep["domains"][side]["duplicates"]}
        assert duplicates == {"p2_again.png": "p2.png", "sub/copy.png": "p1.png"}
        names = sorted(p.name for split in ("train", "test")
                       for p in (out / f"{split}{side}").iterdir())
        assert names == ["p0.png", "p1.png", "p2.png", "p3.png"]


def test_infer_names_the_smallest_size_for_a_1x1_file(tmp_path: Path) -> None:
    """Not torch's "Expected more than 1 spatial element when training" (nothing trains)."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(np.full((1, 1, 3), 90, np.uint8)).save(src / "dot.png")
    result = invoke("infer", "photo2monet", src, out, "-q", "--device", "cpu")
    assert result.exit_code == 1, result.output
    [failure] = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert failure["reason"] == ("the model cannot process this 1×1 image: it is smaller than "
                                 "the network takes (at least 8×8 pixels)")
    assert not (out / "dot.png").exists()


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_a_dataset_folder_gets_the_mode_of_the_umask(tmp_path: Path, umask: int) -> None:
    """As mkdir would make it (0755 under 022), not mkdtemp's 0700 for every umask."""
    photos, out = tmp_path / "photos", tmp_path / "gray"
    photos.mkdir()
    rng = np.random.default_rng(6)
    for i in range(2):
        Image.fromarray(smooth_image(rng, 24)).save(photos / f"p{i}.png")
    old = os.umask(umask)
    try:
        result = invoke("data", "gray", photos, out, "--size", 16)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (out / "trainA").stat().st_mode & 0o777 == 0o777 & ~umask


def test_paired_prep_skips_a_name_clash_with_its_reason_and_goes_on(tmp_path: Path) -> None:
    """a.jpg and a.png in --a: which pairs with --b's a.png would be a guess. Those three are
    skipped with the reason; the other pairs are written (one clash used to stop the prep)."""
    dir_a, dir_b, out = tmp_path / "A", tmp_path / "B", tmp_path / "pairs"
    rng = np.random.default_rng(7)
    for folder in (dir_a, dir_b):
        folder.mkdir()
        for name in ("a", "b", "c"):
            Image.fromarray(smooth_image(rng, 24)).save(folder / f"{name}.png")
    Image.fromarray(smooth_image(rng, 24)).save(dir_a / "a.jpg")
    result = invoke("data", "prep", "--paired", "--a", dir_a, "--b", dir_b, "--out", out,
                    "--size", 16, "--test-fraction", 0)
    assert result.exit_code == 0, result.output
    prep = json.loads((out / "prep.json").read_text())
    skipped = {side: {s["file"]: s["reason"] for s in prep["domains"][side]["skipped"]}
               for side in ("A", "B")}
    assert skipped["A"] == {
        "a.jpg": "shares its relative path with a.png (another extension): which one pairs "
                 "with the other folder's file would be a guess; keep one of them",
        "a.png": "shares its relative path with a.jpg (another extension): which one pairs "
                 "with the other folder's file would be a guess; keep one of them"}
    assert skipped["B"] == {"a.png": "its partner in --a is ambiguous (a.* names more than "
                                     "one file)"}
    assert prep["unmatched"] == {"A": [], "B": []}
    assert sorted(p.name for p in (out / "trainA").iterdir()) == ["b.png", "c.png"]
    assert sorted(p.name for p in (out / "trainB").iterdir()) == ["b.png", "c.png"]


@pytest.fixture(scope="module")
def sr_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from helpers import save_tiny_image_models

    from translate.export import export_model

    root = tmp_path_factory.mktemp("onnx")
    models_ = save_tiny_image_models(root / "models")
    out = root / "sr.onnx"
    export_model(models_["sr"], "onnx", dynamic=True, out=out)
    return out


def _edited(path: Path, tmp_path: Path, key: str, value: str) -> Path:
    import onnx

    model = onnx.load(str(path))
    [prop] = [p for p in model.metadata_props if p.key == key]
    prop.value = value
    edited = tmp_path / "edited.onnx"
    onnx.save(model, str(edited))
    return edited


def test_onnx_metadata_that_contradicts_the_graph_is_refused(sr_onnx: Path,
                                                             tmp_path: Path) -> None:
    """A ×2 SR graph whose metadata was edited to say ×4: refused naming both, before any
    image (it used to write ×2 outputs as if they were ×4 ones)."""
    from translate.infer.onnx import OnnxPipeline

    OnnxPipeline(sr_onnx, device="cpu")  # as exported: accepted
    edited = _edited(sr_onnx, tmp_path, "scale", "4")
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src / "a.png")
    result = invoke("infer", edited, src, tmp_path / "out", "-q")
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {edited}: its metadata (scale 4) says the graph makes 3×128×128 from 3×32×32, "
        "but it makes 3×64×64; the file was edited or the metadata is another export's")
    assert not (tmp_path / "out").exists()


def test_onnx_metadata_of_another_task_is_refused(sr_onnx: Path, tmp_path: Path) -> None:
    edited = _edited(sr_onnx, tmp_path, "task", "inpaint")
    with pytest.raises(TranslateError, match=r"metadata says a 'inpaint' model \(2 inputs\), "
                       "but the graph takes 1"):
        from translate.infer.onnx import OnnxPipeline

        OnnxPipeline(edited, device="cpu")


def test_paired_prep_lists_unreadable_files_as_skipped_with_the_reason(tmp_path: Path) -> None:
    """A broken link and a FIFO under image names in --a: skipped with why, and their partners
    in --b skipped saying so, not listed as files without a partner."""
    dir_a, dir_b, out = tmp_path / "A", tmp_path / "B", tmp_path / "pairs"
    rng = np.random.default_rng(8)
    for folder in (dir_a, dir_b):
        folder.mkdir()
    for name in ("a", "b", "d"):
        Image.fromarray(smooth_image(rng, 24)).save(dir_b / f"{name}.png")
    Image.fromarray(smooth_image(rng, 24)).save(dir_a / "a.png")
    (dir_a / "b.png").symlink_to(tmp_path / "gone.png")
    os.mkfifo(dir_a / "d.png")
    result = invoke("data", "prep", "--paired", "--a", dir_a, "--b", dir_b, "--out", out,
                    "--size", 16, "--test-fraction", 0)
    assert result.exit_code == 0, result.output
    prep = json.loads((out / "prep.json").read_text())
    skipped = {side: {s["file"]: s["reason"] for s in prep["domains"][side]["skipped"]}
               for side in ("A", "B")}
    assert skipped["A"] == {"b.png": "a broken symlink", "d.png": "not a regular file"}
    assert skipped["B"] == {
        "b.png": "its partner b.png in --a is unreadable: a broken symlink",
        "d.png": "its partner d.png in --a is unreadable: not a regular file"}
    assert prep["unmatched"] == {"A": [], "B": []}
    assert sorted(p.name for p in (out / "trainA").iterdir()) == ["a.png"]
