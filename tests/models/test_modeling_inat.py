import pytest
import torch
import torch.nn.functional as F
from timm.layers.cbam import CbamModule
from timm.layers.eca import EcaModule
from timm.layers.squeeze_excite import SEModule
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

from inat_hf.models import InatForImageClassification, InatPreTrainedModel, focal_loss

from .conftest import tiny_config

ATTENTION_TYPES = {"se": SEModule, "eca": EcaModule, "cbam": CbamModule, "none": nn.Identity}


def test_class_attributes(model):
    assert InatPreTrainedModel.accepts_loss_kwargs is False  # Trainer: grad-accumulation/DDP loss scaling
    assert InatPreTrainedModel.main_input_name == "pixel_values"
    # ResNets keep the stage names of the recipes (timm's group_matcher names them so)
    assert model.stage_names == (
        "stem",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "attention",
        "head",
    )


@pytest.mark.parametrize("attn_layer", ["se", "eca", "cbam", "none"])
@pytest.mark.parametrize(
    "head",
    [dict(head_hidden_sizes=[]), dict(head_hidden_sizes=[16]), dict(head_hidden_sizes=[16], head_batch_norm=False)],
)
def test_forward_backward(attn_layer, head, pixel_values):
    torch.manual_seed(0)
    model = InatForImageClassification(tiny_config(attn_layer=attn_layer, **head)).train()
    assert isinstance(model.attention, ATTENTION_TYPES[attn_layer])
    labels = torch.tensor([0, 1, 2, 1])
    out = model(pixel_values, labels=labels)
    assert isinstance(out, ImageClassifierOutput)
    assert out.logits.shape == (4, 3)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss)
    out.loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), name


def test_head_layout(model):
    head = model.head
    assert [type(m) for m in head.hidden[0]] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout]
    assert head.hidden[0].fc.bias is None  # BN follows
    assert head.classifier.out_features == 3
    linear = InatForImageClassification(tiny_config(head_hidden_sizes=[], drop_rate=0.5)).head
    assert len(linear.hidden) == 0 and isinstance(linear.drop, nn.Dropout) and linear.drop.p == 0.5
    no_bn = InatForImageClassification(tiny_config(head_hidden_sizes=[8], head_batch_norm=False)).head
    assert isinstance(no_bn.hidden[0].norm, nn.Identity) and no_bn.hidden[0].fc.bias is not None


def test_no_labels_no_loss_and_tuple_output(model, pixel_values):
    model.eval()
    out = model(pixel_values)
    assert out.loss is None
    (logits,) = model(pixel_values, return_dict=False)
    torch.testing.assert_close(logits, out.logits)
    loss, logits = model(pixel_values, labels=torch.tensor([0, 1, 2, 0]), return_dict=False)
    assert loss.ndim == 0


def test_loss_uses_config(pixel_values):
    config = tiny_config(focal_gamma=1.0, focal_alpha=[1.0, 2.0, 3.0], label_smoothing=0.2)
    model = InatForImageClassification(config).eval()
    labels = torch.tensor([0, 1, 2, 2])
    out = model(pixel_values, labels=labels)
    torch.testing.assert_close(out.loss, focal_loss(out.logits, labels, 1.0, [1.0, 2.0, 3.0], 0.2))


def test_soft_targets(model, pixel_values):
    model.eval()
    soft = F.softmax(torch.randn(4, 3), dim=-1)
    out = model(pixel_values, labels=soft)
    torch.testing.assert_close(out.loss, focal_loss(out.logits, soft, gamma=2.0))  # no smoothing on soft targets


def test_hidden_states(model, pixel_values):
    model.eval()
    out = model(pixel_values, output_hidden_states=True)
    shapes = [tuple(h.shape) for h in out.hidden_states]
    # stem, layer1..4 (resnet10t: 64..512 channels), attention output
    assert shapes == [(4, 64, 16, 16), (4, 64, 8, 8), (4, 128, 4, 4), (4, 256, 2, 2), (4, 512, 1, 1), (4, 512, 1, 1)]
    torch.testing.assert_close(out.logits, model(pixel_values).logits)


def test_resnet50_shapes():
    model = InatForImageClassification(tiny_config(backbone="resnet50", head_hidden_sizes=[1024, 512])).eval()
    assert model.backbone.num_features == 2048
    assert model.head.hidden[0].fc.in_features == 2048
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64), output_hidden_states=True)
    assert out.logits.shape == (2, 3)
    assert out.hidden_states[-1].shape == (2, 2048, 2, 2)


def test_half_precision_logits_give_float32_loss(model, pixel_values):
    model = model.to(torch.bfloat16).eval()
    out = model(pixel_values, labels=torch.tensor([0, 1, 2, 0]))  # float32 input is cast to the model dtype
    assert out.logits.dtype == torch.bfloat16 and out.loss.dtype == torch.float32


def test_gradient_checkpointing(model, pixel_values):
    model.train()
    model.activation_checkpointing_enable()
    assert model.backbone.grad_checkpointing and model.is_activation_checkpointing
    model(pixel_values, labels=torch.tensor([0, 1, 2, 0])).loss.backward()
    assert model.backbone.conv1[0].weight.grad is not None
    model.activation_checkpointing_disable()
    assert not model.backbone.grad_checkpointing and not model.is_activation_checkpointing


