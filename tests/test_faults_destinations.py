"""Unwritable destinations in every command that writes (issue 27, class 4).

``data prep`` (and ``--paired``), ``data edges``, ``data gray``, ``data demo`` and ``showcase``
end in one ``error: cannot write PATH: CAUSE`` line (``cannot write in`` / ``cannot create``
for a folder that takes no file / cannot be made) and exit 1 on a read-only or full
destination — no traceback, no temp file or staging folder left, nothing half-written.

As root (CI) the destination is a small tmpfs remounted read-only (``chmod`` does not stop
root) or filled; otherwise a ``chmod 555`` folder (``helpers.read_only``); skipped with the
reason when neither can stop a write.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import error_line, invoke
from helpers import fill_disk, read_only, save_image, smooth_image, tmpfs

from translate.modelfile import save_model
from translate.nets.sr import SRGenerator


def one_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return error_line(result)


def left_over(folder: Path) -> list[Path]:
    """Temp files and staging folders this program would have left."""
    return [p for p in folder.rglob("*") if p.name.startswith(".translate-tmp-")]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dest")
    rng = np.random.default_rng(0)
    for side in ("a", "b"):
        for i in range(4):
            save_image(root / side / f"im{i}.png", smooth_image(rng, 48))
    torch.manual_seed(0)
    save_model(root / "sr", "sr", {"G": SRGenerator(scale=2, nf=4, n_blocks=1)},
               {"value_range": [0.0, 1.0], "scale": 2, "channels": 3})
    return root


def commands(photos: Path, out: Path) -> dict[str, list[object]]:
    return {
        "data prep": ["data", "prep", "--a", photos / "a", "--b", photos / "b", "--out", out,
                      "--size", 16],
        "data prep --paired": ["data", "prep", "--paired", "--a", photos / "a", "--b",
                               photos / "a", "--out", out, "--size", 16],
        "data gray": ["data", "gray", photos / "a", out, "--size", 16],
        "data edges": ["data", "edges", photos / "a", out, "--size", 16],
        "data demo": ["data", "demo", "--out", out, "--size", 16],
        "showcase": ["showcase", photos / "sr", photos / "a", "--out", out, "--limit", 1,
                     "--device", "cpu"],
    }


COMMANDS = ["data prep", "data gray", "data edges", "data demo", "showcase"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_read_only_destination_is_one_line(photos: Path, tmp_path: Path,
                                             command: str) -> None:
    with read_only(tmp_path / "ro") as cause:
        ro = tmp_path / "ro"
        out = ro / "new"
        line = one_error(invoke(*commands(photos, out)[command]))
        what = "create" if command == "showcase" else "write"
        assert line == f"error: cannot {what} {out}: {cause}"
        assert not out.exists() and not left_over(ro)


def test_a_read_only_existing_showcase_folder_is_refused_before_work(photos: Path,
                                                                     tmp_path: Path) -> None:
    with read_only(tmp_path / "ro", lambda f: (f / "out").mkdir()) as cause:
        out = tmp_path / "ro" / "out"
        line = one_error(invoke(*commands(photos, out)["showcase"]))
        assert line == f"error: cannot write in {out}: {cause}"
        assert not list(out.iterdir())


@pytest.mark.parametrize("command", ["data prep", "data gray", "data demo", "showcase"])
def test_a_full_destination_is_one_line_and_leaves_nothing(photos: Path, tmp_path: Path,
                                                           command: str) -> None:
    with tmpfs(tmp_path / "small", "1m") as disk:
        out = disk / "new"
        fill_disk(disk, leave=0)
        line = one_error(invoke(*commands(photos, out)[command]))
        # (a folder takes no block on a tmpfs: showcase's is made, then its images fail)
        assert line == f"error: cannot write {out}: no space left on the device"
        assert not out.exists() and not left_over(disk)
        assert [p.name for p in disk.iterdir()] == ["filler"]
