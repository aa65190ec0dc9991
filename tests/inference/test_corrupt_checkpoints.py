"""Corrupted or malformed checkpoints: one clear error line naming the file, never silent NaN predictions."""

import json
import shutil

import numpy as np
import pytest
import torch

from inat_hf.commands.evaluate import main as evaluate_main
from inat_hf.commands.predict import main as predict_main
from inat_hf.inference.errors import InferenceError
from inat_hf.inference.predictor import Predictor


@pytest.fixture
def model_copy(trained_model_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(trained_model_dir, target)
    return target


@pytest.fixture
def image(demo_root):
    return str(sorted((demo_root / "val").rglob("*.jpg"))[0])


def _overwrite_mib(path, seed=0):
    """1 MiB of random bytes in the middle of the file: same size, valid header, garbage tensors."""
    data = bytearray(path.read_bytes())
    start = len(data) // 3
    data[start : start + (1 << 20)] = np.random.default_rng(seed).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _one_error_line(err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]  # (progress bars go to stderr too)
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_corrupted_weights_fail_predict_evaluate_and_pipeline(model_copy, image, prepared_demo, tmp_path, capsys):
    _overwrite_mib(model_copy / "model.safetensors")
    out = tmp_path / "preds.json"
    out.write_text("[]\n")
    assert predict_main(["--model_dir", str(model_copy), image, "--output", str(out), "--quiet"]) == 2
    _one_error_line(capsys.readouterr().err, str(model_copy), "non-finite")
    assert out.read_text() == "[]\n"  # the previous output is kept
    code = evaluate_main(
        [
            "--model_dir",
            str(model_copy),
            "--dataset_dir",
            str(prepared_demo),
            "--output_dir",
            str(tmp_path / "e"),
            "--no_tta",
            "--num_workers",
            "0",
            "--no_progress",
        ]
    )
    assert code == 2
    _one_error_line(capsys.readouterr().err, str(model_copy), "non-finite")
    from transformers import pipeline

    with pytest.raises(ValueError, match="non-finite"):
        pipeline("image-classification", model=str(model_copy), device="cpu")(image)


def test_non_finite_logits_from_finite_weights_are_an_error(trained_model_dir, image):
    predictor = Predictor.from_pretrained(trained_model_dir, device="cpu")
    with torch.no_grad():
        predictor.model.head.classifier.weight.fill_(3e38)  # finite weights whose logits overflow to inf
    with pytest.raises(InferenceError, match=rf"{trained_model_dir} produced non-finite logits"):
        list(predictor.predict([image]))


def test_truncated_weights_file_is_one_error_line(model_copy, image, capsys):
    weights = model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert predict_main(["--model_dir", str(model_copy), image]) == 2
    _one_error_line(capsys.readouterr().err, str(weights))


@pytest.mark.parametrize(
    "edit",
    [{"id2label": "x"}, {"num_labels": "eight"}, {"taxonomy": 5}, {"id2label": {"0": "a"}, "label2id": {"a": 0}}],
)
def test_config_with_wrong_types_is_one_error_line(model_copy, image, capsys, edit):
    config_file = model_copy / "config.json"
    config = json.loads(config_file.read_text())
    config.update(edit)
    config_file.write_text(json.dumps(config))
    assert predict_main(["--model_dir", str(model_copy), image]) == 2
    _one_error_line(capsys.readouterr().err, str(config_file))
