"""ImageClassificationDataset: per-item seeded augmentation."""

from __future__ import annotations

import io

import datasets
import numpy as np
import PIL.Image
import torch

from inat_hf.data.augmentation import AugmentationConfig
from inat_hf.data.torch_dataset import ImageClassificationDataset
from inat_hf.data.transforms import TrainPreset


def _dataset(seed: int | None = 7) -> ImageClassificationDataset:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(3):
        buf = io.BytesIO()
        PIL.Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(buf, "JPEG")
        rows.append({"bytes": buf.getvalue(), "path": None})
    data = datasets.Dataset.from_dict(
        {"image": rows, "label": [0, 1, 2]},
        features=datasets.Features({"image": datasets.Image(decode=False), "label": datasets.Value("int64")}),
    )
    return ImageClassificationDataset(data, TrainPreset(AugmentationConfig(image_size=32)), seed=seed)


def test_item_is_a_function_of_seed_epoch_index_and_leaves_the_cpu_rng_alone():
    ds = _dataset()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = ds[1]["pixel_values"]
    assert torch.equal(torch.get_rng_state(), state)  # the caller's stream is untouched
    torch.manual_seed(123)  # whatever the global state, the item is the same
    assert torch.equal(ds[1]["pixel_values"], first)
    assert not torch.equal(ds[2]["pixel_values"], first)
    ds.set_epoch(1)
    assert not torch.equal(ds[1]["pixel_values"], first)  # a new epoch, new augmentation


def test_item_seeding_does_not_touch_accelerator_generators(monkeypatch):
    # The transforms run on the CPU: reseeding CUDA's generator per item would reset the training process's GPU
    # stream (dropout, drop-path) at every item, and costs a queued lazy call with a stack trace on CPU machines.
    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    ds = _dataset()
    ds[0]
    ds[1]
    assert calls == []
