"""``train.py RECIPE.yaml [--key value …]``: fine-tune on iNat 2021 (one CPU, one GPU, or many under
``accelerate launch`` / ``torchrun``). See ``inat_hf.training.recipe`` for the recipe format.

Any timm backbone works (``--backbone convnext_tiny``); ``train.py --list_stages BACKBONE ['{"img_size": 64}']``
prints its stage names for ``frozen_stages`` / ``unfreeze_schedule`` / ``layer_decay``."""

from __future__ import annotations

import json
import logging
import os
import sys

import torch

from ..training.recipe import parse_recipe
from ..training.run import run_training


def _setup_logging() -> None:
    # The project's own messages (resume point, unfreezing, backbone loading) at INFO on the main process only.
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    main_process = os.environ.get("RANK", "0") == "0"
    logging.getLogger("inat_hf").setLevel(logging.INFO if main_process else logging.WARNING)


def list_stages(backbone: str, model_args: str | None = None) -> str:
    """The stage groups of a timm backbone as recipes name them (by name or index), one per line."""
    from ..models.configuration_inat import CLASSIFIER_STAGES, describe_backbone

    stages = describe_backbone(backbone, json.loads(model_args) if model_args else None).stage_names
    lines = [f"{backbone}: {len(stages)} backbone stages (input -> output), then {', '.join(CLASSIFIER_STAGES)}"]
    lines += [f"  {i:>3} / {i - len(stages):>4}  {name}" for i, name in enumerate(stages)]
    lines.append("frozen_stages / unfreeze_schedule take a name, an index (-1 = deepest) or 'backbone' (all of them).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _setup_logging()
    if argv and argv[0] == "--list_stages":
        if len(argv) not in (2, 3):
            print("usage: train.py --list_stages BACKBONE ['{\"img_size\": 64}']", file=sys.stderr)
            return 2
        print(list_stages(*argv[1:]))
        return 0
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n")
    try:
        recipe = parse_recipe(argv)
        run = run_training(recipe)
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
