"""``train.py RECIPE.yaml [--key value …]``: fine-tune on iNat 2021 (one CPU, one GPU, or many under
``accelerate launch`` / ``torchrun``). See ``inat_hf.training.recipe`` for the recipe format."""

from __future__ import annotations

import logging
import os
import sys

import torch

from ..training.recipe import RecipeError, parse_recipe
from ..training.run import run_training
from ..training.trainer import CheckpointDiskFullError


def _setup_logging() -> None:
    # The project's own messages (resume point, unfreezing, backbone loading) at INFO on the main process only.
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    main_process = os.environ.get("RANK", "0") == "0"
    logging.getLogger("inat_hf").setLevel(logging.INFO if main_process else logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _setup_logging()
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n")
    try:
        try:
            recipe = parse_recipe(argv)
        except RecipeError as e:  # like argparse's own errors: one line, exit status 2
            print(f"train.py: error: {e}", file=sys.stderr)
            return 2
        try:
            run = run_training(recipe)
        except CheckpointDiskFullError as e:  # the message says where, what was kept and how to go on
            print(f"train.py: error: {e.strerror}", file=sys.stderr)
            return 1
        if run.trainer.is_world_process_zero():
            print(f"\nBest model, image processor and model card: {run.output_dir}")
            print(
                f"  load it: AutoModelForImageClassification.from_pretrained({run.output_dir!r}) after `import inat_hf`"
            )
        return 0
    finally:
        # Without this, processes launched by accelerate/torchrun abort with SIGABRT after a successful run.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
