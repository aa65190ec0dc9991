"""Training pieces on non-ResNet backbones: stage references, unfreezing and layer-decay groups from timm's groups."""

import pytest
import torch

from inat_hf.models import InatConfig, InatForImageClassification
from inat_hf.training.optim import build_param_groups
from inat_hf.training.recipe import InatTrainingArguments
from inat_hf.training.unfreezing import ProgressiveUnfreezingCallback, unfreezing_plan

FAMILIES = {
    "resnet": dict(backbone="resnet10t"),
    "convnext": dict(backbone="convnext_atto"),
    "mobilenet": dict(backbone="mobilenetv3_small_050"),
    "vit": dict(backbone="vit_tiny_patch16_224", model_args={"img_size": 32}, attn_layer="none"),
}


def make_model(family: str) -> InatForImageClassification:
    torch.manual_seed(0)
    config = InatConfig(num_labels=3, head_hidden_sizes=[16], image_size=32, **FAMILIES[family])
    return InatForImageClassification(config)


def plan(model, frozen_stages, unfreeze_schedule):
    args = InatTrainingArguments(
        output_dir="unused", use_cpu=True, frozen_stages=frozen_stages, unfreeze_schedule=unfreeze_schedule
    )
    return unfreezing_plan(args.frozen_stages, args.unfreeze_schedule, model.stage_names, model.backbone_stage_names)


def test_default_references_are_the_old_resnet_recipe():
    """'backbone' + '-1:1,-2:2,-3:3' on a ResNet is exactly the former default (stem..layer4; layer4:1,…)."""
    model = make_model("resnet")
    defaults = InatTrainingArguments(output_dir="unused", use_cpu=True)
    frozen, schedule = plan(model, defaults.frozen_stages, defaults.unfreeze_schedule)
    assert frozen == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert schedule == {"layer4": 1, "layer3": 2, "layer2": 3}
    # names, indices and 'backbone' mix; explicit terms win over 'backbone:E'
    frozen, schedule = plan(model, ["stem", "1", "layer2", "-2", "-1"], "layer4:1,-2:1,backbone:2")
    assert frozen == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert schedule == {"layer4": 1, "layer3": 1, "stem": 2, "layer1": 2, "layer2": 2}


def test_the_same_references_fit_other_backbones():
    convnext = make_model("convnext")
    frozen, schedule = plan(convnext, ["backbone"], "-1:1,-2:1,backbone:2")
    assert frozen == ["stem", "stages.0", "stages.1", "stages.2", "stages.3"]
    assert schedule == {"stages.3": 1, "stages.2": 1, "stem": 2, "stages.0": 2, "stages.1": 2}
    vit = make_model("vit")
    frozen, schedule = plan(vit, ["backbone"], "-1:1,backbone:3")
    assert len(frozen) == 13 and schedule["blocks.11"] == 1 and schedule["stem"] == 3
    with pytest.raises(ValueError, match=r"Unknown stage name 'layer4' in unfreeze_schedule; valid: stem, blocks\.0"):
        plan(vit, ["backbone"], "layer4:1")
    with pytest.raises(ValueError, match=r"Unknown stage name\(s\) \['-14'\] in frozen_stages.* 13 backbone stages"):
        plan(vit, ["-14"], "")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_layer_decay_groups_cover_every_parameter_once(family):
    model = make_model(family)
    groups = build_param_groups(model, learning_rate=1e-3, backbone_learning_rate=1e-4, layer_decay=0.5)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    lr = {g["name"]: g["lr"] for g in groups}
    stages = model.backbone_stage_names
    assert lr[stages[-1]] == pytest.approx(1e-4) and lr["head"] == pytest.approx(1e-3)
    assert lr[stages[0]] == pytest.approx(1e-4 * 0.5 ** (len(stages) - 1))  # stem: the most decayed


@pytest.mark.parametrize("family", ["mobilenet", "convnext", "vit"])
def test_unfreezing_by_group_names_freezes_exactly_those(family):
    """Permanently frozen stages: requires_grad off for exactly their parameters; temporarily frozen ones keep their
    weights (gradients discarded) and, where the family has BatchNorm, their running statistics."""
    model = make_model(family).train()
    stages = model.backbone_stage_names
    permanent, temporary = list(stages[:2]), stages[2]
    callback = ProgressiveUnfreezingCallback([*permanent, temporary], {temporary: 1})
    callback.setup(model)
    frozen_names = {n for s in permanent for n in model.stage_parameter_names([s])[s]}
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == frozen_names

    kept = {*permanent, temporary}
    kept_tensors = [f"{n}" for s in kept for n in model._stage_tensors[s]]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(build_param_groups(model, learning_rate=1e-2, backbone_learning_rate=1e-2))
    callback.on_train_begin(None, type("S", (), {"epoch": 0.0})(), None)
    for _ in range(2):  # what InatTrainer does around each step
        model.train()
        callback.prepare_step()
        loss = model(torch.randn(4, 3, 32, 32), labels=torch.tensor([0, 1, 2, 1])).loss
        loss.backward()
        callback.discard_frozen_grads()
        optimizer.step()
        optimizer.zero_grad()
    after = model.state_dict()
    for name in kept_tensors:
        assert torch.equal(before[name], after[name]), f"frozen tensor changed: {name}"
    changed = [k for k in after if k not in kept_tensors and not torch.equal(before[k], after[k])]
    assert any(k.startswith(f"backbone.{stages[-1]}") for k in changed), "the unfrozen deepest stage did not train"
    if family == "mobilenet":
        assert any("running_mean" in n for n in kept_tensors)  # BN statistics are among what stayed put
        assert any("running_mean" in k for k in changed)  # ...while unfrozen stages' statistics moved
