"""Shared test set-up: a session-wide cache dir (the MNIST classifier trains once per session),
no progress bars, and paths to the shared reference data."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MNIST_TEST = SHARED_DATA / "mnist"


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    if "TRANSLATE_CACHE" not in os.environ:
        os.environ["TRANSLATE_CACHE"] = str(tmp_path_factory.mktemp("translate-cache"))
    # `auto` precision on the CPU measures fp32 against bf16 for training; pinned to fp32 here
    # (subprocesses inherit it), so the suite computes alike on every CPU.
    # tests/test_winograd_train.py tests the measured choice itself.
    os.environ.setdefault("TRANSLATE_CPU_PRECISION", "fp32")
    # The allocator tuning (translate/perf.py) is process-wide and an SR pipeline narrows it to
    # its budget, which then steers the tile plans of every later test in this process: left
    # as glibc has it here, so plans do not depend on the order tests run in.
    # tests/test_perf.py tests the tuning itself in fresh processes.
    os.environ.setdefault("TRANSLATE_MALLOC", "default")


@pytest.fixture(autouse=True)
def _cpu_unless_marked_gpu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
                           ) -> None:
    """Every test runs on the CPU unless it is marked ``gpu``, also on a machine with a GPU:
    ``auto`` devices and precisions resolve as on CI (fp32 on the CPU; a GPU would mean bf16,
    whose outputs differ from fp32's by a few levels), subprocesses see no GPU, and
    onnxruntime offers no CUDA provider."""
    if request.node.get_closest_marker("gpu") is not None:
        return
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    try:
        import onnxruntime as ort
    except ImportError:
        return
    if "CUDAExecutionProvider" in ort.get_available_providers():  # onnxruntime-gpu
        available = ort.get_available_providers
        monkeypatch.setattr(ort, "get_available_providers",
                            lambda: [p for p in available() if p != "CUDAExecutionProvider"])


def translate_cmd(*args: str) -> list[str]:
    """The CLI as a fresh process (``python -m translate``), for resume and signal tests."""
    return [sys.executable, "-m", "translate", *args]


needs_mnist_test = pytest.mark.skipif(
    not (MNIST_TEST / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"the MNIST test split is not at {MNIST_TEST} (../shared/data/mnist)",
)


_runner = CliRunner()


def invoke(*args: object):
    """Run the CLI in-process (Typer's CliRunner); arguments may be paths or numbers."""
    from translate.cli import app

    return _runner.invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    """The single ``error: …`` line a failed command must print (and nothing else)."""
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1, f"expected one line, got: {result.output!r}"
    assert lines[0].startswith("error: ")
    return lines[0]


# The MNIST GAN run that the CLI, report and infer tests share: 4 steps, every step logged,
# samples at steps 2 and 4, TensorBoard on; in a folder whose name has a space (quoted in the
# report's links).
GAN_RUN_STEPS = 4
GAN_RUN_ARGS = ["--set", f"train.steps={GAN_RUN_STEPS}", "--set", "train.log_every=1",
                "--set", "train.sample_every=2", "--set", "train.checkpoint_every=1000",
                "--set", "train.device=cpu", "--tensorboard", "-q"]


@pytest.fixture(scope="session")
def _trained_gan_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("shared") / "gan run"
    result = invoke("train", "gan", "--out", run, *GAN_RUN_ARGS)
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture
def gan_run(_trained_gan_run: Path, tmp_path: Path) -> Path:
    """A tiny trained MNIST GAN run (see ``GAN_RUN_ARGS``), trained once per session; each test
    gets its own copy, so what one test writes into it (eval.json, a report, a resumed
    checkpoint) no other test sees."""
    return Path(shutil.copytree(_trained_gan_run, tmp_path / "gan run"))
