"""Test driver: run train.py and SIGKILL the process at a chosen point (no cleanup, like `kill -9`).

python tests/training/_kill_driver.py step N RECIPE.yaml [--k v …]   # killed inside the N-th training step
python tests/training/_kill_driver.py save N RECIPE.yaml [--k v …]   # killed while writing the N-th checkpoint,
                                                                      # after its weights, before its optimizer
"""

import os
import signal
import sys

from transformers import Trainer

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
else:
    raise SystemExit(f"unknown mode {mode!r}")

from inat_hf.commands.train import main  # noqa: E402

sys.exit(main(argv))
