"""A map-style torch ``Dataset`` over a prepared split: decode + transform one image per item.

Why not ``datasets.Dataset.with_transform``: augmentation randomness. With a global RNG, which augmentation an
image gets depends on how many random draws happened before it — in another worker, before a resume, on another
rank. Here, when ``seed`` is given, the random state of item ``i`` in epoch ``e`` is a pure function of
``(seed, e, i)``: a run resumed from a checkpoint sees exactly the augmentations an uninterrupted run would
(the Trainer skips already-seen batches by index without transforming them), whatever the worker count.
The Trainer calls :meth:`set_epoch` at the start of every epoch (``InatTrainer``; accelerate only forwards
``set_epoch`` to a dataset when the sampler has none). The epoch lives in shared memory, so DataLoader workers —
persistent ones included — see the new value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import datasets
import torch

_MASK64 = (1 << 63) - 1


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one (epoch, index) (splitmix64 finaliser: neighbours get unrelated streams)."""
    z = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & ((1 << 64) - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (z ^ (z >> 31)) & _MASK64


class ImageClassificationDataset(torch.utils.data.Dataset):
    """``dataset[i] -> {"pixel_values": transform(image), "labels": label}``.

    Args:
        data: a prepared split (``image`` + ``label`` columns). The image column is read undecoded
            (``datasets.Image(decode=False)``): the transform decodes the bytes itself, straight to a tensor.
        transform: image (undecoded ``{"bytes", "path"}`` dict) → tensor, e.g. ``TrainPreset``/``EvalPreset``.
        seed: makes item ``i``'s augmentation a function of ``(seed, epoch, i)``; ``None`` uses the global RNG.
    """

    def __init__(
        self,
        data: datasets.Dataset,
        transform: Callable[[Any], torch.Tensor],
        *,
        seed: int | None = None,
    ) -> None:
        missing = {"image", "label"} - set(data.column_names)
        if missing:
            raise ValueError(
                f"The dataset needs the columns ['image', 'label']; missing {sorted(missing)} "
                f"(columns: {data.column_names})."
            )
        data = data.select_columns(["image", "label"])
        if isinstance(data.features["image"], datasets.Image):
            data = data.cast_column("image", datasets.Image(decode=False))
        self.data = data
        self.transform = transform
        self.seed = seed
        # A 0-d tensor in shared memory: forked or spawned DataLoader workers read the value the main process set.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return self.data.num_rows

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.data[int(index)]
        if self.seed is None:
            pixel_values = self.transform(row["image"])
        else:
            # The transforms draw from the CPU generator only: seed that one (torch.manual_seed would also reseed
            # every accelerator's generator, which fork_rng(devices=[]) does not restore -- and on a machine without
            # CUDA it queues a lazy seeding call with a stack trace, per item: costly next to a small item's decode +
            # augmentation, see benchmarks/results.md). fork_rng restores the CPU state afterwards.
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(item_seed(self.seed, int(self._epoch), int(index)))
                pixel_values = self.transform(row["image"])
        return {"pixel_values": pixel_values, "labels": row["label"]}
