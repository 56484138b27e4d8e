"""TensorBoard logging for the training loop (``translate train … --tensorboard``).

Scalars (the same record ``metrics.jsonl`` gets) at ``train.log_every`` and the sample grid at
``train.sample_every`` go to ``RUN/tensorboard/`` through ``torch.utils.tensorboard``. Only rank 0
logs. TensorBoard is optional (the ``dev`` extra installs it); asking for it without it installed
is an error before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from translate.errors import TranslateError

NOT_SCALARS = ("step", "epoch")  # the x axis, not curves


class Board:
    """A ``SummaryWriter`` on ``run_dir/tensorboard``.

    Raises:
        TranslateError: TensorBoard is not installed.
    """

    def __init__(self, run_dir: str | Path):
        self.writer = summary_writer_class()(log_dir=str(Path(run_dir) / "tensorboard"))

    def scalars(self, record: dict[str, Any], step: int) -> None:
        for key, value in record.items():
            if key not in NOT_SCALARS and isinstance(value, int | float):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def grid(self, grid: torch.Tensor, step: int) -> None:
        """(C, H, W) in [0, 1], as written to samples/."""
        self.writer.add_image("samples", grid.clamp(0, 1), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def summary_writer_class() -> type:
    """``torch.utils.tensorboard.SummaryWriter``; call it before creating a run directory, so a
    missing TensorBoard stops the run before anything is written.

    Raises:
        TranslateError: TensorBoard is not installed.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise TranslateError(
            "--tensorboard needs the tensorboard package, which is not installed: "
            "pip install tensorboard (or pip install -e '.[dev]')"
        ) from None
    return SummaryWriter
