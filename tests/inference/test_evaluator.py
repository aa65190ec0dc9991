"""Streaming evaluation: only [N, k] is kept; report_both's free no-TTA run; label-set checks; Trainer glue."""

import os

import numpy as np
import pytest
import torch

from inat_hf.data import load_prepared
from inat_hf.inference.errors import InferenceError
from inat_hf.inference.evaluator import (
    TopKAccumulator,
    TopKComputeMetrics,
    TopKPredictions,
    check_label_sets,
    compute_metrics,
    evaluate_split,
    preprocess_logits_for_metrics,
)
from inat_hf.inference.predictor import Predictor


def _arrays_held(obj):
    """Every numpy array / tensor an object holds (attributes, lists of them)."""
    for value in vars(obj).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (np.ndarray, torch.Tensor)):
                yield item


def test_accumulator_never_holds_n_by_c():
    num_classes, batch, batches = 10_000, 256, 20
    acc = TopKAccumulator(k=5, capacity=batch * batches)  # evaluate_split passes the split size
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(batch, num_classes, generator=gen)
    for i in range(batches):
        acc.update(base * (1 + i / batches), torch.randint(0, num_classes, (batch,), generator=gen))
        assert all(a.shape[-1] <= 5 or a.ndim == 1 for a in _arrays_held(acc))
    result = acc.result()
    n = batch * batches
    assert result.indices.shape == (n, 5) and result.probs.shape == (n, 5) and result.labels.shape == (n,)
    held = sum(a.nbytes for a in _arrays_held(acc))
    assert held < n * 100  # ~88 bytes per image, vs 40 kB per image for one float32 row of 10k logits


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc (Linux)")
def test_accumulator_memory_stays_flat():
    # Regression: keeping one small array per batch pinned each freed [B, C] score buffer in glibc's heap
    # (~12 MB of RSS per batch here, ~480 MB for these 40 batches); the preallocated buffers keep it flat.
    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    base = torch.randn(256, 10_000, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(256)
    for capacity in (40 * 256, None):  # known split size, and growth by doubling from the default
        acc = TopKAccumulator(k=5, capacity=capacity)
        before = rss_mb()
        for i in range(40):
            acc.update(base * (1 + i / 40), labels)  # a fresh [B, C] buffer each batch, as from a model
        assert rss_mb() - before < 100, capacity
        assert acc.result().indices.shape == (40 * 256, 5)


def test_accumulator_keeps_the_true_top_k():
    scores = torch.tensor([[0.0, 3.0, 1.0, 2.0], [5.0, 0.0, 0.0, 1.0]])
    acc = TopKAccumulator(k=5)  # more than the 4 classes: clamped
    acc.update(scores, torch.tensor([1, 2]))
    result = acc.result()
    np.testing.assert_array_equal(result.indices[0], [1, 3, 2, 0])
    np.testing.assert_array_equal(result.indices[1, :2], [0, 3])  # then a tie between 1 and 2
    np.testing.assert_allclose(result.probs, scores.softmax(-1).sort(-1, descending=True).values.numpy(), rtol=1e-6)
    # log-probabilities (tta_logits "prob") give the same probabilities
    acc2 = TopKAccumulator()
    acc2.update(scores.log_softmax(-1))
    np.testing.assert_allclose(acc2.result().probs, result.probs, rtol=1e-6)
    assert (acc2.result().labels == -1).all()  # no labels: unlabeled


@pytest.fixture(scope="module")
def predictor(trained_model_dir):
    return Predictor.from_pretrained(trained_model_dir, device="cpu")


@pytest.fixture(scope="module")
def val(prepared_demo):
    return load_prepared(prepared_demo).dataset["val"]


def test_evaluate_split_report_both_reuses_view_zero(predictor, val):
    both = evaluate_split(predictor, val, num_views=5, report_both=True, batch_size=5, progress=False)
    assert set(both.runs) == {"no_tta", "tta"} and both.num_images == val.num_rows == 16
    for preds in both.runs.values():
        assert preds.indices.shape == (16, 5) and preds.probs.shape == (16, 5)
        np.testing.assert_array_equal(preds.labels, val["label"])
    # the no-TTA run from view 0 of the TTA pass == a separate single-view evaluation
    single = evaluate_split(predictor, val, num_views=1, batch_size=7, progress=False)
    assert set(single.runs) == {"no_tta"}
    np.testing.assert_array_equal(both.runs["no_tta"].indices, single.runs["no_tta"].indices)
    np.testing.assert_allclose(both.runs["no_tta"].probs, single.runs["no_tta"].probs, atol=1e-5)
    # TTA does change the probabilities
    assert not np.allclose(both.runs["tta"].probs, both.runs["no_tta"].probs, atol=1e-4)
    tta_only = evaluate_split(predictor, val, num_views=3, batch_size=16, progress=False)
    assert set(tta_only.runs) == {"tta"}


def test_compute_metrics_labeled_partial_and_unlabeled():
    preds = TopKPredictions(
        indices=np.array([[0, 1], [1, 0], [1, 0], [0, 1]]),
        probs=np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.7, 0.3]], dtype=np.float32),
        labels=np.array([0, 0, -1, -1]),
    )
    result = compute_metrics(preds, 2, ks=(1, 2))
    assert result.summary["num_images"] == 4 and result.summary["num_labeled"] == 2
    assert result.summary["top1"] == 0.5 and result.summary["top2"] == 1.0
    assert "2 labeled of 4" in result.summary["accuracy_metrics"]
    np.testing.assert_array_equal(result.per_class["support"], [2, 0])
    # bins: 0.9 correct, 0.6 wrong -> (|1 - 0.9| + |0 - 0.6|) / 2
    assert result.summary["ece"] == pytest.approx(0.35, abs=1e-6)

    unlabeled = TopKPredictions(preds.indices, preds.probs, np.full(4, -1))
    skipped = compute_metrics(unlabeled, 2)
    assert "skipped" in skipped.summary["accuracy_metrics"] and "top1" not in skipped.summary
    assert skipped.per_class is None and skipped.reliability is None


