"""inat_hf's classification metrics as an ``evaluate`` module: top-1/3/5, accuracy at every taxonomic rank, ECE.

Loads offline from its path inside the package::

    metric = evaluate.load(inat_hf.inference.INAT_METRICS_PATH)
    metric.compute(predictions=topk_indices, references=labels, confidences=top1_probs,
                   rank_groups=Taxonomy.from_config(config).rank_groups())

The figures come from :mod:`inat_hf.inference.metrics`, which evaluate.py and the Trainer call directly (``evaluate``
encodes its inputs into Arrow one by one first, which costs far more than the metrics).
"""

import datasets
import evaluate
import numpy as np

from inat_hf.inference import metrics as M

_DESCRIPTION = __doc__
_KWARGS_DESCRIPTION = """
Args:
    predictions: per image, the top-k label indices, best first (k >= 5 for top-5).
    references: per image, the true label index.
    confidences: per image, the probability of the top-1 prediction (for ECE).
    rank_groups: optional {rank: array [num_labels] of group ids} (``Taxonomy.rank_groups()``): accuracy at every
        rank, the coarser prediction derived from the top-1 label.
    n_bins: equal-width confidence bins of the ECE (default 15).
Returns:
    top1, top3, top5, ece, and ``accuracy_<rank>`` for every rank in ``rank_groups``.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class InatMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int64")),
                    "references": datasets.Value("int64"),
                    "confidences": datasets.Value("float64"),
                }
            ),
        )

    def _compute(self, predictions, references, confidences, rank_groups=None, n_bins=M.DEFAULT_CALIBRATION_BINS):
        topk = np.asarray(predictions, dtype=np.int64)
        labels = np.asarray(references, dtype=np.int64)
        confidences = np.asarray(confidences, dtype=np.float64)
        result = dict(M.topk_accuracy(topk, labels))
        result["ece"] = M.expected_calibration_error(confidences, topk[:, 0] == labels, n_bins=n_bins)
        if rank_groups:
            for rank, accuracy in M.hierarchical_accuracy(labels, topk[:, 0], rank_groups).items():
                result[f"accuracy_{rank}"] = accuracy
        return result
