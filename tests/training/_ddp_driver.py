"""Test driver for the 2-process run: records which dataset items each rank transforms, then runs train.py.

Usage (from tests/training/test_distributed.py):
    accelerate launch --multi_gpu --num_processes 2 tests/training/_ddp_driver.py LOG_DIR RECIPE.yaml [--k v …]
"""

import os
import sys

from inat_hf.data.torch_dataset import ImageClassificationDataset

log_dir, argv = sys.argv[1], sys.argv[2:]
rank = int(os.environ.get("RANK", "0"))
original = ImageClassificationDataset.__getitem__


def recording_getitem(self, index):
    item = original(self, index)
    if self.seed is not None:  # the training dataset only
        with open(os.path.join(log_dir, f"rank{rank}_epoch{self.epoch}.txt"), "a") as f:
            f.write(f"{int(index)}\n")
    return item


ImageClassificationDataset.__getitem__ = recording_getitem

from inat_hf.commands.train import main  # noqa: E402

sys.exit(main(argv))
