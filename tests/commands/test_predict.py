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
    assert "Animalia > Chordata" in stdout and "(" in stdout  # common names
    # the file has all 6: the console shows the first 5 and says where the rest are
    assert stdout.count("  1. ") == 5 and f"... 1 more not shown: all 6 are in {out}" in stdout
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


def test_a_folder_takes_every_format_pillow_opens_and_lists_what_it_skips(
    trained_model_dir, demo_root, tmp_path, capsys
):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    photo = Image.open(sorted((demo_root / "val").rglob("*.jpg"))[0])
    photo.save(folder / "netpbm.ppm")
    photo.save(folder / "tga.tga")
    (folder / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")  # no HEIF plugin installed
    (folder / "notes.txt").write_text("not an image")
    (folder / "._netpbm.ppm").write_bytes(b"AppleDouble junk")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    code = main(["--model_dir", str(trained_model_dir), str(folder), "--top_k", "1"])
    out, err = capsys.readouterr()
    assert code == 1 and out.count("  1. ") == 2  # the .ppm and the .tga are predicted
    assert f"skipped: {folder / 'phone.heic'} (not a format the installed Pillow opens (.heic))" in err
    assert f"skipped: {folder / 'notes.txt'} (not a format the installed Pillow opens (.txt))" in err
    assert f"skipped: {folder / '._netpbm.ppm'} (hidden file)" in err
    assert "broken.png" in err and "could not decode image" in err  # a file Pillow should open but cannot
    assert "error: 1 of 3 images could not be predicted" in err


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


def test_no_weight_loading_bar(trained_model_dir, images, capsys):
    """transformers' per-from_pretrained "Loading weights" bar says nothing to a command's user."""
    assert main(["--model_dir", str(trained_model_dir), str(images), "--quiet"]) == 0
    assert "Loading weights" not in capsys.readouterr().err
