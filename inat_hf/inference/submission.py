"""iNaturalist 2021 competition (Kaggle) submission files: a CSV with the header ``Id,Predicted`` and per test image
its id and the top-5 ORIGINAL iNat category ids (the model taxonomy's ``category_ids``, not label indices), best
first, space-separated::

    Id,Predicted
    100060,31 10 24 23 48
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..data.taxonomy import Taxonomy
from ..files import atomic_write
from .errors import InferenceError

SUBMISSION_HEADER = ("Id", "Predicted")
SUBMISSION_TOPK = 5


def category_id_lookup(taxonomy: Taxonomy) -> np.ndarray:
    """``[C]`` int64: the original iNat category id of every label. Call it early: raises :class:`InferenceError`
    when the taxonomy has no category ids or a label is not one category (a genus-level model's)."""
    ids = taxonomy.category_ids
    if ids is None:
        raise InferenceError(
            "a submission needs the original iNat category id of every label, but the model config has no "
            "taxonomy['category_ids']; train from a dataset prepared with inat_hf (its taxonomy is stored in the "
            "config) or set config.taxonomy."
        )
    multi = [i for i, c in enumerate(ids) if len(c) != 1]
    if multi:
        raise InferenceError(
            f"a submission needs one iNat category (species) per label, but this {taxonomy.rank}-level model has "
            f"{len(multi)} labels covering several or no categories (e.g. label {multi[0]}: {list(ids[multi[0]])}). "
            "Use a species-level model."
        )
    return np.array([c[0] for c in ids], dtype=np.int64)


def submission_rows(topk_indices: np.ndarray, lookup: np.ndarray, k: int = SUBMISSION_TOPK) -> list[str]:
    """``[N, K]`` label indices (best first) -> ``N`` strings of the first ``k`` category ids, space-separated."""
    topk_indices = np.asarray(topk_indices)
    if topk_indices.ndim != 2:
        raise ValueError(f"topk_indices must be [N, K], got shape {topk_indices.shape}")
    ids = lookup[topk_indices[:, :k]]  # [N, k]
    return [" ".join(str(int(i)) for i in row) for row in ids]


def write_submission(
    path: str | os.PathLike, image_ids: Sequence[Any], topk_indices: np.ndarray, lookup: np.ndarray
) -> str:
    """Write the competition CSV (see the module docstring) and return its path."""
    if len(image_ids) != len(topk_indices):
        raise ValueError(f"{len(image_ids)} image ids but {len(topk_indices)} predictions")
    path = os.fspath(path)
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f)
        writer.writerow(SUBMISSION_HEADER)
        writer.writerows(zip(image_ids, submission_rows(topk_indices, lookup)))
    return path
