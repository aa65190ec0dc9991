"""Every consumer of the taxonomy (metrics, Trainer metrics, reports, back-off, prediction output) agrees with its
owner, :class:`inat_hf.data.taxonomy.Taxonomy`, on the ranks and their order -- whatever order the config lists
them in."""

import json

import numpy as np
import pandas as pd
import torch

from inat_hf.data.taxonomy import RANKS, Taxonomy
from inat_hf.inference.backoff import RankGroups, backoff_answer
from inat_hf.inference.evaluator import TopKComputeMetrics, TopKPredictions, compute_metrics
from inat_hf.inference.reports import write_evaluation_report
from inat_hf.models import InatConfig

SPECIES = ["Turdus merula", "Turdus migratorius", "Parus major", "Vulpes vulpes", "Sciurus vulgaris"]
# The config lists the ranks fine to coarse and shuffled; the owner's order is coarse to fine.
RANKS_SHUFFLED = {
    "species": SPECIES,
    "order": ["Passeriformes", "Passeriformes", "Passeriformes", "Carnivora", "Rodentia"],
    "genus": ["Turdus", "Turdus", "Parus", "Vulpes", "Sciurus"],
    "kingdom": ["Animalia"] * 5,
    "class": ["Aves", "Aves", "Aves", "Mammalia", "Mammalia"],
    "family": ["Turdidae", "Turdidae", "Paridae", "Canidae", "Sciuridae"],
    "phylum": ["Chordata"] * 5,
}
FINE_TO_COARSE = list(reversed(RANKS))


def _config():
    return InatConfig(
        backbone="resnet10t",
        id2label=dict(enumerate(SPECIES)),
        taxonomy={"rank": "species", "ranks": RANKS_SHUFFLED, "category_ids": [[i] for i in range(5)]},
    )


def _predictions():
    # true: 0 0 3 4; predicted: right, same genus, another mammal order, right
    indices = np.array([[0, 1, 2], [1, 0, 2], [4, 3, 0], [4, 3, 2]])
    probs = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.8, 0.1, 0.1]])
    return TopKPredictions(indices, probs, np.array([0, 0, 3, 4]))


def test_consumers_use_the_owners_rank_order(tmp_path):
    config = _config()
    taxonomy = Taxonomy.from_config(config)
    assert list(taxonomy.rank_groups()) == FINE_TO_COARSE

    # prediction output and the page: the lineage, coarse to fine
    assert list(taxonomy.describe(0)["taxonomy"]) == list(RANKS)

    # back-off goes up the tree in the same order and stops at the first rank that is sure
    groups = RankGroups.from_taxonomy(taxonomy)
    assert groups.ranks == FINE_TO_COARSE[:-2]  # phylum and kingdom: every label shares them, never an answer
    answers = backoff_answer(torch.tensor([[0.45, 0.45, 0.1, 0.0, 0.0]]), groups, 0.8)
    assert (answers[0]["rank"], answers[0]["taxon"]) == ("genus", "Turdus")

    # metrics, as the Trainer reports them and as evaluate.py computes them
    preds = _predictions()
    trainer_metrics = TopKComputeMetrics(config)(
        type("EvalPrediction", (), {"predictions": (preds.indices, preds.probs), "label_ids": preds.labels})
    )
    assert [k for k in trainer_metrics if k.startswith("acc_")] == [f"acc_{r}" for r in FINE_TO_COARSE]
    result = compute_metrics(preds, 5, rank_groups=taxonomy.rank_groups())
    assert list(result.summary["hierarchical_accuracy"]) == FINE_TO_COARSE
    assert result.summary["hierarchical_accuracy"]["order"] == 3 / 4

    # reports: the hierarchical table, the finest shared rank of confused pairs and the coarse confusion's rank
    summary = write_evaluation_report(
        tmp_path,
        runs={"no_tta": preds},
        metrics={"no_tta": result},
        primary="no_tta",
        taxonomy=taxonomy,
        image_ids=[0, 1, 2, 3],
        files=["a", "b", "c", "d"],
        info={"split": "val", "num_images": 4},
        max_confusion_labels=2,
    )
    assert pd.read_csv(tmp_path / "hierarchical_accuracy.csv")["rank"].tolist() == FINE_TO_COARSE
    confused = pd.read_csv(tmp_path / "most_confused.csv", keep_default_na=False)
    assert dict(zip(confused["true_label"], confused["shared_rank"])) == {
        "Turdus merula": "genus",
        "Vulpes vulpes": "class",
    }
    # order has 3 groups > 2: the next coarser rank with at most 2 groups
    assert (tmp_path / "confusion_class.csv").is_file() and "confusion_class.csv" in summary["files"]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert list(saved["hierarchical_accuracy"]) == FINE_TO_COARSE
