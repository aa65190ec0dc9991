"""scripts/prepare_data.py (inat_hf.commands.prepare): the summary, the output folder, errors."""

import json
import subprocess
import sys

import datasets
import pytest

from inat_hf.commands.prepare import main
from tests.conftest import REPO_ROOT


def test_demo_prepare_prints_summary_and_writes_output(tmp_path, capsys):
    root, out = tmp_path / "demo", tmp_path / "prepared"
    code = main(["--data_dir", str(root), "--demo", "--output_dir", str(out), "--cache_dir", str(tmp_path / "c")])
    assert code == 0
    text = capsys.readouterr().out
    assert "Classes per rank" in text and "Images per split" in text and "Skipped images: none" in text
    assert "train" in text and "public_test" in text and str(out) in text
    ds = datasets.load_from_disk(str(out))
    assert set(ds) == {"train", "val", "public_test"} and ds["train"].num_rows == 8 * 40
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["classes_per_rank"]["species"] == 8 and report["skipped"] == []


def test_options_reach_the_builder(demo_root, tmp_path, capsys):
    out = tmp_path / "o"
    code = main(
        [
            "--data_dir",
            str(demo_root),
            "--output_dir",
            str(out),
            "--splits",
            "train,val",
            "--rank",
            "class",
            "--taxon",
            "phylum=Chordata",
            "--resize_shorter",
            "24",
            "--no_verify_files",
            "--cache_dir",
            str(tmp_path / "c"),
        ]
    )
    assert code == 0
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["options"] == {
        "rank": "class",
        "taxon": "phylum=Chordata",
        "image_storage": "bytes",
        "resize_shorter": 24,
        "jpeg_quality": 90,
        "on_bad_image": "error",
        "on_bad_record": "error",
        "verify_files": False,
        "follow_symlinks": False,
        "max_image_pixels": report["options"]["max_image_pixels"],
    }
    assert datasets.load_from_disk(str(out))["train"].features["label"].names == ["Aves", "Mammalia"]


def test_data_error_exits_2_with_message(demo_copy, tmp_path, capsys):
    (demo_copy / "train.json").write_text('{"images": [{"id": 1}]}')
    assert main(["--data_dir", str(demo_copy), "--splits", "train", "--cache_dir", str(tmp_path / "c")]) == 2
    assert "error:" in capsys.readouterr().err


def test_bad_arguments_fail_before_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--data_dir", str(tmp_path), "--resize_shorter", "10", "--image_storage", "path"])
    assert exit_info.value.code == 2 and "needs --image_storage bytes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--data_dir", str(tmp_path), "--on_bad_image", "ignore"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_script_help_runs():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "prepare_data.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "--on_bad_image" in result.stdout and "--no_verify_files" in result.stdout
