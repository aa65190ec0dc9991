"""The `evaluate` module (inat_hf/inference/inat_metrics) loads offline and agrees with the numpy metrics."""

import numpy as np
import pytest

from inat_hf.inference import INAT_METRICS_PATH
from inat_hf.inference import metrics as M


def test_evaluate_load_offline_matches_numpy_metrics():
    evaluate = pytest.importorskip("evaluate")
    rng = np.random.default_rng(0)
    n, c = 500, 20
    labels = rng.integers(0, c, n)
    scores = rng.random((n, c)) + np.eye(c)[labels] * rng.random((n, 1)) * 2
    probs = scores / scores.sum(1, keepdims=True)
    topk = np.argsort(-probs, axis=1)[:, :5]
    conf = probs[np.arange(n), topk[:, 0]]
    groups = {"genus": np.arange(c) // 2, "family": np.arange(c) // 5}

    metric = evaluate.load(INAT_METRICS_PATH)
    result = metric.compute(predictions=topk, references=labels, confidences=conf, rank_groups=groups)

    expected = M.topk_accuracy(topk, labels)
    expected["ece"] = M.expected_calibration_error(conf, topk[:, 0] == labels)
    expected.update({f"accuracy_{r}": v for r, v in M.hierarchical_accuracy(labels, topk[:, 0], groups).items()})
    assert result.keys() == expected.keys()
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-12), key
    assert 0 < result["top1"] < result["top3"] < result["top5"] <= 1
    assert result["accuracy_family"] >= result["accuracy_genus"] >= result["top1"]
