"""Any timm backbone: one representative per family (random init, 32 px), through every part of the model."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoImageProcessor, pipeline

from inat_hf.models import InatConfig, InatForImageClassification
from inat_hf.models.backbone import describe_backbone

from .conftest import tiny_config

# family -> config overrides. The ViT is built for 32 px inputs through timm's model_args.
FAMILIES = {
    "resnet": dict(backbone="resnet10t"),
    "convnext": dict(backbone="convnext_atto"),
    "mobilenet": dict(backbone="mobilenetv3_small_050"),
    "vit": dict(backbone="vit_tiny_patch16_224", model_args={"img_size": 32}, attn_layer="none"),
}
# timm's group_matcher groups, named as recipes use them
EXPECTED_STAGES = {
    "resnet": ("stem", "layer1", "layer2", "layer3", "layer4"),
    "convnext": ("stem", "stages.0", "stages.1", "stages.2", "stages.3"),
    "mobilenet": ("stem", *(f"blocks.{i}" for i in range(6))),
    "vit": ("stem", *(f"blocks.{i}" for i in range(12))),
}


def family_config(family: str, **overrides) -> InatConfig:
    return tiny_config(**{**FAMILIES[family], **overrides})


def family_model(family: str, **overrides) -> InatForImageClassification:
    torch.manual_seed(0)
    return InatForImageClassification(family_config(family, **overrides))


def _logits(model, pixel_values):
    with torch.no_grad():
        return model.eval()(pixel_values).logits


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    return request.param


@pytest.fixture(scope="module")
def saved_family(family, tmp_path_factory):
    model = family_model(family)
    with torch.no_grad():  # non-trivial norm statistics where the family has BatchNorm
        model.train()(torch.randn(8, 3, 32, 32))
    path = tmp_path_factory.mktemp(f"checkpoint_{family}")
    model.eval().save_pretrained(path)
    return family, model, path


def test_forward_backward_reaches_every_parameter(family, pixel_values):
    model = family_model(family).train()
    out = model(pixel_values, labels=torch.tensor([0, 1, 2, 1]))
    assert out.logits.shape == (4, 3) and torch.isfinite(out.loss)
    out.loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), f"{name} got no (finite) gradient"


def test_pooling_is_timms_forward_head(family, pixel_values):
    """The head sees timm's pre-logits features (ConvNeXt's head.norm, MobileNetV3's conv_head, ViT token pool)."""
    model = family_model(family).eval()
    with torch.no_grad():
        features = model.attention(model.backbone.forward_features(pixel_values))
        expected = model.head(model.backbone.forward_head(features, pre_logits=True))
        torch.testing.assert_close(model(pixel_values).logits, expected)
    assert model.head.hidden[0].fc.in_features == model.backbone.head_hidden_size


def test_save_from_pretrained_identical_logits(saved_family, pixel_values):
    family, model, path = saved_family
    loaded = InatForImageClassification.from_pretrained(path)
    assert loaded.config.backbone == FAMILIES[family]["backbone"]
    assert loaded.config.model_args == FAMILIES[family].get("model_args")
    torch.testing.assert_close(_logits(loaded, pixel_values), _logits(model, pixel_values), rtol=0, atol=0)


def test_pipeline_matches_processor_and_model(saved_family):
    family, model, path = saved_family
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8))
    predictions = pipeline("image-classification", model=str(path), device="cpu")(image, top_k=3)
    processor = AutoImageProcessor.from_pretrained(path)
    probs = _logits(model, processor(image, return_tensors="pt")["pixel_values"]).softmax(-1)[0]
    by_label = {p["label"]: p["score"] for p in predictions}
    for index, label in model.config.id2label.items():
        assert by_label[label] == pytest.approx(probs[index].item(), abs=1e-5)


