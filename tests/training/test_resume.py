"""Reliability: kill -9 anywhere (even mid-checkpoint), resume from the newest complete checkpoint, and end with
exactly the weights of an uninterrupted run (CPU, fixed seed). Each run is a fresh process, as in real life."""

import csv
import errno
import os
import signal

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import TrainerState

from inat_hf.training.checkpoints import COMPLETE_MARKER, latest_complete_checkpoint, rotate_checkpoints
from inat_hf.training.metrics_log import TrainingMetricsCallback
from tests.training.conftest import TINY_RECIPE, merge, run_script

# Checkpoints every 3 steps; 4 optimizer steps per epoch (32 images / 8), 3 epochs → 12 steps. Mixup, per-image
# augmentation, dropout, a layer4 unfreeze at epoch 1 and the EMA (the final model) are all on: every source of
# randomness and every piece of state must be restored.
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
    "--ema_decay",
    "0.8",
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
    return path, load_file(str(tmp / "out" / "model.safetensors")), _train_rows(tmp / "out")


def _train_rows(out):
    """(step, train_loss) of every training row of training_metrics.csv."""
    with open(out / "training_metrics.csv", newline="") as f:
        return [(int(r["step"]), r["train_loss"]) for r in csv.DictReader(f) if r["train_loss"]]


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, n, resumes_from, extra",
    [
        ("step", 8, "checkpoint-6", []),  # killed in the middle of epoch 1 (after the unfreeze)
        ("save", 3, "checkpoint-6", []),  # killed writing checkpoint-9: weights on disk, optimizer not
        ("ema", 3, "checkpoint-6", []),  # killed writing checkpoint-9's EMA: everything else on disk
        # save_total_limit 1: killed marking checkpoint-6 complete; checkpoint-3 must still be there
        ("marker", 2, "checkpoint-3", ["--save_total_limit", "1"]),
    ],
)
def test_kill_and_resume_equals_uninterrupted(reference, tmp_path, mode, n, resumes_from, extra):
    recipe, expected, expected_rows = reference
    out = tmp_path / "out"
    killed = run_script("tests/training/_kill_driver.py", mode, n, recipe, *ARGS, *extra, "--output_dir", out)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (out / "model.safetensors").exists()  # it really died before the end
    if mode in ("save", "ema"):
        partial = out / "checkpoint-9"
        assert (partial / "model.safetensors").exists() and not (partial / COMPLETE_MARKER).exists()
    assert latest_complete_checkpoint(str(out)) == str(out / resumes_from)

    resumed = run_script(
        "scripts/train.py", recipe, *ARGS, *extra, "--output_dir", out, "--resume_from_checkpoint", "latest"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resuming from {out / resumes_from}" in resumed.stderr
    final = load_file(str(out / "model.safetensors"))
    assert final.keys() == expected.keys()
    different = [k for k in expected if not torch.equal(final[k], expected[k])]
    assert not different, f"{len(different)} tensors differ from the uninterrupted run, e.g. {different[:3]}"
    # the metrics file holds each logged step once, as in the uninterrupted run (no replayed duplicates)
    rows = _train_rows(out)
    assert [step for step, _ in rows] == [step for step, _ in expected_rows]


def test_resume_cuts_the_metrics_file_back_to_the_checkpoint(tmp_path):
    path = tmp_path / "training_metrics.csv"
    path.write_text("epoch,step,train_loss,eval_loss\n0.5,2,1.0,\n1.0,4,0.9,\n1.0,4,,0.8\n1.5,6,0.7,\n2.0,8,0.6,\n")
    callback = TrainingMetricsCallback(str(tmp_path), images_per_step=8)
    state = TrainerState(global_step=4, is_world_process_zero=True)
    callback.on_train_begin(None, state, None)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["train_loss"], r["eval_loss"]) for r in rows] == [
        ("2", "1.0", ""),
        ("4", "0.9", ""),
        ("4", "", "0.8"),
    ]


def _write_checkpoint(root, step, complete=True):
    folder = root / f"checkpoint-{step}"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x")
    if complete:
        (folder / COMPLETE_MARKER).write_text("{}")
    return folder


def test_rotation_never_deletes_the_last_complete_checkpoint(tmp_path):
    for step in (3, 6):
        _write_checkpoint(tmp_path, step)
    _write_checkpoint(tmp_path, 9, complete=False)  # being written
    assert rotate_checkpoints(str(tmp_path), 1, None) == [str(tmp_path / "checkpoint-3")]
    assert latest_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-6")
    assert (tmp_path / "checkpoint-9").exists()  # newer than every complete one: not touched
    # the best checkpoint is kept too, and incomplete leftovers older than the newest complete one go
    _write_checkpoint(tmp_path, 2, complete=False)
    (tmp_path / "checkpoint-9" / COMPLETE_MARKER).write_text("{}")
    _write_checkpoint(tmp_path, 12)
    deleted = rotate_checkpoints(str(tmp_path), 1, str(tmp_path / "checkpoint-6"))
    assert sorted(deleted) == sorted([str(tmp_path / "checkpoint-9"), str(tmp_path / "checkpoint-2")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-12", "checkpoint-6"]


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        # what torch.save really raises on a full disk
        RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4416 vs 4308"),
    ],
    ids=["ENOSPC", "torch-zip-writer"],
)
def test_disk_full_during_a_save_says_so_and_keeps_the_last_complete_checkpoint(
    write_recipe, tmp_path, monkeypatch, capsys, error
):
    import transformers.trainer

    from inat_hf.commands.train import main

    calls = {"n": 0}
    original = torch.save

    def full_disk_on_second_checkpoint(obj, f, *args, **kwargs):
        if str(f).endswith("optimizer.pt"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise error
        return original(obj, f, *args, **kwargs)

    monkeypatch.setattr(transformers.trainer.torch, "save", full_disk_on_second_checkpoint)
    out = tmp_path / "out"
    code = main(
        [str(write_recipe()), *ARGS, "--output_dir", str(out), "--save_total_limit", "1", "--num_train_epochs", "2"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert f"Disk full: no space left on the device holding {out}" in err
    assert f"while writing checkpoint {out / 'checkpoint-6'}" in err
    assert f"the last complete checkpoint {out / 'checkpoint-3'} is kept" in err
    assert latest_complete_checkpoint(str(out)) == str(out / "checkpoint-3")
    assert not (out / "checkpoint-6").exists()  # the partial folder was removed


def test_latest_complete_checkpoint_skips_incomplete(tmp_path):
    assert latest_complete_checkpoint(str(tmp_path / "missing")) is None
    for step, complete in ((3, True), (6, True), (9, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / COMPLETE_MARKER).write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert latest_complete_checkpoint(str(tmp_path)) == os.path.join(tmp_path, "checkpoint-6")
