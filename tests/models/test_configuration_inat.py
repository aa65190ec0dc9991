import json

import pytest
import timm
from transformers import AutoConfig

from inat_hf.models import InatConfig

from .conftest import LABELS, tiny_config


def _taxonomy(n=3):
    return {
        "rank": "species",
        "ranks": {
            "kingdom": ["Animalia"] * n,
            "order": ["Hymenoptera"] * n,
            "genus": ["Apis", "Bombus", "Vespa"][:n],
            "species": LABELS[:n],
        },
        "common_names": ["honey bee", "buff-tailed bumblebee", "European hornet"][:n],
        "category_ids": [[1], [2], [3]][:n],
    }


def test_defaults():
    config = InatConfig()
    assert config.model_type == "inat"
    assert config.backbone == "resnet50"
    assert config.attn_layer == "se"
    assert config.rd_ratio == 1 / 16
    assert config.head_hidden_sizes == [1024, 512]
    assert config.drop_rate == 0.3 and config.head_batch_norm is True
    assert (config.focal_gamma, config.focal_alpha, config.label_smoothing) == (2.0, None, 0.1)
    assert config.label_rank == "species" and config.taxonomy is None
    # Preprocessing left unset follows timm's pretrained config of the backbone (resnet50 -> resnet50.a1_in1k).
    timm_cfg = timm.data.resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg("resnet50").to_dict())
    assert (config.image_size, config.crop_pct, config.interpolation) == (224, timm_cfg["crop_pct"], "bicubic")
    assert config.image_mean == list(timm_cfg["mean"]) and config.image_std == list(timm_cfg["std"])
    explicit = InatConfig(image_size=224, crop_pct=0.875)  # what the recipes set: unchanged
    assert (explicit.crop_pct, explicit.resize_shortest_edge) == (0.875, 256)


def test_labels_from_id2label_only():
    config = tiny_config()
    assert config.num_labels == 3
    assert config.label2id == {name: i for i, name in enumerate(LABELS)}


def test_save_load_round_trip(tmp_path):
    config = tiny_config(
        focal_alpha=[0.2, 0.3, 0.5], taxonomy=_taxonomy(), attn_layer="cbam", head_hidden_sizes=[], crop_pct=1.0
    )
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "inat" and saved["taxonomy"]["ranks"]["genus"] == ["Apis", "Bombus", "Vespa"]
    for loaded in (InatConfig.from_pretrained(tmp_path), AutoConfig.from_pretrained(tmp_path)):
        assert isinstance(loaded, InatConfig)
        assert {**loaded.to_dict(), "_name_or_path": ""} == config.to_dict()
        assert loaded.id2label == config.id2label and loaded.label2id == config.label2id


def test_from_pretrained_with_new_label_count_drops_per_label_fields(tmp_path):
    tiny_config(focal_alpha=[0.2, 0.3, 0.5], taxonomy=_taxonomy()).save_pretrained(tmp_path)
    config = InatConfig.from_pretrained(tmp_path, num_labels=5)
    assert config.num_labels == 5 and config.focal_alpha is None and config.taxonomy is None
    config = InatConfig.from_pretrained(tmp_path, id2label={0: "x", 1: "y"}, focal_alpha=[1.0, 2.0])
    assert config.label2id == {"x": 0, "y": 1} and config.focal_alpha == [1.0, 2.0]
    # same count: everything kept
    assert InatConfig.from_pretrained(tmp_path, num_labels=3).focal_alpha == [0.2, 0.3, 0.5]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(attn_layer="gc"), r"attn_layer='gc' is not supported; valid choices: se, eca, cbam, none"),
        (dict(backbone="convnext_atoo"), r"'convnext_atoo' is not a timm model name\. Did you mean 'convnext_atto'"),
        (dict(backbone="resnet50x"), r"not a timm model name\. Did you mean 'resnet50'"),
        (
            dict(backbone="vit_tiny_patch16_224", model_args={"img_size": 32}),
            r"attn_layer='se' needs a backbone with an NCHW feature map .* returns NLC features .* attn_layer='none'",
        ),
        (
            dict(backbone="vit_tiny_patch16_224", attn_layer="none"),
            r"takes inputs of a fixed size and image_size=32 .* model_args=\{'img_size': 32\}",
        ),
        (dict(model_args={"num_classes": 5}), r"model_args may not set \['num_classes'\]"),
        (dict(model_args={"drop_path_rate": 0.1}), r"drop_path_rate is a config field of its own"),
        (
            dict(model_args={"bogus_arg": 1}),
            r"timm cannot build backbone='resnet10t' with arguments \{'bogus_arg': 1\}",
        ),
        (dict(drop_path_rate=1.0), r"drop_path_rate=1.0 must be in \[0, 1\)"),
        (dict(rd_ratio=0), r"rd_ratio=0 must be a number in \(0, 1\]"),
        (dict(head_hidden_sizes=[64, 0]), r"head_hidden_sizes=\[64, 0\] must be a list of positive integers"),
        (dict(head_hidden_sizes=512), r"head_hidden_sizes=512 must be a list of positive integers"),
        (dict(drop_rate=1.0), r"drop_rate=1.0 must be in \[0, 1\)"),
        (dict(focal_gamma=-1.0), r"focal_gamma=-1.0 must be >= 0"),
        (dict(label_smoothing=1.0), r"label_smoothing=1.0 must be in \[0, 1\)"),
        (dict(focal_alpha=[1.0, 1.0]), r"focal_alpha has 2 entries but num_labels=3"),
        (dict(focal_alpha=[1.0, -1.0, 1.0]), r"focal_alpha=\[1.0, -1.0, 1.0\] must be a list of non-negative weights"),
        (dict(num_labels=5), r"num_labels=5 disagrees with id2label, which has 3 entries"),
        (dict(label2id={"a": 0}), r"label2id is not the inverse of id2label"),
        (dict(label_rank="tribe"), r"label_rank='tribe' is not a taxonomic rank; valid choices: kingdom, phylum"),
        (dict(crop_pct=0.0), r"crop_pct=0.0 must be in \(0, 1\]"),
        (dict(crop_pct=1.5), r"crop_pct=1.5 must be in \(0, 1\]"),
        (dict(interpolation="nearest"), r"interpolation='nearest' is not supported; valid choices: bicubic, bilinear"),
        (dict(image_size=0), r"image_size=0 must be a positive integer"),
        (dict(image_mean=[0.5, 0.5]), r"image_mean=\[0.5, 0.5\] must be a list of 3 numbers"),
        (dict(image_std=[0.5, 0.0, 0.5]), r"image_std=.* must be a list of 3 positive numbers"),
        (dict(focal_alpha=0.25), r"focal_alpha=0.25 must be a list of non-negative weights, one per label"),
        (dict(drop_rate="high"), r"drop_rate='high' must be in \[0, 1\)"),
        (dict(taxonomy=["Apis"]), r"taxonomy=\[.Apis.\] must be None or a dict like"),
        (
            dict(taxonomy={"ranks": {"genus": ["Apis"]}}),
            r"taxonomy\['ranks'\]\['genus'\] has 1 entries but num_labels=3",
        ),
        (dict(taxonomy={"common_names": ["a", "b"]}), r"taxonomy\['common_names'\] has 2 entries but num_labels=3"),
    ],
)
def test_invalid_values_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_config(**kwargs)


def test_attribute_changed_after_creation_is_caught_on_save(tmp_path):
    config = tiny_config()
    config.attn_layer = "bogus"
    with pytest.raises(ValueError, match="valid choices: se, eca, cbam, none"):
        config.save_pretrained(tmp_path)
