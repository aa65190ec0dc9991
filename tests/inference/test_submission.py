"""The iNat 2021 competition file: header, 5 space-separated original category ids per image."""

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from inat_hf.data.taxonomy import Taxonomy
from inat_hf.inference.errors import InferenceError
from inat_hf.inference.submission import category_id_lookup, submission_rows, write_submission
from inat_hf.models import InatConfig

LABELS = [
    "Parus major",
    "Turdus merula",
    "Turdus migratorius",
    "Anas platyrhynchos",
    "Vulpes vulpes",
    "Sciurus vulgaris",
]
IDS = [10, 23, 24, 31, 48, 52]


def taxonomy(category_ids=None, with_taxonomy=True):
    tax = {"rank": "species", "category_ids": category_ids or [[i] for i in IDS]} if with_taxonomy else None
    return Taxonomy.from_config(InatConfig(backbone="resnet10t", id2label=dict(enumerate(LABELS)), taxonomy=tax))


def test_submission_file_format(tmp_path):
    lookup = category_id_lookup(taxonomy())
    np.testing.assert_array_equal(lookup, IDS)
    topk = np.array([[3, 0, 2, 1, 5], [5, 4, 3, 2, 1]])  # label indices, best first
    path = write_submission(tmp_path / "sub" / "submission.csv", [100060, 100061], topk, lookup)
    text = Path(path).read_text()
    lines = text.splitlines()
    assert lines[0] == "Id,Predicted"
    assert lines[1:] == ["100060,31 10 24 23 52", "100061,52 48 31 24 23"]
    for row in csv.DictReader(io.StringIO(text)):
        ids = [int(x) for x in row["Predicted"].split(" ")]
        assert len(ids) == 5 and set(ids) <= set(IDS)


def test_submission_rows_keep_the_first_five():
    rows = submission_rows(np.arange(6)[None].repeat(2, 0), np.array(IDS))
    assert rows == ["10 23 24 31 48"] * 2


def test_submission_needs_species_category_ids():
    with pytest.raises(InferenceError, match="no taxonomy\\['category_ids'\\]"):
        category_id_lookup(taxonomy(with_taxonomy=False))
    genus_level = [[10], [23, 24], [24], [31], [48], [52]]
    with pytest.raises(InferenceError, match="one iNat category \\(species\\) per label.*label 1: \\[23, 24\\]"):
        category_id_lookup(taxonomy(category_ids=genus_level))
