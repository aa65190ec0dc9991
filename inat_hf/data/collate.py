"""Collator for image-classification batches (``pixel_values`` + hard integer ``labels``).

Mixup / CutMix are deliberately *not* applied here: they run on the device inside the trainer, because the
adaptive mix probability changes during training and would not reach persistent DataLoader workers (each holds
its own copy of the collator), and because on the device they cost next to nothing -- on CPU, timm's ``Mixup``
on a ``[64, 3, 224, 224]`` batch is a sizeable fraction of a worker's per-batch time (measured in
``benchmarks/bench_data.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import default_collate

__all__ = ["ImageClassificationCollator"]


class ImageClassificationCollator:
    """Stack per-example features into a batch: ``{"pixel_values": [B, ...], "labels": int64 [B]}``.

    Works for float (normalised) or uint8 ``pixel_values`` of any per-example shape (``[3, S, S]``, or TTA
    ``[V, 3, S, S]``), and for ``labels`` / ``label`` given as ints or 0-d tensors (``labels`` is omitted when
    examples have neither). In the main process, when every example is a view into one batch tensor, as
    ``datasets`` produces from a batched ``with_transform`` (``BatchTransform`` returns stacked tensors and
    ``Dataset.__getitems__`` slices them), that tensor is returned without a copy; in DataLoader workers the batch
    is stacked straight into shared memory (like ``default_collate``), which is what crosses to the main process.

    Args:
        channels_last: return 4-D ``pixel_values`` in ``torch.channels_last`` memory format (the faster layout for
            convolutions on GPU with AMP); 5-D TTA batches are left as they are. Converting on the device after
            the host-to-device copy (``x.to(memory_format=torch.channels_last)``) is as good and free on the host.
    """

    def __init__(self, *, channels_last: bool = False) -> None:
        self.channels_last = channels_last

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty list of features")
        first = features[0]
        if "pixel_values" not in first:
            raise KeyError(f"expected 'pixel_values' in each example, found keys {sorted(first)}")
        pixel_values = self._stack([f["pixel_values"] for f in features])
        batch = {"pixel_values": pixel_values}
        label_key = "labels" if "labels" in first else "label" if "label" in first else None
        if label_key is not None:
            batch["labels"] = torch.tensor([int(f[label_key]) for f in features], dtype=torch.long)
        return batch

    def _stack(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        tensors = [t if isinstance(t, torch.Tensor) else torch.as_tensor(t) for t in tensors]
        channels_last = self.channels_last and tensors[0].ndim == 3
        in_worker = torch.utils.data.get_worker_info() is not None
        if channels_last:
            out = torch.empty(
                (len(tensors), *tensors[0].shape), dtype=tensors[0].dtype, memory_format=torch.channels_last
            )
            if in_worker:
                out.share_memory_()  # what crosses the worker -> main process queue; saves a copy there
            for i, t in enumerate(tensors):
                out[i].copy_(t)
            return out
        if not in_worker:
            base = _common_base(tensors)
            if base is not None:
                return base
        # In a worker, default_collate stacks straight into shared memory (one copy instead of two).
        return default_collate(tensors)


def _common_base(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """The batch tensor that ``tensors`` are, in order, the rows of (``base[i]``), or ``None``."""
    base = tensors[0]._base
    if base is None or base.ndim != tensors[0].ndim + 1 or base.shape[0] != len(tensors):
        return None
    if base.shape[1:] != tensors[0].shape:
        return None
    for i, t in enumerate(tensors):
        if t._base is not base or t.data_ptr() != base[i].data_ptr() or t.stride() != base.stride()[1:]:
            return None
    return base
