"""Every shipped recipe in configs/ parses, passes the pre-training checks without a warning and builds its
transforms; the flagship recipes keep the schedule, patience and mixing that the README explains."""

import logging
import warnings
from pathlib import Path

import pytest

from inat_hf.models.backbone import CLASSIFIER_STAGES, describe_backbone
from inat_hf.training.recipe import parse_recipe
from inat_hf.training.run import check_recipe
from inat_hf.training.unfreezing import unfreezing_plan
from tests.conftest import REPO_ROOT

CONFIGS = sorted((REPO_ROOT / "configs").glob("*.yaml"))
# The unfreeze schedule each recipe is written with (stage -> first epoch it trains).
SCHEDULES = {
    "demo.yaml": {"layer4": 1, "layer3": 1, "layer2": 2, "layer1": 2, "stem": 2},
    "inat2021_animalia_resnet50.yaml": {"layer4": 1, "layer3": 2, "layer2": 3},
    "inat2021_mini_animalia.yaml": {"layer4": 1, "layer3": 2, "layer2": 3},
}


def test_the_three_recipes_exist():
    assert {p.name for p in CONFIGS} >= set(SCHEDULES)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: Path(p).name)
def test_recipe_is_valid_without_warnings(path, caplog):
    # The real recipes ask for bf16 on a GPU; on this CPU-only machine TrainingArguments needs use_cpu for that.
    recipe = parse_recipe([str(path), "--use_cpu", "true"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level(logging.WARNING):
            check_recipe(recipe)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    stages = describe_backbone(recipe.model["backbone"], recipe.model["model_args"]).stage_names
    args = recipe.training
    frozen, schedule = unfreezing_plan(
        args.frozen_stages, args.unfreeze_schedule, (*stages, *CLASSIFIER_STAGES), stages
    )
    if "convnext" in path.name:  # the second flagship: every stage trains from the start, timm preprocessing
        assert recipe.model["backbone"].startswith("convnext_") and frozen == [] and schedule == {}
        # timm's preprocessing: 224 px from the backbone's config, for the training crop too
        assert recipe.augmentation.auto_augment and recipe.model["image_size"] is None
        assert recipe.augmentation.image_size == 224 and recipe.augmentation.mean == (0.485, 0.456, 0.406)
        return
    assert schedule == SCHEDULES[path.name]
    assert set(schedule) <= set(frozen)
    if "animalia" in path.name:
        assert recipe.model["backbone"] == "resnet50" and recipe.augmentation.image_size == 224
        assert recipe.training.learning_rate == 1e-4 and recipe.training.backbone_learning_rate == 1e-5
        # one cycle of cosine_with_restarts fits inside the early-stopping patience (see check_recipe)
        cycles = recipe.training.lr_scheduler_kwargs["num_cycles"]
        assert recipe.training.early_stopping_patience >= recipe.training.num_train_epochs * 0.98 / cycles
        assert recipe.training.ddp_find_unused_parameters is False


@pytest.mark.parametrize(
    "path, patience", [("inat2021_animalia_resnet50.yaml", 5), ("inat2021_mini_animalia.yaml", 4)]
)
def test_patience_shorter_than_a_restart_cycle_is_refused(path, patience):
    recipe = parse_recipe(
        [str(REPO_ROOT / "configs" / path), "--use_cpu", "true", "--early_stopping_patience", str(patience)]
    )
    with pytest.raises(ValueError, match=r"shorter than one restart cycle .* Fix: early_stopping_patience >= \d+"):
        check_recipe(recipe)
    # one cycle (plain cosine) or no early stopping are fine with the same patience
    check_recipe(
        parse_recipe(
            [
                str(REPO_ROOT / "configs" / path),
                "--use_cpu",
                "true",
                "--early_stopping_patience",
                str(patience),
                "--lr_scheduler_kwargs",
                '{"num_cycles": 1}',
            ]
        )
    )
