"""Every shipped recipe in configs/ parses, passes the pre-training checks and builds its transforms."""

from pathlib import Path

import pytest

from inat_hf.training.recipe import parse_recipe
from inat_hf.training.run import check_recipe
from tests.conftest import REPO_ROOT

CONFIGS = sorted((REPO_ROOT / "configs").glob("*.yaml"))


def test_the_three_recipes_exist():
    assert {p.name for p in CONFIGS} >= {"demo.yaml", "inat2021_animalia_resnet50.yaml", "inat2021_mini_animalia.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: Path(p).name)
def test_recipe_is_valid(path):
    # The real recipes ask for bf16 on a GPU; on this CPU-only machine TrainingArguments needs use_cpu for that.
    recipe = parse_recipe([str(path), "--use_cpu", "true"])
    check_recipe(recipe)
    recipe.augmentation.augmentation_config()
    assert recipe.training.parsed_unfreeze_schedule() is not None
    if "convnext" in path.name:  # the second flagship: every stage trains from the start, timm preprocessing
        assert recipe.model.backbone.startswith("convnext_") and recipe.training.frozen_stages == []
        assert recipe.augmentation.auto_augment and recipe.augmentation.image_size is None
    elif "animalia" in path.name:
        assert recipe.model.backbone == "resnet50" and recipe.training.parsed_unfreeze_schedule() == {
            "layer4": 1,
            "layer3": 2,
            "layer2": 3,
        }
        assert recipe.training.learning_rate == 1e-4 and recipe.training.backbone_learning_rate == 1e-5
