"""Inference: TTA, streaming evaluation, metrics, reports, prediction and competition submissions.

* :mod:`~inat_hf.inference.tta` -- :func:`tta_logits` (one batched forward over ``B x V`` views), :func:`view_logits`,
  :func:`average_views`.
* :mod:`~inat_hf.inference.metrics` -- top-k, per-class, hierarchical accuracy, ECE / reliability, confusion counts.
* :mod:`~inat_hf.inference.predictor` -- :class:`Predictor` (checkpoint + preprocessing + options), label info.
* :mod:`~inat_hf.inference.evaluator` -- :func:`evaluate_split` (streaming top-k), :func:`compute_metrics`, Trainer glue.
* :mod:`~inat_hf.inference.reports` -- the ``test_results_<TIMESTAMP>/`` files.
* :mod:`~inat_hf.inference.submission` -- the iNat 2021 ``Id,Predicted`` file.

Import the submodules you need; only :mod:`tta` and :mod:`metrics` are imported here eagerly (they are light and used
by training).
"""

import os

from .metrics import expected_calibration_error, hierarchical_accuracy, topk_accuracy
from .tta import average_views, tta_logits, view_logits

# The metrics as an `evaluate` module: evaluate.load(INAT_METRICS_PATH) works offline.
INAT_METRICS_PATH = os.path.join(os.path.dirname(__file__), "inat_metrics")

__all__ = [
    "INAT_METRICS_PATH",
    "average_views",
    "expected_calibration_error",
    "hierarchical_accuracy",
    "topk_accuracy",
    "tta_logits",
    "view_logits",
]
