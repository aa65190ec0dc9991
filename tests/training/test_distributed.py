"""Two processes (gloo on CPU) under `accelerate launch`: disjoint shards, identical weights after an unfreeze."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.slow
def test_two_process_run_shards_data_and_keeps_replicas_identical(write_recipe, tmp_path):
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    assert accelerate, "accelerate's launcher is a dependency"
    logs = tmp_path / "logs"
    logs.mkdir()
    recipe = write_recipe(
        training={
            "num_train_epochs": 2,
            "per_device_train_batch_size": 4,
            "unfreeze_schedule": "layer4:1,layer3:1",
            "dataloader_num_workers": 1,
        }
    )
    # `--multi_gpu` on a CPU machine: two gloo processes (`--cpu --num_processes 2` would silently run ONE).
    cmd = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "tests/training/_ddp_driver.py",
        str(logs),
        str(recipe),
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]  # no SIGABRT at exit: the process group is destroyed

    # ranks saw disjoint shards that cover the training set, in every epoch
    for epoch in (0, 1):
        seen = [set(map(int, (logs / f"rank{r}_epoch{epoch}.txt").read_text().split())) for r in (0, 1)]
        assert seen[0] and seen[1] and not seen[0] & seen[1], epoch
        assert len(seen[0] | seen[1]) == 32, epoch

    # after layer4/layer3 unfroze (epoch 1), both ranks still hold the same weights, equal to the saved model
    out = tmp_path / "out"
    checks = json.loads((out / "replica_checksums.json").read_text())
    assert checks["world_size"] == 2 and checks["checksums"][0] == checks["checksums"][1]
    from inat_hf import InatForImageClassification
    from inat_hf.training.callbacks import replica_checksums

    saved = InatForImageClassification.from_pretrained(out)
    assert replica_checksums(saved) == pytest.approx([checks["checksums"][0]], rel=0, abs=1e-6)
    # the layer4 weights moved during epoch 1 (the unfreeze took effect on both ranks)
    assert "layer4" in result.stderr and "unfreezing" in result.stderr
