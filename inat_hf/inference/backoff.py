"""Taxonomic back-off: "we're pretty sure this is in the genus …".

Species probabilities are summed up the taxonomy (genus = sum of its species, …); the answer is the finest rank
whose best group reaches ``threshold`` (default :data:`DEFAULT_BACKOFF_THRESHOLD` = 0.8: at that rank the model
puts at least 80 % of its probability on one taxon). The ranks, their order and the groups come from the model's
:class:`~inat_hf.data.taxonomy.Taxonomy`, as for hierarchical accuracy.

:class:`BackoffAccumulator` keeps, per image and rank, the best group's probability and whether that group holds
the true label (``[N, R]``, a few bytes per image): the per-rank precision and coverage at any threshold, and the
precision–coverage curves, follow from those (:func:`backoff_table`, :func:`plot_precision_coverage`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch loads where it is used: the commands read DEFAULT_BACKOFF_THRESHOLD before it is imported
    import torch

    from ..data.taxonomy import Taxonomy

__all__ = [
    "DEFAULT_BACKOFF_THRESHOLD",
    "BackoffAccumulator",
    "RankGroups",
    "backoff_answer",
    "backoff_table",
    "describe_backoff",
]

DEFAULT_BACKOFF_THRESHOLD = 0.8


@dataclasses.dataclass
class RankGroups:
    """Per rank (finest first): group names and ``label_to_group [C]``."""

    ranks: list[str]
    names: list[list[str]]
    label_to_group: list[np.ndarray]

    @classmethod
    def from_taxonomy(cls, taxonomy: Taxonomy) -> RankGroups:
        groups = {rank: taxonomy.groups(rank) for rank in taxonomy.rank_groups()}
        return cls(list(groups), [names for names, _ in groups.values()], [index for _, index in groups.values()])

    def group_probs(self, probs: torch.Tensor, r: int) -> torch.Tensor:
        """``[B, C]`` label probabilities -> ``[B, G_r]`` summed per group of rank ``r``."""
        import torch

        index = torch.as_tensor(self.label_to_group[r], device=probs.device)
        out = torch.zeros(probs.shape[0], len(self.names[r]), device=probs.device, dtype=probs.dtype)
        return out.index_add_(1, index, probs)


def backoff_answer(probs: torch.Tensor, groups: RankGroups, threshold: float) -> list[dict[str, Any]]:
    """Per image of ``probs [B, C]``: the finest rank whose best taxon reaches ``threshold`` (``None`` if none)."""
    answers: list[dict[str, Any] | None] = [None] * probs.shape[0]
    for r, rank in enumerate(groups.ranks):
        conf, best = groups.group_probs(probs.float(), r).max(-1)
        for i in range(probs.shape[0]):
            if answers[i] is None and conf[i] >= threshold:
                answers[i] = {"rank": rank, "taxon": groups.names[r][int(best[i])], "probability": float(conf[i])}
    return [a or {"rank": None, "taxon": None, "probability": None} for a in answers]


def describe_backoff(answer: Mapping[str, Any] | None) -> str | None:
    """One :func:`backoff_answer` in words ("pretty sure: genus Turdus (85.0%)"), as ``predict.py`` prints it and
    the web page shows it; ``None`` when there is no answer (no taxonomy, or no rank reaches the threshold)."""
    if answer is None or answer["rank"] is None:
        return None
    return f"pretty sure: {answer['rank']} {answer['taxon']} ({answer['probability']:.1%})"


class BackoffAccumulator:
    """Streams ``update(scores [B, C], labels [B])``; keeps ``conf [N, R]`` and ``correct [N, R]``."""

    def __init__(self, groups: RankGroups):
        self.groups = groups
        self._conf: list[np.ndarray] = []
        self._correct: list[np.ndarray] = []

    def update(self, scores: torch.Tensor, labels: torch.Tensor) -> None:
        import torch

        probs = scores.float().softmax(-1)
        labels = labels.to(probs.device)
        conf, correct = [], []
        for r in range(len(self.groups.ranks)):
            c, best = self.groups.group_probs(probs, r).max(-1)
            truth = torch.as_tensor(self.groups.label_to_group[r], device=probs.device)[labels.clamp_min(0)]
            conf.append(c.cpu().numpy())
            correct.append((best == truth).cpu().numpy() & (labels >= 0).cpu().numpy())
        self._conf.append(np.stack(conf, 1))
        self._correct.append(np.stack(correct, 1))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        r = len(self.groups.ranks)
        if not self._conf:
            return np.zeros((0, r)), np.zeros((0, r), dtype=bool)
        return np.concatenate(self._conf), np.concatenate(self._correct)


def backoff_table(conf: np.ndarray, correct: np.ndarray, ranks: Sequence[str], threshold: float) -> dict[str, Any]:
    """Per rank: ``coverage`` (fraction of images whose answer stops at that rank) and ``precision`` (how often
    that answer is right); plus the images with no answer at any rank."""
    n = len(conf)
    reached = conf >= threshold  # [N, R], finest first
    stop = np.where(reached.any(1), reached.argmax(1), -1)
    per_rank = {}
    for r, rank in enumerate(ranks):
        at = stop == r
        per_rank[rank] = {
            "coverage": float(at.mean()) if n else float("nan"),
            "precision": float(correct[at, r].mean()) if at.any() else None,
            "images": int(at.sum()),
        }
    answered = stop >= 0
    precision = float(correct[answered, stop[answered]].mean()) if answered.any() else None
    return {
        "threshold": threshold,
        "per_rank": per_rank,
        "no_answer": int((~answered).sum()),
        "overall_precision": precision,
    }


def plot_precision_coverage(
    runs: Mapping[str, tuple[np.ndarray, np.ndarray]], ranks: Sequence[str], threshold: float, path
) -> None:
    """Per rank, precision vs coverage of "answer at this rank when its best taxon reaches t" over t in [0, 1];
    the marker is the configured threshold. One panel per run (image-only, fused)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thresholds = np.linspace(0, 1, 101)
    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4.5), squeeze=False)
    for ax, (name, (conf, correct)) in zip(axes[0], runs.items()):
        for r, rank in enumerate(ranks):
            cov = np.array([(conf[:, r] >= t).mean() for t in thresholds])
            prec = np.array(
                [correct[conf[:, r] >= t, r].mean() if (conf[:, r] >= t).any() else np.nan for t in thresholds]
            )
            (line,) = ax.plot(cov, prec, label=rank)
            at = conf[:, r] >= threshold
            if at.any():
                ax.plot([at.mean()], [correct[at, r].mean()], "o", color=line.get_color())
        ax.set_xlabel("coverage (fraction whose best taxon at this rank reaches t)")
        ax.set_ylabel("precision")
        ax.set_title(f"back-off precision–coverage ({name}); ● threshold {threshold:g}")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
