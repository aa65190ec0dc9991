"""scripts/evaluate.py (inat_hf.commands.evaluate): report files and columns, submission, bad input."""

import json
import re
import runpy
import shutil
import sys

import pandas as pd
import pytest

from inat_hf.commands.evaluate import main
from tests.conftest import REPO_ROOT

DEMO_CATEGORY_IDS = {10, 23, 24, 31, 48, 52, 77, 81}
PREDICTION_COLUMNS = [
    "image_id",
    "file",
    "true_index",
    "true_label",
    "pred_index",
    "pred_label",
    "confidence",
    "correct",
    *[f"top{i}_{c}" for i in range(1, 6) for c in ("index", "label", "prob")],
]


def run(args, tmp_path):
    out = tmp_path / "eval"
    code = main([*args, "--output_dir", str(out), "--num_workers", "0", "--no_progress"])
    runs = sorted(out.glob("test_results_*")) if out.exists() else []
    return code, runs


def check_submission(path, num_rows):
    lines = path.read_text().splitlines()
    assert lines[0] == "Id,Predicted" and len(lines) == num_rows + 1
    for line in lines[1:]:
        image_id, predicted = line.split(",")
        ids = [int(x) for x in predicted.split(" ")]
        assert int(image_id) > 0 and len(ids) == 5 and len(set(ids)) == 5 and set(ids) <= DEMO_CATEGORY_IDS


def test_val_report_with_and_without_tta(trained_model_dir, prepared_demo, tmp_path, capsys):
    code, runs = run(
        [
            "--model_dir",
            str(trained_model_dir),
            "--dataset_dir",
            str(prepared_demo),
            "--split",
            "val",
            "--tta_views",
            "5",
            "--report_both",
            "--submission",
            "--batch_size",
            "6",
        ],
        tmp_path,
    )
    assert code == 0 and len(runs) == 1
    run_dir = runs[0]
    stdout = capsys.readouterr().out
    assert "top-1" in stdout and str(run_dir) in stdout

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_images"] == 16 and summary["split"] == "val" and summary["model_dir"] == str(trained_model_dir)
    assert summary["tta"] == {
        "enabled": True,
        "num_views": 5,
        "average": "prob",
        "views": ["center", "center_flip", "full", "zoom_1.15", "zoom_1.3"],
    }
    assert set(summary["runs"]) == {"no_tta", "tta"} and summary["primary_run"] == "tta"
    for metrics in (summary, *summary["runs"].values()):
        for key in ("top1", "top3", "top5", "ece", "macro_f1"):
            assert 0 <= metrics[key] <= 1
        assert metrics["top1"] <= metrics["top3"] <= metrics["top5"]
        assert list(metrics["hierarchical_accuracy"]) == [
            "species",
            "genus",
            "family",
            "order",
            "class",
            "phylum",
            "kingdom",
        ]
    assert summary["top1"] == summary["runs"]["tta"]["top1"]
    assert summary["seconds_per_image"] > 0 and summary["images_per_second"] > 0
    assert len(summary["reliability"]["counts"]) == 15
    for name in summary["files"]:
        assert (run_dir / name).is_file()
    table = (run_dir / "results.md").read_text().splitlines()  # what the README shows, made by the run
    assert (
        table[0]
        == "| val (16 images) | top-1 | top-3 | top-5 | genus | family | order | class | phylum | kingdom | ECE |"
    )
    no_tta, tta = summary["runs"]["no_tta"], summary["runs"]["tta"]
    assert table[2].startswith(f"| no TTA | {100 * no_tta['top1']:.1f} % | {100 * no_tta['top3']:.1f} % |")
    assert table[3].startswith(f"| 5-view TTA | {100 * tta['top1']:.1f} % |") and table[3].endswith(
        f" {tta['ece']:.3f} |"
    )

    preds = pd.read_csv(run_dir / "predictions.csv")
    assert list(preds.columns) == PREDICTION_COLUMNS and len(preds) == 16
    assert (preds["pred_index"] == preds["top1_index"]).all() and (preds["confidence"] == preds["top1_prob"]).all()
    assert (preds["correct"] == (preds["true_index"] == preds["pred_index"])).all()
    assert preds["top1_prob"].ge(preds["top2_prob"]).all()
    assert preds["correct"].mean() == pytest.approx(summary["top1"])
    assert list(pd.read_csv(run_dir / "predictions_no_tta.csv").columns) == PREDICTION_COLUMNS

    per_class = pd.read_csv(run_dir / "per_class.csv")
    assert list(per_class.columns) == [
        "label_index",
        "label",
        "common_name",
        "support",
        "predicted",
        "correct",
        "accuracy",
        "precision",
        "recall",
        "f1",
    ]
    assert len(per_class) == 8 and per_class["support"].sum() == 16 and per_class["common_name"][0] == "Great Tit"
    assert "macro avg" in (run_dir / "classification_report.txt").read_text()

    confusion = pd.read_csv(run_dir / "confusion_matrix.csv", index_col=0)
    assert confusion.shape == (8, 8) and confusion.to_numpy().sum() == 16
    assert confusion.to_numpy().trace() == round(summary["top1"] * 16)
    hier = pd.read_csv(run_dir / "hierarchical_accuracy.csv")
    assert list(hier.columns) == ["rank", "num_groups", "no_tta", "tta"] and hier["rank"][0] == "species"
    assert hier.set_index("rank")["tta"]["genus"] == pytest.approx(summary["hierarchical_accuracy"]["genus"])
    for png in ("confusion_matrix.png", "reliability_diagram.png"):
        assert (run_dir / png).read_bytes()[:4] == b"\x89PNG"
    assert not (run_dir / "most_confused.csv").exists()
    check_submission(run_dir / "submission.csv", 16)


