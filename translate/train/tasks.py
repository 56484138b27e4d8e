"""Config name → task class: the one explicit table the CLI builds training tasks from."""

from __future__ import annotations

from translate.train.cyclegan import CycleGanTask
from translate.train.inpaint import InpaintTask
from translate.train.loop import Task
from translate.train.mnist import GanTask, VaeTask
from translate.train.sr import SrTask

TASKS: dict[str, type[Task]] = {
    "gan": GanTask,
    "vae": VaeTask,
    "cyclegan": CycleGanTask,
    "sr": SrTask,
    "inpaint": InpaintTask,
}
