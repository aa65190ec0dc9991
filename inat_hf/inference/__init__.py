"""Inference: the one inference path (:mod:`.tta`: view logits -> TTA average -> optional location fusion ->
top-k), :class:`~.predictor.Predictor`, streaming evaluation (:mod:`.evaluator`), metrics, reports, back-off and
the competition submission. Import the submodules you need: this package imports nothing heavy, so the commands
can read its constants (e.g. the back-off threshold) before torch is imported.
"""

import os

# The metrics as an `evaluate` module: evaluate.load(INAT_METRICS_PATH) works offline.
INAT_METRICS_PATH = os.path.join(os.path.dirname(__file__), "inat_metrics")
