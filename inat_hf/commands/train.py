"""train.py RECIPE.yaml [--key value …]: fine-tune on iNat 2021 (one CPU, one GPU, or many under accelerate
launch / torchrun). Recipe format: inat_hf.training.recipe. train.py --list_stages BACKBONE ['{"img_size": 64}']
prints a timm backbone's stage names for frozen_stages / unfreeze_schedule / layer_decay."""

from __future__ import annotations

import json
import logging
import os
import sys

from ..cli import quiet_weight_loading


def _setup_logging() -> None:
    # The project's own messages (resume point, unfreezing, backbone loading) at INFO on the main process only.
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    main_process = os.environ.get("RANK", "0") == "0"
    logging.getLogger("inat_hf").setLevel(logging.INFO if main_process else logging.WARNING)
    quiet_weight_loading()  # --init_checkpoint, the best checkpoint at the end


def _error(message: str) -> int:
    print(f"train.py: error: {message}\n(`train.py --help` lists the options)", file=sys.stderr)
    return 2


def list_stages(backbone: str, model_args: str | None = None) -> str:
    """The stage groups of a timm backbone as recipes name them (by name or index), one per line."""
    from ..models.backbone import CLASSIFIER_STAGES, describe_backbone

    stages = describe_backbone(backbone, json.loads(model_args) if model_args else None).stage_names
    lines = [f"{backbone}: {len(stages)} backbone stages (input -> output), then {', '.join(CLASSIFIER_STAGES)}"]
    lines += [f"  {i:>3} / {i - len(stages):>4}  {name}" for i, name in enumerate(stages)]
    lines.append("frozen_stages / unfreeze_schedule take a name, an index (-1 = deepest) or 'backbone' (all of them).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "--list_stages":
        if len(argv) not in (2, 3):
            return _error("usage: train.py --list_stages BACKBONE ['{\"img_size\": 64}']")
        try:
            print(list_stages(*argv[1:]))
        except ValueError as e:  # an unknown backbone (with suggestions) or bad model_args
            return _error(str(e))
        return 0
    if not argv or {"-h", "--help", "--help_all"} & set(argv):
        from ..training.recipe import recipe_parser

        recipe_parser(help_all="--help_all" in argv).print_help()
        return 0 if argv else 2
    debug = "--traceback" in argv  # (--debug is a TrainingArguments option)
    _setup_logging()

    import torch

    from ..data import InatDataError
    from ..inference.errors import InferenceError
    from ..training.checkpoints import CheckpointDiskFullError, CheckpointError
    from ..training.recipe import RecipeError, parse_recipe
    from ..training.run import check_recipe, run_training

    try:
        try:  # user mistakes: one line, exit status 2 (tracebacks only with --traceback)
            recipe = parse_recipe(argv)
            check_recipe(recipe)
        except (RecipeError, FileNotFoundError, ValueError) as e:
            if debug:
                raise
            return _error(str(e))
        try:
            run = run_training(recipe)
        except (
            InatDataError,
            InferenceError,
            CheckpointError,
        ) as e:  # bad data; a prior or checkpoint that does not fit
            if debug:
                raise
            return _error(str(e))
        except CheckpointDiskFullError as e:  # the message says where, what was kept and how to go on
            print(f"train.py: error: {e.strerror}", file=sys.stderr)
            return 1
        if run.trainer.is_world_process_zero():
            print(f"\nBest model, image processor and model card: {run.output_dir}")
            print(
                f"  load it: AutoModelForImageClassification.from_pretrained({run.output_dir!r}) after `import inat_hf.models`"
            )
        return 0
    finally:
        # Without this, processes launched by accelerate/torchrun abort with SIGABRT after a successful run.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
