"""Task name → training task class: this layer's part of the task table (translate/tasks.py;
tests/test_tasks.py keeps the keys equal)."""

from __future__ import annotations

from translate.train.cyclegan import CycleGanTask
from translate.train.inpaint import InpaintTask
from translate.train.loop import Task
from translate.train.mnist import GanTask, VaeTask
from translate.train.pix2pix import Pix2PixTask
from translate.train.sr import SrTask

TASK_CLASSES: dict[str, type[Task]] = {
    "gan": GanTask,
    "vae": VaeTask,
    "cyclegan": CycleGanTask,
    "inpaint": InpaintTask,
    "sr": SrTask,
    "pix2pix": Pix2PixTask,
}
