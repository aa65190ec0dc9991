"""InatTrainer with a location prior (``geo_prior``): fused metrics at every evaluation, checked up front."""

import json

import pytest

from inat_hf.commands.evaluate import main as evaluate_main
from inat_hf.commands.train import main as train_main
from inat_hf.data import load_prepared
from inat_hf.models import GeoPriorConfig, GeoPriorModel
from inat_hf.training.recipe import parse_recipe
from inat_hf.training.run import run_training


@pytest.mark.parametrize("views", [1, 3])
def test_evaluation_logs_the_fused_metrics_evaluate_py_computes(
    write_recipe, prepared_demo, demo_prior, tmp_path, views
):
    recipe = parse_recipe(
        [
            str(write_recipe()),
            "--geo_prior",
            str(demo_prior),
            "--num_train_epochs",
            "1",
            "--eval_tta_views",
            str(views),
        ]
        + ["--per_device_eval_batch_size", "5", "--metric_for_best_model", "fused_top1"]  # 16 val images: 5, 5, 5, 1
    )
    run = run_training(recipe)
    history = [log for log in run.trainer.state.log_history if "eval_fused_top1" in log]
    assert len(history) == 2  # the epoch's evaluation (which picked the best checkpoint) and the final one
    assert run.trainer.state.best_metric == history[0]["eval_fused_top1"]

    out = tmp_path / "eval"
    args = ["--model_dir", run.output_dir, "--dataset_dir", str(prepared_demo), "--split", "val"]
    args += ["--no_tta"] if views == 1 else ["--tta_views", str(views)]  # the trainer's TTA averages probabilities
    assert evaluate_main([*args, "--geo_prior", str(demo_prior), "--output_dir", str(out), "--num_workers", "0"]) == 0
    (run_dir,) = out.glob("test_results_*")
    runs = json.loads((run_dir / "summary.json").read_text())["runs"]
    image = "no_tta" if views == 1 else "tta"
    for prefix, name in (("eval_", image), ("eval_fused_", "fused"), ("eval_prior_", "geo_prior")):
        for key in ("top1", "top3", "top5", "ece", "macro_f1"):
            assert run.metrics[prefix + key] == pytest.approx(runs[name][key], abs=1e-5), (prefix, key)
        assert run.metrics[prefix + "acc_genus"] == pytest.approx(runs[name]["hierarchical_accuracy"]["genus"])
    # the fused run is not the image run under another name: the prior moved the probabilities
    assert run.metrics["eval_fused_ece"] != pytest.approx(run.metrics["eval_ece"], abs=1e-3)


def test_a_prior_that_does_not_fit_is_an_error_before_training(write_recipe, prepared_demo, tmp_path, capsys):
    labels = load_prepared(prepared_demo).taxonomy.labels
    prior = tmp_path / "prior"
    GeoPriorModel(GeoPriorConfig(id2label=dict(enumerate(labels[1:])), hidden_size=8, num_blocks=1)).save_pretrained(
        prior
    )
    assert train_main([str(write_recipe()), "--geo_prior", str(prior)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-2] == (
        f"train.py: error: the location prior does not know 1 of the image model's 8 labels ({labels[0]!r}). "
        "Train it on data with the model's label set (same --rank and --taxon)."
    )
    assert not (tmp_path / "out" / "training_metrics.csv").exists()  # no step was taken
