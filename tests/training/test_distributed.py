"""Two processes (gloo on CPU) under `accelerate launch`: disjoint shards, per-rank mixing draws, identical weights
after an unfreeze, fused (location prior) metrics gathered in the right order, and a resumed 2-process run that
ends exactly like the uninterrupted one."""

import json

import pytest
import torch
from safetensors.torch import load_file

from inat_hf.commands.evaluate import main as evaluate_main
from tests.training.conftest import accelerate_launch


def _launch(logs, recipe, *args):
    result = accelerate_launch("tests/training/_ddp_driver.py", logs, recipe, *args, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]  # no SIGABRT at exit: the process group is destroyed
    return result


def _draws(logs, rank):
    return (logs / f"rank{rank}_mixing.txt").read_text().split("\n")[:-1]


@pytest.mark.slow
def test_two_process_run_shards_data_and_keeps_replicas_identical(write_recipe, prepared_demo, demo_prior, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    recipe = write_recipe(
        mixing={"mix_off_epochs": 0, "mix_prob_final": 1.0},  # every batch mixed, in both epochs
        training={
            "num_train_epochs": 2,
            "per_device_train_batch_size": 4,
            "unfreeze_schedule": "layer4:1,layer3:1",
            "dataloader_num_workers": 1,
            "load_best_model_at_end": False,  # the final model is the last one (compared with the resumed run)
            "geo_prior": str(demo_prior),
            "per_device_eval_batch_size": 5,  # 16 val images: rank 0 gets batches 0 and 2, rank 1 1 and 3 (1 + padding)
        },
    )
    _launch(logs, recipe)

    # ranks saw disjoint shards that cover the training set, in every epoch
    for epoch in (0, 1):
        seen = [set(map(int, (logs / f"rank{r}_epoch{epoch}.txt").read_text().split())) for r in (0, 1)]
        assert seen[0] and seen[1] and not seen[0] & seen[1], epoch
        assert len(seen[0] | seen[1]) == 32, epoch

    # every rank mixes its own batches with its own draws (λ, mixup or cutmix): 4 steps x 2 epochs each
    draws = [_draws(logs, r) for r in (0, 1)]
    assert len(draws[0]) == len(draws[1]) == 8
    assert all(a != b for a, b in zip(*draws)), draws

    # after layer4/layer3 unfroze (epoch 1), both ranks still hold the same weights, equal to the saved model
    out = tmp_path / "out"
    checks = json.loads((out / "replica_checksums.json").read_text())
    assert checks["world_size"] == 2 and checks["checksums"][0] == checks["checksums"][1]
    from inat_hf import InatForImageClassification
    from inat_hf.training.trainer import replica_checksums

    saved = InatForImageClassification.from_pretrained(out)
    assert replica_checksums(saved) == pytest.approx([checks["checksums"][0]], rel=0, abs=1e-6)
    # the unfreeze took effect: layer4 (frozen in epoch 0, trained in epoch 1) moved after the end of epoch 0,
    # layer2 (frozen for the whole run) did not
    epoch0 = load_file(str(out / "checkpoint-4" / "model.safetensors"))
    final = load_file(str(out / "model.safetensors"))
    stages = saved.stage_parameter_names(["layer4", "layer2"])
    assert any(not torch.equal(epoch0[n], final[n]) for n in stages["layer4"])
    assert all(torch.equal(epoch0[n], final[n]) for n in stages["layer2"])

    # each rank fused its own images' scores with their locations: the gathered metrics are evaluate.py's
    final_metrics = json.loads((out / "eval_results.json").read_text())
    args = ["--model_dir", str(out), "--dataset_dir", str(prepared_demo), "--no_tta", "--num_workers", "0"]
    assert evaluate_main([*args, "--geo_prior", str(demo_prior), "--output_dir", str(tmp_path / "eval")]) == 0
    (run_dir,) = (tmp_path / "eval").glob("test_results_*")
    runs = json.loads((run_dir / "summary.json").read_text())["runs"]
    for key in ("top1", "top5", "ece"):
        assert final_metrics[f"eval_fused_{key}"] == pytest.approx(runs["fused"][key], abs=1e-5), key
        assert final_metrics[f"eval_{key}"] == pytest.approx(runs["no_tta"][key], abs=1e-5), key

    # resuming both processes from the end of epoch 0 replays epoch 1 exactly: same draws on each rank, same weights
    resumed_logs = tmp_path / "resumed_logs"
    resumed_logs.mkdir()
    _launch(
        resumed_logs, recipe, "--output_dir", tmp_path / "resumed", "--resume_from_checkpoint", out / "checkpoint-4"
    )
    for rank in (0, 1):
        assert _draws(resumed_logs, rank) == draws[rank][4:], rank
    resumed = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert all(torch.equal(resumed[k], final[k]) for k in final)
