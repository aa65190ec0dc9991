"""A map-style torch ``Dataset`` over a prepared split: decode + transform one image per item.

Not ``datasets.Dataset.with_transform``: with a global RNG, which augmentation an image gets depends on the draws
before it (another worker, a resume, another rank). Here, with ``seed``, item ``i`` of epoch ``e`` draws from a
state that is a function of ``(seed, e, i)``: a resumed run sees the augmentations of an uninterrupted one, whatever
the worker count. ``InatTrainer`` calls :meth:`set_epoch` every epoch (accelerate forwards it only when the sampler
has none); the epoch lives in shared memory, so (persistent) DataLoader workers see it.
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
    """``dataset[i] -> {"pixel_values": transform(image), "labels": label}`` over a split's ``image`` + ``label``
    columns. The image is read undecoded (``{"bytes", "path"}``): the transform (e.g. ``TrainPreset``) decodes it
    straight to a tensor. ``seed=None`` uses the global RNG."""

    def __init__(self, data: datasets.Dataset, transform: Callable[[Any], torch.Tensor], *, seed: int | None = None):
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
            # The transforms draw from the CPU generator only: seed just that one (torch.manual_seed would also
            # reseed the accelerators', which fork_rng(devices=[]) does not restore, and costs per item without
            # CUDA); fork_rng restores the CPU state afterwards.
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(item_seed(self.seed, int(self._epoch), int(index)))
                pixel_values = self.transform(row["image"])
        return {"pixel_values": pixel_values, "labels": row["label"]}
