"""Malformed files we read, by type (issue 27, class 5).

* ``metrics.jsonl`` lines that are valid JSON but not an object (or not JSON, or with a step
  that is not a number) are skipped by ``translate report``, which says how many.
* ``model.json`` fields of the wrong JSON type (a list or an object where a string is
  expected) end in one line naming the file and the key, before anything is built or written.
* A FIFO (or another non-regular file) where weights, model.json, a section or an evaluation
  file is expected is refused before it is opened: the command never blocks.
* Weights holding NaN or ±inf are refused at load, naming the tensor.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import error_line, invoke
from helpers import save_cyclegan, save_image, smooth_image
from safetensors.torch import load_file, save_file

from translate.errors import TranslateError
from translate.modelfile import check_finite, load_model, save_model
from translate.nets.resnet import ResnetGenerator
from translate.nets.sr import SRGenerator


def one_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return error_line(result)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reads")
    torch.manual_seed(0)
    save_cyclegan(root / "cyclegan", ResnetGenerator(ngf=4, n_blocks=1),
                  ResnetGenerator(ngf=4, n_blocks=1))
    save_model(root / "sr", "sr", {"G": SRGenerator(scale=2, nf=4, n_blocks=1)},
               {"value_range": [0.0, 1.0], "scale": 2, "channels": 3})
    save_image(root / "in" / "a.png", smooth_image(np.random.default_rng(0), 16))
    return root


@pytest.fixture
def work(built: Path, tmp_path: Path) -> Path:
    shutil.copytree(built, tmp_path / "w")
    return tmp_path / "w"


def finishes(fn, fifo: Path, seconds: float = 60.0):
    """``fn()``'s result, asserting it returns without blocking on ``fifo``; a call that blocks
    is freed (the FIFO opened for writing) so the test fails instead of hanging."""
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    blocked = thread.is_alive()
    if blocked:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # frees a reader blocked in open()
        os.close(fd)
        thread.join(10)
    assert not blocked, f"blocked reading the FIFO {fifo}"
    return box["result"]


# ── metrics.jsonl: lines that are not objects.


def test_report_skips_metrics_lines_that_are_not_objects(gan_run: Path) -> None:
    metrics = gan_run / "metrics.jsonl"
    good = metrics.read_text(encoding="utf-8")
    bad = ['[1, 2]', '3', '"text"', 'null', 'true', '{"step": "x", "loss_G": 1}', '{"step": 1',
           '\udcff']
    metrics.write_bytes(good.encode() + "\n".join(bad).encode("utf-8", "surrogateescape")
                        + b"\n")
    result = invoke("report", gan_run)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    page = (gan_run / "report.html").read_text(encoding="utf-8")
    assert f"{len(bad)} line(s) of metrics.jsonl skipped" in page
    assert "<h2>Loss curves</h2>" in page  # the good lines are still plotted


def test_report_of_metrics_holding_only_non_objects_writes_no_plot(gan_run: Path) -> None:
    (gan_run / "metrics.jsonl").write_text("[1]\n2\n", encoding="utf-8")
    result = invoke("report", gan_run)
    assert result.exit_code == 0, result.output
    page = (gan_run / "report.html").read_text(encoding="utf-8")
    assert "2 line(s) of metrics.jsonl skipped" in page and "Loss curves" not in page


# ── model.json: fields of the wrong JSON type.

WRONG_TYPES = [
    ("cyclegan", "task", ["cyclegan"], "unknown task ['cyclegan']"),
    ("cyclegan", "task", {}, "unknown task {}"),
    ("cyclegan", "name", {}, "'name' must be a string, got dict {}"),
    ("cyclegan", "directions", ["a2b"], "'directions' must map a2b/b2a to networks"),
    ("cyclegan", "directions", {"a2b": ["G_AB"]}, "'directions' must map a2b/b2a to networks"),
    ("cyclegan", "directions", {"a2b": {}}, "'directions' must map a2b/b2a to networks"),
    ("cyclegan", "weights_of", 3, "'weights_of' must name a model folder beside this one"),
    ("cyclegan", "weights_of", ["x"], "'weights_of' must name a model folder beside this one"),
    ("cyclegan", "padding", ["mirror"], "'padding' must be a string, got list ['mirror']"),
    ("cyclegan", "trained_direction", [1], "'trained_direction' must be a string, got list"),
    ("cyclegan", "card", [1], "'card' must be an object ({...}), got list [1]"),
    ("cyclegan", "networks", {"G_AB": {"class": ["ResnetGenerator"], "args": {}}},
     "unknown network class ['ResnetGenerator']"),
    ("cyclegan", "value_range", {"lo": 0}, "'value_range' must be [lo, hi]"),
    ("sr", "scale", [2], "'scale' must be an int, got list [2]"),
    ("sr", "scale", "2", "'scale' must be an int, got str '2'"),
]


@pytest.mark.parametrize(("model", "key", "value", "message"), WRONG_TYPES,
                         ids=[f"{k}={json.dumps(v)}" for _, k, v, _ in WRONG_TYPES])
def test_a_model_json_field_of_the_wrong_type_is_one_line(work: Path, model: str, key: str,
                                                          value: object, message: str) -> None:
    path = work / model / "model.json"
    description = json.loads(path.read_text())
    description[key] = value
    path.write_text(json.dumps(description))
    out = work / "out"
    line = one_error(invoke("infer", work / model, work / "in", out, "-q", "--device", "cpu"))
    assert line.startswith(f"error: {path}: ") or line.startswith(f"error: {work / model}")
    assert message in line
    assert not out.exists()


# ── Files that are not regular files.


@pytest.mark.parametrize("which", ["model.safetensors", "model.json", "weights_of"])
def test_a_fifo_where_a_model_file_belongs_is_refused_without_blocking(work: Path,
                                                                       which: str) -> None:
    model = work / "cyclegan"
    if which == "weights_of":  # a sibling's weights, named by model.json
        (work / "shared").mkdir()
        fifo = work / "shared" / "model.safetensors"
        description = json.loads((model / "model.json").read_text())
        (model / "model.json").write_text(json.dumps({**description, "weights_of": "shared"}))
    else:
        fifo = model / which
        fifo.unlink()
    os.mkfifo(fifo)
    result = finishes(lambda: invoke("infer", model, work / "in", work / "out", "-q"), fifo)
    line = one_error(result)
    if which == "weights_of":
        assert line == (f"error: cannot read the weights file {fifo}: it is a FIFO (named "
                        "pipe), not a file")
    else:
        assert line == f"error: {model} holds no model (model.json + model.safetensors); " \
                       "train one first"
    assert not (work / "out").exists()


def test_a_fifo_section_or_eval_file_is_refused_without_blocking(gan_run: Path) -> None:
    fifo = gan_run / "section.json"
    os.mkfifo(fifo)
    line = one_error(finishes(lambda: invoke("report", gan_run, "--section", fifo), fifo))
    assert line == f"error: cannot read the section {fifo}: it is a FIFO (named pipe), not a file"
    fifo.unlink()
    fifo = gan_run / "eval.json"
    os.mkfifo(fifo)
    line = one_error(finishes(lambda: invoke("report", gan_run), fifo))
    assert line == (f"error: cannot read the evaluation file {fifo}: it is a FIFO (named "
                    "pipe), not a file")
    assert not (gan_run / "report.html").exists()


# ── Weights that are not finite.


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_weights_holding_nan_or_inf_are_refused_naming_the_tensor(work: Path,
                                                                   bad: float) -> None:
    weights = work / "sr" / "model.safetensors"
    tensors = load_file(weights)
    name = sorted(k for k, t in tensors.items() if t.is_floating_point())[1]
    tensors[name].view(-1)[3] = bad
    save_file(tensors, weights)
    line = one_error(invoke("infer", work / "sr", work / "in", work / "out", "-q"))
    what = "NaN" if bad != bad else "inf"
    assert line == (f"error: {weights}: tensor '{name}' holds {what} values; the weights are "
                    "damaged (retrain, or restore the file)")
    assert not (work / "out").exists()
    with pytest.raises(TranslateError, match=f"tensor '{name}' holds {what}"):
        load_model(work / "sr")


def test_check_finite_passes_integer_and_finite_tensors() -> None:
    check_finite({"count": torch.tensor([3]), "w": torch.ones(2), "empty": torch.empty(0)},
                 "x")
    with pytest.raises(TranslateError, match="tensor 'b' holds inf"):
        check_finite({"a": torch.ones(2), "b": torch.tensor([1.0, float("inf")])}, "x")
