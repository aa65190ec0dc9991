"""Taxonomic back-off: "we're pretty sure this is in the genus …".

Species probabilities are summed up the model's :class:`~inat_hf.data.taxonomy.Taxonomy` (genus = sum of its
species, …); the answer is the finest rank whose best group reaches ``threshold`` (default 0.8), up to the coarsest
rank that still separates the labels: a rank where every label falls in one taxon (the kingdom Animalia of an
animals-only model) is always 100 % sure and says nothing, so it is never an answer ("not sure" instead). For evaluation,
:class:`BackoffAccumulator` keeps per image and rank the best group's probability and whether it holds the true
label (``[N, R]``): per-rank precision and coverage at any threshold follow (:func:`backoff_table`,
:func:`plot_precision_coverage`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch loads where it is used: the commands read DEFAULT_BACKOFF_THRESHOLD before it is imported
    import torch

    from ..data.taxonomy import Taxonomy

DEFAULT_BACKOFF_THRESHOLD = 0.8


@dataclasses.dataclass
class RankGroups:
    """Per rank (finest first) that separates the labels (two taxa or more): group names and ``label_to_group [C]``."""

    ranks: list[str]
    names: list[list[str]]
    label_to_group: list[np.ndarray]

    @classmethod
    def from_taxonomy(cls, taxonomy: Taxonomy) -> RankGroups:
        groups = {rank: taxonomy.groups(rank) for rank in taxonomy.rank_groups()}
        groups = {rank: (names, index) for rank, (names, index) in groups.items() if len(names) > 1}
        return cls(list(groups), [names for names, _ in groups.values()], [index for _, index in groups.values()])

    def best(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[B, C]`` label probabilities (numpy) -> per rank the best group's probability and index, both ``[B, R]``."""
        conf, best = [], []
        for index in self.label_to_group:
            # each group's summed probability: labels sorted by group, summed between the groups' starts
            order = np.argsort(index, kind="stable")
            starts = np.flatnonzero(np.r_[True, np.diff(index[order]) != 0])
            summed = np.add.reduceat(probs[:, order], starts, axis=1)  # [B, groups present], in group order
            present = index[order][starts]
            b = summed.argmax(-1)
            conf.append(summed[np.arange(len(summed)), b])
            best.append(present[b])
        return np.stack(conf, 1), np.stack(best, 1)


def backoff_answer(probs: np.ndarray, groups: RankGroups, threshold: float) -> list[dict[str, Any]]:
    """Per image of ``probs [B, C]`` (numpy): the finest rank whose best taxon reaches ``threshold`` (``None`` if
    none)."""
    conf, best = groups.best(np.asarray(probs, dtype=np.float32))
    answers = []
    for conf_i, best_i in zip(conf.tolist(), best.tolist()):
        r = next((r for r, c in enumerate(conf_i) if c >= threshold), None)
        if r is None:
            answers.append({"rank": None, "taxon": None, "probability": None})
        else:
            answers.append({"rank": groups.ranks[r], "taxon": groups.names[r][best_i[r]], "probability": conf_i[r]})
    return answers


def describe_backoff(answer: Mapping[str, Any] | None, threshold: float) -> str | None:
    """One :func:`backoff_answer` in words ("pretty sure: genus Turdus (85.0%)", or "not 80% sure of any rank"),
    as ``predict.py`` prints it and the web page shows it; ``None`` without a back-off (no taxonomy)."""
    if answer is None:
        return None
    if answer["rank"] is None:
        return f"not {threshold:.0%} sure of any rank"
    return f"pretty sure: {answer['rank']} {answer['taxon']} ({answer['probability']:.1%})"


class BackoffAccumulator:
    """Streams ``update(scores [B, C], labels [B])``; keeps ``conf [N, R]`` and ``correct [N, R]``."""

    def __init__(self, groups: RankGroups):
        self.groups = groups
        self._conf: list[np.ndarray] = []
        self._correct: list[np.ndarray] = []

    def update(self, scores: torch.Tensor, labels: torch.Tensor) -> None:
        conf, best = self.groups.best(scores.float().softmax(-1).cpu().numpy())
        labels = labels.cpu().numpy()
        truth = np.stack(self.groups.label_to_group, 1)[labels.clip(min=0)]
        self._conf.append(conf)
        self._correct.append((best == truth) & (labels >= 0)[:, None])

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
    return dict(threshold=threshold, per_rank=per_rank, no_answer=int((~answered).sum()), overall_precision=precision)


def plot_precision_coverage(
    runs: Mapping[str, tuple[np.ndarray, np.ndarray]], ranks: Sequence[str], threshold: float, path
) -> None:
    """Per rank, precision vs coverage of "answer at this rank when its best taxon reaches t" over t in [0, 1];
    the marker is the configured threshold. One panel per run (image-only, fused).

    Ranks often share a curve (a genus with one species per label set): coarser ranks are drawn first and wider, so
    a curve hidden under a finer one still shows as the band around it, and every colour of the legend is visible."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    thresholds = np.linspace(0, 1, 101)
    fig = Figure(figsize=(5.5 * len(runs), 4.5), layout="tight")
    axes = fig.subplots(1, len(runs), squeeze=False)
    for ax, (name, (conf, correct)) in zip(axes[0], runs.items()):
        for r in reversed(range(len(ranks))):  # coarsest first, widest; colour C<r> as the legend lists them
            above = conf[:, r, None] >= thresholds  # [N, T]
            with np.errstate(invalid="ignore", divide="ignore"):  # no image above t: no precision (nan)
                prec = (above & correct[:, r, None]).sum(0) / above.sum(0)
            width = 1.5 + 2.0 * r
            ax.plot(above.mean(0), prec, color=f"C{r}", linewidth=width, label=ranks[r], solid_capstyle="butt")
            at = conf[:, r] >= threshold
            if at.any():
                ax.plot([at.mean()], [correct[at, r].mean()], "o", color=f"C{r}", markersize=4 + width)
        ax.set(xlabel="coverage (fraction whose best taxon at this rank reaches t)", ylabel="precision")
        ax.set(
            title=f"back-off precision–coverage ({name}); ● threshold {threshold:g}", xlim=(0, 1.02), ylim=(0, 1.02)
        )
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], fontsize=8)  # finest first
    fig.savefig(path, dpi=100)
