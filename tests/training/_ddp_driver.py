"""Test driver for the 2-process run: records which dataset items each rank transforms and every mixing draw
(λ, mixup or cutmix) each rank makes, then runs train.py.

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

from timm.data import Mixup  # noqa: E402

original_params = Mixup._params_per_batch


def recording_params(self):
    lam, use_cutmix = original_params(self)
    with open(os.path.join(log_dir, f"rank{rank}_mixing.txt"), "a") as f:
        f.write(f"{float(lam)!r} {bool(use_cutmix)}\n")
    return lam, use_cutmix


Mixup._params_per_batch = recording_params

from inat_hf.commands.train import main  # noqa: E402

sys.exit(main(argv))
