"""Inference: TTA, streaming evaluation, metrics, reports, prediction and competition submissions.

* :mod:`~inat_hf.inference.tta` -- :func:`tta_logits` (one batched forward over ``B x V`` views), :func:`view_logits`,
  :func:`average_views`.
* :mod:`~inat_hf.inference.metrics` -- top-k, per-class, hierarchical accuracy, ECE / reliability, confusion counts.
* :mod:`~inat_hf.inference.predictor` -- :class:`Predictor` (checkpoint + preprocessing + options + taxonomy).
* :mod:`~inat_hf.inference.evaluator` -- :func:`evaluate_split` (streaming top-k), :func:`compute_metrics`, Trainer glue.
* :mod:`~inat_hf.inference.reports` -- the ``test_results_<TIMESTAMP>/`` files.
* :mod:`~inat_hf.inference.submission` -- the iNat 2021 ``Id,Predicted`` file.

Import the submodules you need; the names below load on first access (PEP 562), so that the commands can read
constants of this package (e.g. the back-off threshold) before torch is imported.
"""

import importlib
import os

# The metrics as an `evaluate` module: evaluate.load(INAT_METRICS_PATH) works offline.
INAT_METRICS_PATH = os.path.join(os.path.dirname(__file__), "inat_metrics")

_EXPORTS = {
    "expected_calibration_error": "metrics",
    "hierarchical_accuracy": "metrics",
    "topk_accuracy": "metrics",
    "average_views": "tta",
    "tta_logits": "tta",
    "view_logits": "tta",
}

__all__ = ["INAT_METRICS_PATH", *sorted(_EXPORTS)]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