def test_unlabeled_split_skips_metrics_and_writes_submission(trained_model_dir, prepared_demo, tmp_path):
    code, runs = run(
        [
            "--model_dir",
            str(trained_model_dir),
            "--dataset_dir",
            str(prepared_demo),
            "--split",
            "public_test",
            "--tta_views",
            "2",
            "--submission",
        ],
        tmp_path,
    )
    assert code == 0
    run_dir = runs[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["accuracy_metrics"].startswith("skipped: no labeled images") and "top1" not in summary
    assert sorted(p.name for p in run_dir.iterdir()) == ["predictions.csv", "submission.csv", "summary.json"]
    preds = pd.read_csv(run_dir / "predictions.csv")
    assert len(preds) == 3 and (preds["true_index"] == -1).all() and preds["correct"].isna().all()
    check_submission(run_dir / "submission.csv", 3)
    assert pd.read_csv(run_dir / "submission.csv")["Id"].tolist() == preds["image_id"].tolist()


def test_large_label_sets_get_most_confused_and_coarse_confusion(trained_model_dir, prepared_demo, tmp_path):
    # 8 labels > --max_confusion_labels 4: the large-label layout; order has 6 values > 4, so class is used
    code, runs = run(
        [
            "--model_dir",
            str(trained_model_dir),
            "--dataset_dir",
            str(prepared_demo),
            "--no_tta",
            "--max_confusion_labels",
            "4",
            "--max_samples",
            "12",
        ],
        tmp_path,
    )
    assert code == 0
    run_dir = runs[0]
    assert not (run_dir / "confusion_matrix.csv").exists()
    confused = pd.read_csv(run_dir / "most_confused.csv")
    assert list(confused.columns) == [
        "true_index",
        "true_label",
        "pred_index",
        "pred_label",
        "count",
        "true_support",
        "rate",
        "shared_rank",
    ]
    assert (confused["true_index"] != confused["pred_index"]).all() and confused["count"].is_monotonic_decreasing
    coarse = pd.read_csv(run_dir / "confusion_class.csv", index_col=0)
    assert list(coarse.index) == ["Aves", "Insecta", "Mammalia"] and coarse.to_numpy().sum() == 12
    assert (run_dir / "confusion_class.png").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_images"] == 12 and set(summary["runs"]) == {"no_tta"} and not summary["tta"]["enabled"]


def test_raw_data_dir_is_prepared_on_the_fly(trained_model_dir, demo_root, tmp_path):
    code, runs = run(
        [
            "--model_dir",
            str(trained_model_dir),
            "--data_dir",
            str(demo_root),
            "--no_tta",
            "--max_samples",
            "4",
            "--cache_dir",
            str(tmp_path / "cache"),
        ],
        tmp_path,
    )
    assert code == 0
    assert json.loads((runs[0] / "summary.json").read_text())["num_images"] == 4


def test_label_mismatch_fails_before_any_work(trained_model_dir, prepared_demo, tmp_path, capsys):
    other = tmp_path / "other_labels"
    shutil.copytree(trained_model_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["id2label"]["7"] = "Formica rufa"
    config["label2id"] = {v: int(k) for k, v in config["id2label"].items()}
    config["taxonomy"]["labels"][7] = config["taxonomy"]["ranks"]["species"][7] = "Formica rufa"
    (other / "config.json").write_text(json.dumps(config))
    code, runs = run(["--model_dir", str(other), "--dataset_dir", str(prepared_demo)], tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and runs == []
    assert len(err.strip().splitlines()) == 1 and "model has 10 labels" not in err
    assert "first difference is at index 7: model 'Formica rufa', dataset 'Coccinella septempunctata'" in err
    assert "only in the model: 'Formica rufa'" in err and "only in the dataset: 'Coccinella septempunctata'" in err


def test_model_without_processor_fails_before_any_work(trained_model_dir, tmp_path, capsys):
    broken = tmp_path / "no_processor"
    shutil.copytree(trained_model_dir, broken)
    (broken / "preprocessor_config.json").unlink()
    # the dataset folder does not even exist: the processor check comes first
    code, runs = run(["--model_dir", str(broken), "--dataset_dir", str(tmp_path / "missing")], tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and runs == []
    assert "has no image processor (preprocessor_config.json is missing)" in err


def test_unknown_split_and_argument_errors(trained_model_dir, prepared_demo, tmp_path, capsys):
    code, _ = run(
        ["--model_dir", str(trained_model_dir), "--dataset_dir", str(prepared_demo), "--split", "test"], tmp_path
    )
    assert code == 2 and "split 'test' not found" in capsys.readouterr().err
    capsys.readouterr()
    for argv, message in [
        (["--data_dir", "a", "--dataset_dir", "b"], "exactly one data source: --data_dir"),
        (["--dataset_dir", "b", "--no_tta", "--report_both"], "--report_both .* cannot be used with --no_tta"),
        (["--dataset_dir", "b", "--tta_views", "9"], "--tta_views must be in 2..8"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(["--model_dir", "m", *argv])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and re.search(message, err.splitlines()[0]), err


def test_script_help_runs(monkeypatch, capsys):
    # the thin script, run as __main__ in-process (a subprocess would spend ~10 s importing torch/transformers)
    monkeypatch.setattr(sys, "argv", ["evaluate.py", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO_ROOT / "scripts" / "evaluate.py"), run_name="__main__")
    assert exit_info.value.code == 0
    stdout = capsys.readouterr().out
    for flag in (
        "--model_dir",
        "--dataset_dir",
        "--data_dir",
        "--no_tta",
        "--tta_views",
        "--report_both",
        "--submission",
        "--bf16",
        "--channels_last",
        "--max_samples",
        "--output_dir",
    ):
        assert flag in stdout
