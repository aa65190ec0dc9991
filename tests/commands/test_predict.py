"""scripts/predict.py (inat_hf.commands.predict): table, CSV/JSON, submission, bad input, pipeline parity."""

import json
import runpy
import shutil
import sys

import pandas as pd
import pytest

from inat_hf.commands.predict import main
from tests.conftest import REPO_ROOT

RANKS = ["kingdom", "phylum", "class", "order", "family", "genus", "species"]


@pytest.fixture
def images(demo_root, tmp_path):
    """A folder tree with 6 demo images (in a sub-folder too) and a non-image file."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    files = sorted((demo_root / "val").rglob("*.jpg"))[::2][:6]
    for i, f in enumerate(files):
        shutil.copy(f, folder / ("sub" if i % 2 else "") / f.name)
    (folder / "README.txt").write_text("not an image")  # not collected from a folder (not an image extension)
    return folder


def test_folder_prediction_table_and_csv(trained_model_dir, images, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    code = main(["--model_dir", str(trained_model_dir), str(images), "--top_k", "3", "--output", str(out)])
    assert code == 0
    stdout = capsys.readouterr().out
    assert stdout.count("  1. ") == 6 and "Animalia > Chordata" in stdout and "(" in stdout  # common names
    table = pd.read_csv(out)
    assert list(table.columns) == [
        "file",
        "rank",
        "label_index",
        "label",
        "common_name",
        "probability",
        "category_id",
        *RANKS,
        "backoff_rank",  # taxonomic back-off, on by default (--backoff_threshold)
        "backoff_taxon",
        "backoff_probability",
    ]
    # never the kingdom: every demo label is Animalia, so that answer would say nothing (empty: not sure)
    assert set(table["backoff_rank"].dropna()) <= set(RANKS) - {"kingdom"}
    assert len(table) == 6 * 3 and table["file"].nunique() == 6
    assert (table["label"] == table["species"]).all()
    assert table.groupby("file")["probability"].apply(lambda p: p.is_monotonic_decreasing).all()


def test_json_output_glob_and_tta(trained_model_dir, images, tmp_path, capsys):
    out = tmp_path / "preds.json"
    code = main(
        [
            "--model_dir",
            str(trained_model_dir),
            "--inputs",
            str(images / "**" / "*.jpg"),
            "--tta",
            "--tta_views",
            "3",
            "--top_k",
            "2",
            "--output",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0 and "1. " not in capsys.readouterr().out
    payload = json.loads(out.read_text())
    assert len(payload) == 6
    first = payload[0]["predictions"][0]
    assert set(first) == {"index", "label", "common_name", "category_id", "taxonomy", "probability"}
    assert list(first["taxonomy"]) == RANKS and isinstance(first["category_id"], int)


def test_bad_files_are_reported_and_the_others_predicted(trained_model_dir, images, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    notes = images / "README.txt"
    code = main(["--model_dir", str(trained_model_dir), str(corrupt), str(images), str(notes), "--batch_size", "4"])
    captured = capsys.readouterr()
    assert code == 1
    err_lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert any("corrupt.jpg" in line and "could not decode image" in line for line in err_lines)
    assert any("README.txt" in line and "could not decode image" in line for line in err_lines)
    assert "error: 2 of 8 images could not be predicted" in captured.err
    assert captured.out.count("  1. ") == 6  # every good image still predicted


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "contains no image files"),
        (lambda tmp: tmp / "nothing" / "*.jpg", "matched no files"),
        (lambda tmp: tmp / "missing.jpg", "no such file or folder"),
    ],
)
def test_empty_folder_unmatched_glob_missing_file(trained_model_dir, tmp_path, capsys, make_input, message):
    code = main(["--model_dir", str(trained_model_dir), str(make_input(tmp_path))])
    assert code == 2 and message in capsys.readouterr().err


def test_no_inputs_is_an_error(trained_model_dir, capsys):
    assert main(["--model_dir", str(trained_model_dir)]) == 2
    assert "no input images" in capsys.readouterr().err


def test_model_without_processor_fails_before_predicting(trained_model_dir, images, tmp_path, capsys):
    broken = tmp_path / "no_processor"
    shutil.copytree(trained_model_dir, broken)
    (broken / "preprocessor_config.json").unlink()
    code = main(["--model_dir", str(broken), str(images)])
    captured = capsys.readouterr()
    assert code == 2 and "has no image processor (preprocessor_config.json is missing)" in captured.err
    assert captured.out == ""


def test_submission_file(trained_model_dir, images, tmp_path):
    sub = tmp_path / "submission.csv"
    assert (
        main(["--model_dir", str(trained_model_dir), str(images), "--top_k", "1", "--submission", str(sub), "--quiet"])
        == 0
    )
    lines = sub.read_text().splitlines()
    assert lines[0] == "Id,Predicted" and len(lines) == 7
    stems = {p.stem for p in images.rglob("*.jpg")}
    for line in lines[1:]:
        image_id, predicted = line.split(",")
        ids = [int(x) for x in predicted.split(" ")]
        assert image_id in stems and len(ids) == 5 and set(ids) <= {10, 23, 24, 31, 48, 52, 77, 81}


def test_pipeline_and_predict_script_agree_on_top1(trained_model_dir, images, tmp_path):
    from transformers import pipeline

    out = tmp_path / "preds.csv"
    assert (
        main(["--model_dir", str(trained_model_dir), str(images), "--top_k", "1", "--output", str(out), "--quiet"])
        == 0
    )
    ours = pd.read_csv(out).set_index("file")["label"]
    pipe = pipeline("image-classification", model=str(trained_model_dir), device="cpu")
    theirs = {f: result[0]["label"] for f, result in zip(ours.index, pipe(list(ours.index), top_k=1))}
    assert ours.to_dict() == theirs
    assert ours.nunique() >= 3  # varied predictions: the comparison means something


def test_script_help_runs(monkeypatch, capsys):
    # the thin script, run as __main__ in-process (a subprocess would spend ~10 s importing torch/transformers)
    monkeypatch.setattr(sys, "argv", ["predict.py", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO_ROOT / "scripts" / "predict.py"), run_name="__main__")
    assert exit_info.value.code == 0
    stdout = capsys.readouterr().out
    for flag in ("--model_dir", "--top_k", "--tta", "--output", "--submission", "--batch_size"):
        assert flag in stdout
