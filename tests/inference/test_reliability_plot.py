"""The reliability diagram: the gap bars look the same in the plot and in the legend, over- or underconfident."""

import dataclasses
import json
from unittest import mock

import numpy as np
from matplotlib.figure import Figure

from inat_hf.inference.metrics import ReliabilityData
from inat_hf.inference.reports import _json_ready, plot_reliability


def test_gap_bars_match_the_legend_and_never_blend_with_accuracy(tmp_path):
    edges = np.linspace(0, 1, 5)
    data = ReliabilityData(
        edges=edges,
        counts=np.array([0, 10, 10, 10]),
        mean_confidence=np.array([np.nan, 0.4, 0.6, 0.9]),
        accuracy=np.array([np.nan, 0.6, 0.5, 0.7]),  # underconfident in bin 1, overconfident in bins 2-3
        ece=0.1,
    )
    figures = []
    original = Figure.savefig

    def capture(fig, *args, **kwargs):
        figures.append(fig)
        return original(fig, *args, **kwargs)

    with mock.patch.object(Figure, "savefig", capture):
        plot_reliability(data, tmp_path / "r.png", "t")
    top = figures[0].axes[0]
    legend = {
        text.get_text(): handle for text, handle in zip(top.get_legend().get_texts(), top.get_legend().legend_handles)
    }
    gap_label = next(label for label in legend if label.startswith("gap"))
    gap_bars = [c for c in top.containers if c.get_label() == gap_label][0]
    assert len(gap_bars) == 3
    for bar in gap_bars:
        # no fill: where a gap lies inside the accuracy bar, a translucent fill would show a colour the legend lacks
        assert bar.get_facecolor()[3] == 0 and bar.get_hatch() == legend[gap_label].get_hatch()
        assert bar.get_edgecolor() == legend[gap_label].get_edgecolor()
    spans = sorted((round(b.get_y(), 6), round(b.get_y() + b.get_height(), 6)) for b in gap_bars)
    assert spans == [(0.4, 0.6), (0.5, 0.6), (0.7, 0.9)]  # from min(acc, conf) to max(acc, conf)


def test_reliability_in_summary_json_is_valid_json_with_null_for_empty_bins():
    data = ReliabilityData(
        edges=np.linspace(0, 1, 3),
        counts=np.array([0, 2]),
        mean_confidence=np.array([np.nan, 0.8]),
        accuracy=np.array([np.nan, 0.5]),
        ece=0.3,
    )
    text = json.dumps(_json_ready(dataclasses.asdict(data)), allow_nan=False)
    assert json.loads(text)["accuracy"] == [None, 0.5] and json.loads(text)["counts"] == [0, 2]


def test_every_rank_shows_in_the_precision_coverage_plot_when_their_curves_coincide(tmp_path):
    """Ranks with the same accuracy draw the same curve: each rank's colour must still be visible."""
    from PIL import Image

    from inat_hf.inference.backoff import plot_precision_coverage

    rng = np.random.default_rng(0)
    ranks = ["species", "genus", "family", "order"]
    conf = np.repeat(rng.uniform(size=(200, 1)), len(ranks), axis=1)
    correct = np.repeat(rng.uniform(size=(200, 1)) < conf[:, :1], len(ranks), axis=1)
    plot_precision_coverage({"image": (conf, correct)}, ranks, 0.8, tmp_path / "pc.png")
    pixels = np.asarray(Image.open(tmp_path / "pc.png").convert("RGB"), dtype=float).reshape(-1, 3)
    from matplotlib.colors import to_rgb

    for r in range(len(ranks)):
        colour = np.array(to_rgb(f"C{r}")) * 255
        # the legend's line alone is ~30 pixels: a rank drawn only there would stay under this count
        assert (np.abs(pixels - colour).max(axis=1) < 8).sum() > 300, f"{ranks[r]} (C{r}) does not show"
