"""Predictor: checks before any work, per-file errors, and parity with transformers' pipeline."""

import glob
import shutil

import numpy as np
import pytest

from inat_hf.data.taxonomy import RANKS, Taxonomy
from inat_hf.inference.errors import InferenceError
from inat_hf.inference.predictor import Predictor, load_config, load_image_processor


def test_model_without_processor_is_a_clear_error(trained_model_dir, tmp_path):
    broken = tmp_path / "no_processor"
    shutil.copytree(trained_model_dir, broken)
    (broken / "preprocessor_config.json").unlink()
    with pytest.raises(InferenceError, match="has no image processor \\(preprocessor_config.json is missing\\)"):
        Predictor.from_pretrained(broken)
    with pytest.raises(InferenceError, match="save_pretrained"):
        load_image_processor(broken)


def test_missing_or_wrong_model_dir(tmp_path):
    with pytest.raises(InferenceError, match="does not exist"):
        load_config(tmp_path / "nope")
    with pytest.raises(InferenceError, match="config.json is missing"):
        load_config(tmp_path)


def test_taxonomy_of_a_trained_model(trained_model_dir):
    info = Taxonomy.from_config(load_config(trained_model_dir)).describe(1)
    assert info["label"] == "Turdus merula" and info["common_name"] == "Eurasian Blackbird"
    assert info["category_id"] == 23
    assert list(info["taxonomy"]) == list(RANKS)
    assert info["taxonomy"]["genus"] == "Turdus"


@pytest.fixture(scope="module")
def val_files(demo_root):
    return sorted(glob.glob(str(demo_root / "val" / "*" / "*.jpg")))


def test_predict_reports_bad_files_and_predicts_the_rest(trained_model_dir, val_files, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    images = [val_files[0], str(bad), *val_files[1:4]]
    predictor = Predictor.from_pretrained(trained_model_dir, device="cpu")
    results = list(predictor.predict(images, top_k=3, batch_size=2))
    assert [r.position for r in results] == [0, 1, 2, 3, 4]
    assert results[1].error is not None and "bad.jpg" in results[1].error and "could not decode" in results[1].error
    for r in results[:1] + results[2:]:
        assert r.error is None and r.indices.shape == (3,) and np.all(np.diff(r.probs) <= 0)


def test_backoff_uses_the_documented_default_threshold(trained_model_dir, val_files):
    from inat_hf.inference.backoff import DEFAULT_BACKOFF_THRESHOLD

    predictor = Predictor.from_pretrained(trained_model_dir, device="cpu")
    groups = predictor.backoff_groups
    default = [r.backoff for r in predictor.predict(val_files[:4], backoff=groups)]
    explicit = [
        r.backoff
        for r in predictor.predict(val_files[:4], backoff=groups, backoff_threshold=DEFAULT_BACKOFF_THRESHOLD)
    ]
    assert default == explicit and all(b["rank"] in RANKS for b in default)


def test_pipeline_and_predictor_agree_on_top1(trained_model_dir, val_files):
    from transformers import pipeline

    predictor = Predictor.from_pretrained(trained_model_dir, device="cpu")
    ours = list(predictor.predict(val_files, top_k=2, batch_size=8))
    pipe = pipeline("image-classification", model=str(trained_model_dir), device="cpu")
    theirs = pipe(val_files, top_k=2)
    names = predictor.taxonomy.labels
    ours_top1 = [names[r.indices[0]] for r in ours]
    assert ours_top1 == [t[0]["label"] for t in theirs]
    np.testing.assert_allclose([r.probs[0] for r in ours], [t[0]["score"] for t in theirs], atol=1e-4)
    # a meaningful comparison: confident, varied predictions
    assert len(set(ours_top1)) >= 4
    assert min(r.probs[0] - r.probs[1] for r in ours) > 1e-3
