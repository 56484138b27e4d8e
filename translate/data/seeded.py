"""The base of the training datasets whose items are random crops, flips and masks.

The loop's ``EpochBatchSampler`` hands out ``(epoch, index)`` keys; an item is a pure function of
``(seed, epoch, index)`` — its draws come from ``SeedSequence([seed, epoch, index])`` — so the
augmentation does not depend on DataLoader workers (persistent or not) and resume is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import Dataset


class EpochSeededDataset(Dataset):
    """Map-style dataset keyed by ``index`` (current epoch) or ``(epoch, index)``.

    Subclasses set ``seed`` and implement ``__len__`` and ``item(index, epoch=None)``, starting
    it with ``index, epoch = self.locate(index, epoch)`` and drawing from ``self.rng(...)``.
    """

    seed: int = 0
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` for items fetched by a plain index from now on."""
        self.epoch = epoch

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        """``dataset[index]`` at the current epoch, or ``dataset[(epoch, index)]``."""
        if isinstance(key, tuple):
            return self.item(int(key[1]), epoch=int(key[0]))
        return self.item(int(key))

    def item(self, index: int, epoch: int | None = None) -> Any:
        raise NotImplementedError

    def locate(self, index: int, epoch: int | None) -> tuple[int, int]:
        """``(index, epoch)`` with a negative index counted from the end and the epoch defaulted.

        Raises:
            IndexError: ``index`` outside ``[-len, len)``.
        """
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} items")
        return index % n, self.epoch if epoch is None else epoch

    def rng(self, epoch: int, index: int) -> np.random.Generator:
        """The generator of item ``index`` in ``epoch``."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, epoch, index]))
