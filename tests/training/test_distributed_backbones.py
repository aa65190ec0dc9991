"""Two gloo processes under `accelerate launch` with a non-ResNet backbone: identical replicas at the end."""

import json

import pytest

from tests.training.conftest import accelerate_launch


@pytest.mark.slow
def test_two_process_convnext_run_keeps_replicas_identical(write_recipe, tmp_path):
    # ConvNeXt stage groups from timm, unfrozen by index mid-run; stochastic depth and RandAugment draw per rank.
    recipe = write_recipe(
        model={"backbone": "convnext_atto", "drop_path_rate": 0.1},
        augmentation={"auto_augment": "rand-m9-mstd0.5-inc1", "color_jitter": 0.0},
        training={
            "num_train_epochs": 2,
            "per_device_train_batch_size": 4,
            "frozen_stages": ["backbone"],
            "unfreeze_schedule": "-1:1,-2:1",
            "dataloader_num_workers": 0,
            # the live replicas at the end, not a best checkpoint both ranks reload (that would hide a divergence)
            "load_best_model_at_end": False,
        },
    )
    result = accelerate_launch("scripts/train.py", recipe)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "unfreezing stages.2, stages.3" in result.stderr  # the index references resolved to timm's groups

    out = tmp_path / "out"
    checks = json.loads((out / "replica_checksums.json").read_text())
    assert checks["world_size"] == 2 and checks["checksums"][0] == checks["checksums"][1]
    from inat_hf import InatForImageClassification
    from inat_hf.training.trainer import replica_checksums

    saved = InatForImageClassification.from_pretrained(out)
    assert saved.config.backbone == "convnext_atto" and saved.config.drop_path_rate == 0.1
    assert replica_checksums(saved) == pytest.approx([checks["checksums"][0]], rel=0, abs=1e-6)
