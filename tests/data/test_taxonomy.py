"""The taxonomy owner: one rank order, names and groups per rank, read back from a model config."""

import json

import numpy as np
import pytest
from transformers import PreTrainedConfig

from inat_hf.data.taxonomy import CATEGORY_RANK_KEYS, RANKS, Taxonomy
from inat_hf.models import InatConfig, configuration_geo, configuration_inat

SPECIES = ["Turdus merula", "Turdus migratorius", "Parus major", "Vulpes vulpes"]
# Deliberately not coarse to fine: the owner, not the insertion order, decides the order.
SCRAMBLED = {
    "genus": ["Turdus", "Turdus", "Parus", "Vulpes"],
    "kingdom": ["Animalia"] * 4,
    "species": SPECIES,
    "class": ["Aves", "Aves", "Aves", "Mammalia"],
    "family": ["Turdidae", "Turdidae", "Paridae", "Canidae"],
}


def test_the_shipped_model_files_use_the_owners_rank_order():
    assert configuration_inat.RANKS == RANKS
    assert configuration_geo.RANKS is configuration_inat.RANKS
    assert (*RANKS[:-1], "specific_epithet") == CATEGORY_RANK_KEYS


def test_ranks_names_and_groups_follow_the_owner_not_the_insertion_order():
    taxonomy = Taxonomy(rank="species", labels=SPECIES, ranks=dict(SCRAMBLED))
    assert list(taxonomy.ranks) == ["kingdom", "class", "family", "genus", "species"]
    assert taxonomy.available_ranks == ("kingdom", "class", "family", "genus", "species")
    assert list(taxonomy.rank_groups()) == ["species", "genus", "family", "class", "kingdom"]
    assert list(taxonomy.describe(3)["taxonomy"]) == ["kingdom", "class", "family", "genus", "species"]
    names, index = taxonomy.groups("class")
    assert names == ["Aves", "Mammalia"] and index.tolist() == [0, 0, 0, 1]
    assert taxonomy.names() == SPECIES and taxonomy.names("genus") == SCRAMBLED["genus"]
    with pytest.raises(ValueError, match=r"No per-label names for rank 'order'; available ranks: kingdom, class"):
        taxonomy.names("order")


def test_unknown_ranks_are_a_clear_error_for_the_owner_and_the_config():
    with pytest.raises(ValueError, match=r"Unknown rank\(s\) \['tribe'\] in the taxonomy; valid ranks: kingdom"):
        Taxonomy(rank="species", labels=SPECIES, ranks={**SCRAMBLED, "tribe": ["T"] * 4})
    with pytest.raises(ValueError, match=r"taxonomy\['ranks'\] has unknown rank\(s\) \['tribe'\]; valid ranks"):
        InatConfig(
            backbone="resnet10t",
            id2label=dict(enumerate(SPECIES)),
            taxonomy={"rank": "species", "ranks": {"tribe": ["T"] * 4}},
        )


def test_from_config_reads_the_taxonomy_an_inat_config_holds():
    taxonomy = {"rank": "genus", "ranks": {"genus": ["Apis", "Bombus"], "kingdom": ["Animalia"] * 2}}
    config = InatConfig(backbone="resnet10t", id2label={0: "Apis", 1: "Bombus"}, label_rank="genus", taxonomy=taxonomy)
    t = Taxonomy.from_config(config)
    assert (t.rank, t.labels, list(t.ranks), t.category_ids) == (
        "genus",
        ["Apis", "Bombus"],
        ["kingdom", "genus"],
        None,
    )
    assert t.common_names == [None, None] and t.describe(0)["category_id"] is None
    # without a taxonomy, the labels still form the label rank
    plain = Taxonomy.from_config(InatConfig(backbone="resnet10t", id2label={0: "a", 1: "b"}))
    assert list(plain.rank_groups()) == ["species"] and plain.ranks == {}


def test_a_plain_transformers_classifier_has_labels_but_no_rank():
    # ImageNet names two classes "crane": a plain classifier may repeat a name, a taxonomy may not.
    config = PreTrainedConfig(id2label={0: "crane", 1: "crane", 2: "kite"})
    t = Taxonomy.from_config(config)
    assert t.rank is None and t.labels == ["crane", "crane", "kite"]
    assert t.rank_groups() == {} and t.available_ranks == ()
    with pytest.raises(ValueError, match="labels must be unique"):
        Taxonomy(rank="species", labels=["crane", "crane"], ranks={})


def test_round_trip_and_validation():
    t = Taxonomy(
        rank="genus",
        labels=["A", "B"],
        ranks={"genus": ["A", "B"], "kingdom": ["K", "K"]},
        category_ids=[[1], [2, 3]],
        common_names=[None, None],
    )
    assert Taxonomy.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    assert list(t.to_dict()["ranks"]) == ["kingdom", "genus"]
    with pytest.raises(ValueError, match=r"'kingdom' has 1 entries, expected one per label \(2\)"):
        Taxonomy(rank="genus", labels=["A", "B"], ranks={"kingdom": ["K"]})
    with pytest.raises(ValueError, match=r"'category_ids' has 1 entries, expected one per label \(2\)"):
        Taxonomy(rank="genus", labels=["A", "B"], ranks={}, category_ids=[[1]])
    with pytest.raises(ValueError, match=r"Unknown label rank 'tribe'"):
        Taxonomy(rank="tribe", labels=[], ranks={})
    assert isinstance(t.groups()[1], np.ndarray)


def test_the_owner_validates_what_a_config_may_hold():
    """Taxonomy is where a config's taxonomy is validated: wrong rank, wrong types, with fix-it messages."""
    config = PreTrainedConfig(id2label={0: "Turdus", 1: "Parus"})
    config.label_rank = "genus"
    config.taxonomy = {"rank": "species"}
    with pytest.raises(ValueError, match=r"'rank' is the config's label_rank \('genus'\).*Pass label_rank="):
        Taxonomy.from_config(config)
    config.taxonomy = ["Turdus", "Parus"]
    with pytest.raises(ValueError, match="must be a dict like Taxonomy.to_dict()"):
        Taxonomy.from_config(config)
    config.taxonomy = {"ranks": ["Aves", "Aves"]}
    with pytest.raises(ValueError, match="'ranks' must map a rank to one name per label"):
        Taxonomy.from_config(config)
    config.taxonomy = {"ranks": {"class": "Aves"}}
    with pytest.raises(ValueError, match=r"'class' has a str, expected one per label \(2\)"):
        Taxonomy.from_config(config)
    config.taxonomy = {"rank": "genus", "ranks": {"class": ["Aves", "Aves"]}}
    assert Taxonomy.from_config(config).names("class") == ["Aves", "Aves"]