# ---------------------------------------------------------------- stage groups


@pytest.mark.parametrize("backbone", ["resnet10t", "resnet18", "resnet26d"])
def test_stage_groups_partition_parameters(backbone):
    model = InatForImageClassification(tiny_config(backbone=backbone))
    groups = model.stage_parameter_names()
    assert list(groups) == list(model.stage_names)
    flat = [name for names in groups.values() for name in names]
    assert sorted(flat) == sorted(name for name, _ in model.named_parameters())
    assert len(flat) == len(set(flat))  # exactly one stage each
    assert all(
        groups[stage] for stage in model.stage_names if stage != "attention" or model.config.attn_layer != "none"
    )
    assert all(n.startswith("backbone.layer3.") for n in groups["layer3"])
    assert all(n.startswith(("attention.", "head.")) for n in groups["attention"] + groups["head"])
    # stem = conv1 (a Sequential for deep-stem variants) + bn1
    assert {n.split(".")[1] for n in groups["stem"]} == {"conv1", "bn1"}

    modules = model.stage_modules()
    assert list(modules) == list(model.stage_names)
    assert modules["stem"][:2] == [model.backbone.conv1, model.backbone.bn1]
    assert modules["layer4"] == [model.backbone.layer4]
    assert modules["attention"] == [model.attention] and model.head in modules["head"]
    # the module groups hold exactly the parameters of the name groups
    for stage, mods in modules.items():
        assert {id(p) for m in mods for p in m.parameters()} == {id(p) for p in model.stage_parameters([stage])[stage]}


def test_stage_selection_and_unknown_stage(model):
    assert list(model.stage_parameter_names(["head", "layer4"])) == ["head", "layer4"]
    assert list(model.stage_modules("stem")) == ["stem"]
    with pytest.raises(ValueError, match=r"Unknown stage name\(s\) \['layer5'\]; valid stage names: stem, layer1"):
        model.stage_parameter_names(["layer5"])
    with pytest.raises(ValueError, match="valid stage names"):
        model.stage_modules(["fc"])


def test_stage_parameters_build_optimizer_groups(model):
    groups = model.stage_parameters()
    optimizer = torch.optim.AdamW([{"params": p, "lr": 1e-4 * (i + 1)} for i, p in enumerate(groups.values())])
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


# ---------------------------------------------------------------- init


def test_init_leaves_timm_backbone_init_and_initialises_new_parts():
    model = InatForImageClassification(tiny_config(backbone="resnet18", attn_layer="cbam"))
    # timm's zero-init of the last BN in each residual block survives post_init()
    assert torch.count_nonzero(model.backbone.layer1[0].bn2.weight) == 0
    assert model.backbone.bn1.weight.eq(1).all()
    state = model.state_dict()
    assert all(torch.isfinite(t.float()).all() for t in state.values())
    assert model.head.classifier.weight.std() < 0.05  # trunc_normal(std=0.02)
    assert model.head.classifier.bias.eq(0).all()
    assert model.head.hidden[0].norm.running_var.eq(1).all()


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "pixel_values, error, match",
    [
        (torch.randn(2, 1, 32, 32), ValueError, r"must have 3 \(RGB\) channels in dim 1, got 1"),
        (torch.randn(2, 32, 32, 3), ValueError, r"must have 3 \(RGB\) channels in dim 1, got 32"),
        (
            torch.randn(3, 32, 32),
            ValueError,
            r"must have shape \[batch, 3, height, width\] \(4 dims\), got shape \[3, 32, 32\]",
        ),
        ([[0.0]], TypeError, r"pixel_values must be a torch.Tensor"),
    ],
)
def test_bad_pixel_values(model, pixel_values, error, match):
    with pytest.raises(error, match=match):
        model(pixel_values)


@pytest.mark.parametrize(
    "labels, match",
    [
        (
            torch.tensor([0, 1, 2, 3]),
            r"Labels must be class indices in \[0, 3\) \(num_labels=3\), got values in \[0, 3\]",
        ),
        (torch.tensor([-1, 0, 0, 0]), r"got values in \[-1, 0\]"),
        (
            torch.rand(4, 5),
            r"Soft targets must have the logits' shape \[batch, num_classes\] = \[4, 3\], got \[4, 5\]",
        ),
        (torch.tensor([[0], [1], [2], [0]]), r"Class-index targets must have shape \[batch\] = \[4\], got \[4, 1\]"),
    ],
)
def test_bad_labels(model, pixel_values, labels, match):
    with pytest.raises(ValueError, match=match):
        model(pixel_values, labels=labels)


def test_single_image_batch_in_training_mode(model):
    with pytest.raises(ValueError, match="needs at least 2 images per batch in training mode.*drop_last=True"):
        model.train()(torch.randn(1, 3, 32, 32))
    assert model.eval()(torch.randn(1, 3, 32, 32)).logits.shape == (1, 3)


def test_config_changed_after_creation_is_rejected_by_the_model():
    config = tiny_config()
    config.focal_alpha = [1.0]
    with pytest.raises(ValueError, match="focal_alpha has 1 entries but num_labels=3"):
        InatForImageClassification(config)