def test_trust_remote_code_without_inat_hf(tmp_path, pixel_values):
    """Checkpoints of every family load with only timm + transformers (no inat_hf) and give the same logits."""
    paths, expected = {}, {}
    for family in ("convnext", "mobilenet", "vit"):
        model = family_model(family).eval()
        paths[family] = tmp_path / family
        model.save_pretrained(paths[family])
        expected[family] = _logits(model, pixel_values)
    torch.save(pixel_values, tmp_path / "x.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["inat_hf"] = None  # importing it now raises ImportError
        import torch
        from transformers import AutoModelForImageClassification
        x = torch.load({str(tmp_path / "x.pt")!r})
        for family, path in { ({k: str(v) for k, v in paths.items()})!r}.items():
            model = AutoModelForImageClassification.from_pretrained(path, trust_remote_code=True).eval()
            assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
            with torch.no_grad():
                torch.save(model(x).logits, path + "/remote_logits.pt")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for family, path in paths.items():
        torch.testing.assert_close(torch.load(path / "remote_logits.pt"), expected[family], rtol=0, atol=0)


# ---------------------------------------------------------------- stage groups from timm


def test_stage_groups_are_timms(family):
    model = family_model(family)
    assert model.backbone_stage_names == EXPECTED_STAGES[family]
    assert model.stage_names == (*EXPECTED_STAGES[family], "attention", "head")
    assert describe_backbone(model.config.backbone, model.config.model_args).stage_names == EXPECTED_STAGES[family]
    groups = model.stage_parameter_names()
    flat = [n for names in groups.values() for n in names]
    assert sorted(flat) == sorted(n for n, _ in model.named_parameters()) and len(flat) == len(set(flat))
    # the same grouping timm's layer decay uses (timm.models.group_parameters), stage by stage
    timm_groups = timm.models.group_parameters(model.backbone, model.backbone.group_matcher(coarse=True))
    timm_sets = [{f"backbone.{n}" for n in names} for names in timm_groups.values()]
    ours = [set(groups[s]) for s in model.backbone_stage_names]
    assert ours == timm_sets[: len(ours)]
    # what timm's matcher leaves unmatched (its head side) is trained with the classifier
    head_side = set().union(*timm_sets[len(ours) :]) if len(timm_sets) > len(ours) else set()
    assert head_side <= set(groups["head"])


def test_head_side_and_merged_groups():
    convnext = family_model("convnext")
    assert {"backbone.head.norm.weight", "backbone.head.norm.bias"} <= set(
        convnext.stage_parameter_names(["head"])["head"]
    )
    mobilenet = family_model("mobilenet")
    assert "backbone.conv_head.weight" in mobilenet.stage_parameter_names(["head"])["head"]
    # EfficientNet's matcher puts conv_head/bn2 into the last block group (MATCH_PREV_GROUP)
    efficientnet = InatForImageClassification(tiny_config(backbone="efficientnet_b0"))
    last = efficientnet.stage_parameter_names(["blocks.6"])["blocks.6"]
    assert {"backbone.conv_head.weight", "backbone.bn2.weight"} <= set(last)
    assert efficientnet.backbone_stage_names[-1] == "blocks.6"


# ---------------------------------------------------------------- preprocessing from timm


def test_preprocessing_follows_the_backbone(tmp_path):
    vit = family_config("vit", image_size=None, model_args={"img_size": 48})
    assert (vit.image_size, vit.crop_pct) == (48, 0.9)  # img_size from model_args, crop_pct from timm's cfg
    assert vit.image_mean == [0.5, 0.5, 0.5] and vit.image_std == [0.5, 0.5, 0.5]
    tv = tiny_config(backbone="resnet50.tv_in1k", image_size=None, crop_pct=None, interpolation=None)
    assert (tv.image_size, tv.crop_pct, tv.interpolation) == (224, 0.875, "bilinear")  # the tag's cfg
    explicit = family_config("vit", crop_pct=1.0, image_mean=[0.1, 0.2, 0.3])
    assert explicit.crop_pct == 1.0 and explicit.image_mean == [0.1, 0.2, 0.3]  # the recipe wins
    # the saved processor carries the resolved values
    InatForImageClassification(vit).save_pretrained(tmp_path)
    processor = AutoImageProcessor.from_pretrained(tmp_path)
    assert list(processor.image_mean) == [0.5, 0.5, 0.5] and processor.crop_size == {"height": 48, "width": 48}
    assert processor.size == {"shortest_edge": int(48 / 0.9)}


# ---------------------------------------------------------------- regularisation and memory


def test_drop_path_rate_reaches_timm():
    model = family_model("convnext", drop_path_rate=0.2)
    rates = [m.drop_prob for m in model.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.2)
    assert not any(type(m).__name__ == "DropPath" for m in family_model("convnext").modules())


@pytest.mark.parametrize("family", ["convnext", "vit"])
def test_gradient_checkpointing_through_timm(family, pixel_values):
    labels = torch.tensor([0, 1, 2, 1])
    model = family_model(family, drop_rate=0.0).train()
    model(pixel_values, labels=labels).loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.activation_checkpointing_enable()  # what TrainingArguments(gradient_checkpointing=True) calls
    assert any(getattr(m, "grad_checkpointing", False) for m in model.backbone.modules())  # timm's own switch
    model(pixel_values, labels=labels).loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        torch.testing.assert_close(param.grad, plain[name], rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- pretrained weights


def test_local_timm_weights_for_a_vit_at_another_size(tmp_path):
    """A 224 px ViT state dict loads into a 32 px model: timm's checkpoint filter resamples pos_embed."""
    torch.manual_seed(0)
    source = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    save_file(source.state_dict(), tmp_path / "vit.safetensors")
    model, info = InatForImageClassification.from_backbone_pretrained(
        family_config("vit"), weights=tmp_path / "vit.safetensors", output_loading_info=True
    )
    assert info["unexpected_keys"] == ["head.bias", "head.weight"]
    assert model.backbone.pos_embed.shape[1] == 1 + 2 * 2
    torch.testing.assert_close(model.backbone.blocks[3].mlp.fc1.weight, source.blocks[3].mlp.fc1.weight)
    assert model(torch.randn(2, 3, 32, 32)).logits.shape == (2, 3)
