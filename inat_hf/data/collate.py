"""Collator for image-classification batches (``pixel_values`` + integer ``labels``). Mixup / CutMix are not
applied here but on the device inside the trainer: the adaptive mix probability would not reach persistent
DataLoader workers, and on the CPU they take a sizeable share of a worker's batch time (``bench_data.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import default_collate


class ImageClassificationCollator:
    """Items -> ``{"pixel_values": [B, ...], "labels": int64 [B]}``; ``pixel_values`` of any per-item shape
    (TTA: ``[V, 3, S, S]``), stacked by ``default_collate`` (in workers: straight into shared memory)."""

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
