"""Fixtures for training tests: a tiny prepared demo dataset and tiny recipes (resnet10t, 32 px, CPU)."""

import copy
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO_ROOT

TINY_RECIPE = {
    "model": {
        "backbone": "resnet10t",
        "attn_layer": "se",
        "head_hidden_sizes": [16],
        "drop_rate": 0.1,
        "image_size": 32,
    },
    "data": {"eval_split": "val"},
    "augmentation": {"scale": [0.5, 1.0]},
    "mixing": {"mix_off_epochs": 1},
    "training": {
        "use_cpu": True,
        "seed": 7,
        "num_train_epochs": 2,
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 16,
        "learning_rate": 3.0e-3,
        "backbone_learning_rate": 3.0e-3,
        "frozen_stages": ["stem", "layer1", "layer2", "layer3", "layer4"],
        "unfreeze_schedule": "layer4:1,layer3:1",
        "logging_steps": 2,
        "dataloader_num_workers": 0,
        "save_total_limit": 3,
        "report_to": "none",
        "disable_tqdm": True,
    },
}


def merge(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for section, values in overrides.items():
        out.setdefault(section, {}).update(values)
    return out


@pytest.fixture
def write_recipe(prepared_demo, tmp_path):
    """write_recipe(**sections) → path of a tiny recipe YAML (sections merged into TINY_RECIPE)."""

    def _write(name="recipe.yaml", **sections):
        recipe = merge(
            TINY_RECIPE,
            {"data": {"dataset_dir": str(prepared_demo)}, "training": {"output_dir": str(tmp_path / "out")}},
        )
        recipe = merge(recipe, sections)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(recipe))
        return path

    return _write


def run_script(*args, timeout=600, **popen_kwargs):
    """Run a command in a fresh Python process (offline), returning the CompletedProcess."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen_kwargs,
    )


def accelerate_launch(script, *args, timeout=900) -> subprocess.CompletedProcess:
    """``accelerate launch`` of ``script`` on two processes (gloo on a CPU machine), from the repo root, offline.

    ``--multi_gpu`` is what starts two processes without GPUs: ``--cpu --num_processes 2`` would silently run ONE.
    """
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    assert accelerate, "accelerate's launcher is a dependency"
    cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    cmd += ["--mixed_precision", "no", "--dynamo_backend", "no", str(script), *map(str, args)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