def test_check_label_sets_says_which_labels_differ():
    check_label_sets(["a", "b"], ["a", "b"], model="m", dataset="d")
    with pytest.raises(InferenceError) as info:
        check_label_sets(["Apis", "Bombus", "Vespa"], ["Apis", "Bombus", "Formica"], model="m", dataset="d")
    message = str(info.value)
    assert "only in the model: 'Vespa'" in message and "only in the dataset: 'Formica'" in message
    assert "first difference is at index 2: model 'Vespa', dataset 'Formica'" in message and "\n" not in message
    with pytest.raises(
        InferenceError, match="index 0: model 'a', dataset 'b'; same labels, different order: 2 indices"
    ):
        check_label_sets(["a", "b"], ["b", "a"], model="m", dataset="d")
    with pytest.raises(InferenceError, match="index 1: model 'b', dataset none"):
        check_label_sets(["a", "b"], ["a"], model="m", dataset="d")


def test_trainer_glue_reduces_logits_and_computes_metrics(trained_model_dir):
    from transformers import EvalPrediction

    from inat_hf.inference.predictor import load_config

    config = load_config(trained_model_dir)
    logits = torch.randn(10, config.num_labels, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(10) % config.num_labels
    indices, probs = preprocess_logits_for_metrics(logits, labels)
    assert indices.shape == probs.shape == (10, 5)
    metrics = TopKComputeMetrics(config)(
        EvalPrediction(predictions=(indices.numpy(), probs.numpy()), label_ids=labels.numpy())
    )
    expected_top1 = (logits.argmax(-1) == labels).float().mean().item()
    assert metrics["top1"] == pytest.approx(expected_top1)
    assert {"top3", "top5", "ece", "macro_f1", "acc_species", "acc_genus", "acc_class"} <= set(metrics)
