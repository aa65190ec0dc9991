"""Reliability: kill -9 anywhere (even mid-checkpoint), resume from the newest complete checkpoint, and end with
exactly the weights of an uninterrupted run (CPU, fixed seed). Each run is a fresh process, as in real life."""

import os
import signal

import pytest
import torch
import yaml
from safetensors.torch import load_file

from inat_hf.training.callbacks import COMPLETE_MARKER, latest_complete_checkpoint
from tests.training.conftest import TINY_RECIPE, merge, run_script

# Checkpoints every 3 steps; 4 optimizer steps per epoch (32 images / 8), 3 epochs → 12 steps. Mixup, per-image
# augmentation, dropout and a layer4 unfreeze at epoch 1 are all on: every source of randomness must be restored.
ARGS = [
    "--num_train_epochs",
    "3",
    "--save_strategy",
    "steps",
    "--save_steps",
    "3",
    "--eval_strategy",
    "no",
    "--load_best_model_at_end",
    "false",
    "--save_total_limit",
    "10",
    "--unfreeze_schedule",
    "layer4:1",
]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, prepared_demo):
    """The uninterrupted run."""
    tmp = tmp_path_factory.mktemp("reference")
    recipe = merge(
        TINY_RECIPE, {"data": {"dataset_dir": str(prepared_demo)}, "training": {"output_dir": str(tmp / "out")}}
    )
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = run_script("scripts/train.py", path, *ARGS)
    assert result.returncode == 0, result.stderr[-3000:]
    return path, load_file(str(tmp / "out" / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, n, resumes_from",
    [
        ("step", 8, "checkpoint-6"),  # killed in the middle of epoch 1 (after the unfreeze)
        ("save", 3, "checkpoint-6"),  # killed writing checkpoint-9: weights on disk, optimizer not
    ],
)
def test_kill_and_resume_equals_uninterrupted(reference, tmp_path, mode, n, resumes_from):
    recipe, expected = reference
    out = tmp_path / "out"
    killed = run_script("tests/training/_kill_driver.py", mode, n, recipe, *ARGS, "--output_dir", out)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (out / "model.safetensors").exists()  # it really died before the end
    if mode == "save":
        partial = out / "checkpoint-9"
        assert (partial / "model.safetensors").exists() and not (partial / COMPLETE_MARKER).exists()
    assert latest_complete_checkpoint(str(out)) == str(out / resumes_from)

    resumed = run_script("scripts/train.py", recipe, *ARGS, "--output_dir", out, "--resume_from_checkpoint", "latest")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from {out / resumes_from}" in resumed.stderr
    final = load_file(str(out / "model.safetensors"))
    assert final.keys() == expected.keys()
    different = [k for k in expected if not torch.equal(final[k], expected[k])]
    assert not different, f"{len(different)} tensors differ from the uninterrupted run, e.g. {different[:3]}"


def test_latest_complete_checkpoint_skips_incomplete(tmp_path):
    assert latest_complete_checkpoint(str(tmp_path / "missing")) is None
    for step, complete in ((3, True), (6, True), (9, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / COMPLETE_MARKER).write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert latest_complete_checkpoint(str(tmp_path)) == os.path.join(tmp_path, "checkpoint-6")
