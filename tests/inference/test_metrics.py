"""inat_hf.inference.metrics against hand computations on small fixed arrays."""

import math

import numpy as np
import pytest

from inat_hf.data.taxonomy import Taxonomy
from inat_hf.inference import metrics as M
from inat_hf.models import InatConfig


def test_topk_accuracy_hand_computed():
    topk = np.array([[0, 1, 2], [2, 0, 1], [1, 2, 0], [2, 1, 0]])
    labels = np.array([0, 0, 0, 3])
    # row 0: hit at 1; row 1: hit at 2; row 2: hit at 3; row 3: label 3 never predicted
    assert M.topk_accuracy(topk, labels, ks=(1, 2, 3)) == {"top1": 0.25, "top2": 0.5, "top3": 0.75}
    # k > K clamps to K (documented): top5 == top3 here
    assert M.topk_accuracy(topk, labels)["top5"] == 0.75
    # a [N] array is K = 1
    assert M.topk_accuracy(np.array([0, 1]), np.array([0, 0]), ks=(1, 5)) == {"top1": 0.5, "top5": 0.5}


def test_topk_accuracy_fewer_classes_than_k_is_exact():
    # 3 classes, full ranking given: every label is within the 3 columns, so top-5 is 1.0
    topk = np.array([[2, 1, 0], [0, 2, 1]])
    assert M.topk_accuracy(topk, np.array([0, 1]))["top5"] == 1.0


def test_topk_accuracy_edge_cases():
    assert math.isnan(M.topk_accuracy(np.zeros((0, 5), int), np.zeros(0, int))["top1"])
    with pytest.raises(ValueError, match="k must be >= 1"):
        M.topk_accuracy(np.zeros((2, 5), int), np.zeros(2, int), ks=(0,))
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        M.topk_accuracy(np.zeros((2, 5), int), np.zeros(3, int))


