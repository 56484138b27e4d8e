"""Shared test set-up: a session-wide cache dir (the MNIST classifier trains once per session),
no progress bars, and paths to the shared reference data."""

from __future__ import annotations

import os
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
