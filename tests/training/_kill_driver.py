"""Test driver: run train.py and SIGKILL the process at a chosen point (no cleanup, like `kill -9`).

python tests/training/_kill_driver.py step N RECIPE.yaml [--k v …]   # killed inside the N-th training step
python tests/training/_kill_driver.py save N RECIPE.yaml [--k v …]   # killed while writing the N-th checkpoint,
                                                                      # after its weights, before its optimizer
python tests/training/_kill_driver.py ema N RECIPE.yaml [--k v …]    # killed writing the N-th ema.safetensors
python tests/training/_kill_driver.py marker N RECIPE.yaml [--k v …] # killed writing the N-th completion marker
"""

import os
import signal
import sys

import safetensors.torch
from transformers import Trainer

from inat_hf.training import checkpoints, ema

mode, n, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
count = {"n": 0}


def kill_on_nth(original):
    def wrapper(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == n:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)

    return wrapper


if mode == "step":
    Trainer.training_step = kill_on_nth(Trainer.training_step)
elif mode == "save":
    Trainer._save_optimizer_and_scheduler = kill_on_nth(Trainer._save_optimizer_and_scheduler)
elif mode == "ema":
    original_save_file = safetensors.torch.save_file

    def save_file(tensors, filename, *args, **kwargs):
        if str(filename).endswith(ema.EMA_FILE):
            count["n"] += 1
            if count["n"] == n:
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return original_save_file(tensors, filename, *args, **kwargs)

    ema.save_file = save_file
elif mode == "marker":
    original_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(dst).endswith(checkpoints.COMPLETE_MARKER):
            count["n"] += 1
            if count["n"] == n:
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return original_replace(src, dst, *args, **kwargs)

    os.replace = replace
else:
    raise SystemExit(f"unknown mode {mode!r}")

from inat_hf.commands.train import main  # noqa: E402

sys.exit(main(argv))
