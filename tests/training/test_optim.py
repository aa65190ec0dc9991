"""Differential learning rates per stage, layer decay, and no weight decay on norms and biases."""

import pytest
import torch

from inat_hf import InatConfig, InatForImageClassification
from inat_hf.training.optim import build_param_groups, stage_learning_rates


@pytest.fixture(scope="module")
def model():
    return InatForImageClassification(
        InatConfig(backbone="resnet10t", head_hidden_sizes=[8], num_labels=4, image_size=32)
    )


def test_stage_learning_rates_with_layer_decay(model):
    rates = stage_learning_rates(model.stage_names, learning_rate=1e-4, backbone_learning_rate=1e-5, layer_decay=0.5)
    assert rates == pytest.approx(
        {
            "head": 1e-4,
            "attention": 1e-4,
            "layer4": 1e-5,
            "layer3": 5e-6,
            "layer2": 2.5e-6,
            "layer1": 1.25e-6,
            "stem": 6.25e-7,
        }
    )


def test_param_groups(model):
    groups = build_param_groups(
        model, learning_rate=1e-4, backbone_learning_rate=1e-5, layer_decay=1.0, weight_decay=0.05
    )
    by_name = {g["name"]: g for g in groups}
    assert by_name["head"]["lr"] == 1e-4 and by_name["attention"]["lr"] == 1e-4
    assert by_name["layer4"]["lr"] == by_name["stem"]["lr"] == 1e-5
    # every trainable parameter in exactly one group
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == sum(1 for p in model.parameters() if p.requires_grad)
    # no weight decay on biases / norm weights; decay on conv / linear weights
    names = {id(p): n for n, p in model.named_parameters()}
    for group in groups:
        for p in group["params"]:
            if p.ndim <= 1:
                assert group["weight_decay"] == 0.0 and group["name"].endswith("_no_decay"), names[id(p)]
            else:
                assert group["weight_decay"] == 0.05, names[id(p)]
    assert any("bn" in names[id(p)] for p in by_name["layer2_no_decay"]["params"])


def test_frozen_parameters_are_left_out(model):
    for p in model.stage_parameters(["stem"])["stem"]:
        p.requires_grad_(False)
    try:
        groups = build_param_groups(model, learning_rate=1e-3, backbone_learning_rate=1e-4)
        assert "stem" not in {g["name"] for g in groups} and "stem_no_decay" not in {g["name"] for g in groups}
        torch.optim.AdamW(groups)  # a valid optimizer
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
