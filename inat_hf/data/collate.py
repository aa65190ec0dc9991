"""Collator for image-classification batches (``pixel_values`` + hard integer ``labels``).

Mixup / CutMix are deliberately *not* applied here: they run on the device inside the trainer, because the
adaptive mix probability changes during training and would not reach persistent DataLoader workers (each holds
its own copy of the collator), and because on the device they cost next to nothing while on the CPU they take a
sizeable share of a worker's batch time (measured in ``benchmarks/bench_data.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import default_collate

__all__ = ["ImageClassificationCollator"]


class ImageClassificationCollator:
    """Stack :class:`~inat_hf.data.torch_dataset.ImageClassificationDataset` items into a batch:
    ``{"pixel_values": [B, ...], "labels": int64 [B]}``.

    ``pixel_values`` may have any per-item shape (``[3, S, S]``, or TTA ``[V, 3, S, S]``); in DataLoader workers
    they are stacked straight into shared memory (``default_collate``), which is what crosses to the main process.
    """

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty list of features")
        missing = {"pixel_values", "labels"} - set(features[0])
        if missing:
            raise KeyError(
                f"expected 'pixel_values' and 'labels' in each example; missing {sorted(missing)} "
                f"(keys: {sorted(features[0])})"
            )
        return {
            "pixel_values": default_collate([f["pixel_values"] for f in features]),
            "labels": torch.tensor([int(f["labels"]) for f in features], dtype=torch.long),
        }
