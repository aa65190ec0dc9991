"""Calibration (inat_hf.inference.calibration, calibrate.py): the fit recovers a known temperature and fusion weight,
never sees the images it reports on, lowers ECE on them, and the saved temperature is applied identically by
predict.py, the web page and pipeline()."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from inat_hf.commands.calibrate import main as calibrate_main
from inat_hf.commands.predict import main as predict_main
from inat_hf.inference.calibration import calibrate, fit_fusion_weight, fit_temperature, split_indices


def _sampled(n=3000, c=10, seed=0):
    """Calibrated logits ``z`` (labels drawn from softmax(z)) and those labels."""
    g = torch.Generator().manual_seed(seed)
    z = 3 * torch.randn(n, c, generator=g)
    labels = torch.multinomial(z.softmax(-1), 1, generator=g)[:, 0]
    return z, labels


@pytest.mark.parametrize("true_t", [2.5, 0.4])  # over-confident (as if trained too long), under-confident (smoothing)
def test_fit_recovers_a_known_temperature(true_t):
    z, labels = _sampled()
    t = fit_temperature((z * true_t)[:, None], labels)  # the model's logits are the calibrated ones times T
    assert t == pytest.approx(true_t, rel=0.05)


def test_fit_recovers_a_known_fusion_weight():
    z, _ = _sampled(seed=1)
    g = torch.Generator().manual_seed(2)
    ratio = torch.randn(z.shape, generator=g)  # a prior's fusion term at weight 1
    labels = torch.multinomial((z.log_softmax(-1) + 0.6 * ratio).softmax(-1), 1, generator=g)[:, 0]
    assert fit_fusion_weight(z, ratio, labels) == pytest.approx(0.6, rel=0.1)


def test_split_is_seeded_disjoint_and_complete():
    fit, report = split_indices(101, 0.5, seed=3)
    assert len(fit) == 50 and len(report) == 51 and not set(fit) & set(report)
    assert sorted([*fit, *report]) == list(range(101))
    np.testing.assert_array_equal(split_indices(101, 0.5, seed=3)[0], fit)
    assert not np.array_equal(split_indices(101, 0.5, seed=4)[0], fit)


def test_calibrate_lowers_held_out_ece_and_reports_before_after():
    z, labels = _sampled(n=4000, seed=5)
    fit = calibrate((z * 3.0)[:, None], labels, temperature=1.0)  # over-confident model
    run = fit.report["runs"]["image"]
    assert fit.temperature == pytest.approx(3.0, rel=0.1)
    assert fit.report["fit_images"] + fit.report["report_images"] == 4000
    assert run["after"]["ece"] < run["before"]["ece"] / 3 and run["after"]["nll"] < run["before"]["nll"]
    assert run["after"]["top1"] == run["before"]["top1"]  # a temperature never changes the ranking
    # refitting a calibrated model: T stays (the logits it sees are already divided by the saved T)
    again = calibrate(z[:, None], labels, temperature=3.0)
    assert again.temperature == pytest.approx(3.0, rel=0.1)


@pytest.fixture(scope="module")
def calibrated(trained_model_dir, prepared_demo, demo_prior, tmp_path_factory):
    """A copy of the demo model, calibrated by calibrate.py on the demo's val split (with the prior)."""
    model = tmp_path_factory.mktemp("calibrated") / "model"
    shutil.copytree(trained_model_dir, model)
    weights = (model / "model.safetensors").read_bytes()
    args = ["--model_dir", str(model), "--dataset_dir", str(prepared_demo), "--geo_prior", str(demo_prior)]
    assert calibrate_main([*args, "--no_progress", "--num_workers", "0"]) == 0
    assert (model / "model.safetensors").read_bytes() == weights  # weights untouched
    return model


def test_calibrate_command_saves_values_and_reports(calibrated, capsys):
    config = json.loads((calibrated / "config.json").read_text())
    report = json.loads((calibrated / "calibration.json").read_text())
    assert config["temperature"] == report["temperature"]["after"] != 1.0
    assert config["fusion_weight"] == report["fusion_weight"]["after"] > 0
    assert report["fit_images"] + report["report_images"] == 16 and report["fit_images"] == 8
    assert set(report["runs"]) == {"image", "fused"}
    for run in report["runs"].values():
        assert {"ece", "nll", "top1", "backoff_precision", "backoff_coverage"} <= set(run["before"])


def test_temperature_applied_identically_by_predict_page_and_pipeline(
    calibrated, trained_model_dir, demo_root, tmp_path
):
    from transformers import pipeline

    from inat_hf.app import ClassifierPage, PageInputs

    photos = sorted((demo_root / "val").rglob("*.jpg"))[:4]
    out = tmp_path / "preds.json"
    assert predict_main(["--model_dir", str(calibrated), *map(str, photos), "--top_k", "3", "--output", str(out)]) == 0
    ours = {p["file"]: [(x["label"], x["probability"]) for x in p["predictions"]] for p in json.loads(out.read_text())}

    page = ClassifierPage.from_pretrained(str(calibrated), tta_views=2)
    pipe = pipeline("image-classification", model=str(calibrated), device="cpu")
    raw = pipeline("image-classification", model=str(trained_model_dir), device="cpu")
    for photo in photos:
        expected = ours[str(photo)]
        shown = page.classify(PageInputs(photo=str(photo))).label  # {"name (common)": probability}
        assert [round(p, 6) for p in list(shown.values())[:3]] == pytest.approx([p for _, p in expected], abs=2e-6)
        theirs = pipe(str(photo), top_k=3)
        assert [r["label"] for r in theirs] == [name for name, _ in expected]
        assert [r["score"] for r in theirs] == pytest.approx([p for _, p in expected], abs=2e-6)
        before = raw(str(photo), top_k=3)  # the uncalibrated model: other probabilities (the test can fail)
        assert abs(before[0]["score"] - theirs[0]["score"]) > 1e-3


def test_pipeline_and_training_forward_see_temperature_only_in_eval(calibrated):
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(calibrated)
    x = torch.randn(2, 3, 32, 32)
    t = model.config.temperature
    model.eval()
    with torch.no_grad():
        raw = model(pixel_values=x, apply_temperature=False).logits
        torch.testing.assert_close(model(pixel_values=x).logits, raw / t)
        model.train()  # training: raw logits, and the loss on them
        out = model(pixel_values=x, labels=torch.tensor([0, 1]))
    model.eval()
    assert not torch.allclose(out.logits, raw / t)
    assert torch.isfinite(out.loss)


def test_predict_flags_unusual_answers_with_a_column(calibrated, demo_prior, demo_root, tmp_path, capsys):
    photos = sorted((demo_root / "val").rglob("*.jpg"))[:3]
    out = tmp_path / "preds.csv"
    args = ["--model_dir", str(calibrated), "--geo_prior", str(demo_prior), *map(str, photos), "--output", str(out)]
    # far from every demo range, in the southern winter: everything is rare there; --unusual_below 1e9 flags all
    assert (
        predict_main([*args, "--lat", "-60", "--lon", "-150", "--date", "2020-07-01", "--unusual_below", "1e9"]) == 0
    )
    table = pd.read_csv(out)
    assert table["geo_unusual_here"].all() and (table["geo_prior_ratio"] > 0).all()
    assert capsys.readouterr().out.count("unusual here and now") == 3
    assert predict_main([*args, "--lat", "-60", "--lon", "-150", "--unusual_below", "0"]) == 0
    assert not pd.read_csv(out)["geo_unusual_here"].any()
    assert "unusual here and now" not in capsys.readouterr().out