def test_per_class_metrics_hand_computed_including_absent_class():
    y_true = np.array([0, 0, 1, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 1])
    pc = M.per_class_metrics(y_true, y_pred, num_labels=4)  # class 3: absent and never predicted
    np.testing.assert_array_equal(pc["support"], [2, 3, 1, 0])
    np.testing.assert_array_equal(pc["predicted"], [2, 4, 0, 0])
    np.testing.assert_array_equal(pc["correct"], [1, 2, 0, 0])
    np.testing.assert_allclose(pc["accuracy"], [1 / 2, 2 / 3, 0, 0])
    np.testing.assert_allclose(pc["precision"], [1 / 2, 2 / 4, 0, 0])
    np.testing.assert_allclose(pc["recall"], [1 / 2, 2 / 3, 0, 0])
    np.testing.assert_allclose(pc["f1"], [1 / 2, 4 / 7, 0, 0])
    macro = M.macro_averages(pc)  # over the 3 present classes
    assert macro["macro_recall"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert macro["macro_precision"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)


def test_classification_report_lists_every_label():
    text = M.classification_report_text(np.array([0, 1]), np.array([0, 0]), ["Apis", "Bombus", "Vespa"])
    for name in ("Apis", "Bombus", "Vespa", "macro avg"):
        assert name in text


RANKS = {
    # labels: 0 Turdus merula, 1 Turdus migratorius, 2 Parus major, 3 Vulpes vulpes
    "species": ["Turdus merula", "Turdus migratorius", "Parus major", "Vulpes vulpes"],
    "genus": ["Turdus", "Turdus", "Parus", "Vulpes"],
    "family": ["Turdidae", "Turdidae", "Paridae", "Canidae"],
    "order": ["Passeriformes", "Passeriformes", "Passeriformes", "Carnivora"],
    "class": ["Aves", "Aves", "Aves", "Mammalia"],
    "phylum": ["Chordata"] * 4,
}
# right species; wrong species, right genus; right order only; a bird predicted for a fox
Y_TRUE = np.array([0, 0, 0, 3])
Y_PRED = np.array([0, 1, 2, 0])
EXPECTED_HIER = {"species": 1 / 4, "genus": 2 / 4, "family": 2 / 4, "order": 3 / 4, "class": 3 / 4, "phylum": 1.0}


def test_hierarchical_accuracy_from_config_taxonomy():
    config = InatConfig(
        backbone="resnet10t",
        id2label=dict(enumerate(RANKS["species"])),
        taxonomy={"rank": "species", "ranks": RANKS},
    )
    groups = Taxonomy.from_config(config).rank_groups()
    assert list(groups) == ["species", "genus", "family", "order", "class", "phylum"]  # finest first
    assert M.hierarchical_accuracy(Y_TRUE, Y_PRED, groups) == EXPECTED_HIER


def test_ece_hand_computed_15_bins():
    confidence = np.array([0.95, 0.95, 0.55, 0.55, 0.55, 0.2])
    correct = np.array([True, False, True, True, False, False])
    # bins (14/15, 1]: n=2 acc 1/2 conf .95; (8/15, 9/15]: n=3 acc 2/3 conf .55; (2/15, 3/15]: n=1 acc 0 conf .2
    # (0.2 is exactly the right edge of bin 2: bins are right-closed)
    expected = (2 * abs(0.5 - 0.95) + 3 * abs(2 / 3 - 0.55) + 1 * abs(0 - 0.2)) / 6
    assert M.expected_calibration_error(confidence, correct) == pytest.approx(expected, abs=1e-12)
    data = M.reliability_data(confidence, correct)
    assert len(data.edges) == 16 and data.counts.sum() == 6
    np.testing.assert_array_equal(np.nonzero(data.counts)[0], [2, 8, 14])
    np.testing.assert_allclose(data.accuracy[[2, 8, 14]], [0, 2 / 3, 1 / 2])
    np.testing.assert_allclose(data.mean_confidence[[2, 8, 14]], [0.2, 0.55, 0.95])
    assert np.isnan(data.accuracy[0])


def test_ece_perfect_calibration_is_zero_and_logits_are_rejected():
    assert M.expected_calibration_error(np.ones(4), np.ones(4, bool)) == 0.0
    assert M.expected_calibration_error(np.full(4, 0.5), np.array([1, 0, 1, 0], bool)) == 0.0
    assert M.expected_calibration_error(np.array([0.0]), np.array([False])) == 0.0  # 0 falls in the first bin
    with pytest.raises(ValueError, match="probabilities"):
        M.expected_calibration_error(np.array([3.2]), np.array([True]))


def test_confusion_sparse_dense_and_most_confused():
    y_true = np.array([0, 0, 1, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 0, 0, 1, 1, 1])
    dense = M.confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(dense, [[1, 1, 0], [2, 1, 0], [0, 2, 0]])
    true, pred, count = M.sparse_confusion(y_true, y_pred, 3)
    rebuilt = np.zeros((3, 3), int)
    rebuilt[true, pred] = count
    np.testing.assert_array_equal(rebuilt, dense)
    assert len(count) == 5  # only pairs that occur
    mt, mp, mc = M.most_confused(true, pred, count, k=2)
    # off-diagonal, most frequent first, ties broken by true label
    assert list(zip(mt, mp, mc)) == [(1, 0, 2), (2, 1, 2)]
    groups = np.array([0, 0, 1])  # labels 0, 1 -> group 0; 2 -> group 1
    grouped = M.confusion_matrix(groups[y_true], groups[y_pred], 2)
    np.testing.assert_array_equal(grouped, [[5, 0], [2, 0]])


def test_sparse_confusion_scales_with_pairs_not_classes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10_000, 5000)
    true, pred, count = M.sparse_confusion(y, y, 10_000)
    assert count.sum() == 5000 and len(count) == len(np.unique(y))  # no 10k x 10k matrix anywhere
