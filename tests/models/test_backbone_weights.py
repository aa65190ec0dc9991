"""InatForImageClassification.from_backbone_pretrained: timm weights into the backbone, new attention and head."""

import time

import pytest
import timm
import torch
from safetensors.torch import save_file

from inat_hf.models import InatForImageClassification

from .conftest import tiny_config


@pytest.fixture(scope="module")
def timm_state_dict():
    """What a timm ImageNet checkpoint holds: backbone + 1000-class `fc`."""
    torch.manual_seed(123)
    return timm.create_model("resnet10t", pretrained=False).state_dict()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_file(timm_state_dict, tmp_path, suffix):
    path = tmp_path / f"resnet10t{suffix}"
    if suffix == ".safetensors":
        save_file(timm_state_dict, path)
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in timm_state_dict.items()}}, path)  # DDP checkpoint

    model, info = InatForImageClassification.from_backbone_pretrained(
        tiny_config(), weights=path, output_loading_info=True
    )
    backbone = model.backbone.state_dict()
    for key, tensor in backbone.items():
        assert torch.equal(tensor, timm_state_dict[key]), key
    state_keys = set(model.state_dict())
    assert set(info["loaded_keys"]) == {f"backbone.{k}" for k in backbone}
    assert set(info["missing_keys"]) == {k for k in state_keys if k.startswith(("attention.", "head."))}
    assert set(info["loaded_keys"]) | set(info["missing_keys"]) == state_keys
    assert info["unexpected_keys"] == ["fc.bias", "fc.weight"]  # the ImageNet classifier is dropped
    assert all(torch.isfinite(t.float()).all() for t in model.state_dict().values())
    assert model(torch.randn(2, 3, 32, 32)).logits.shape == (2, 3)


def test_returns_just_the_model_by_default(timm_state_dict, tmp_path):
    save_file(timm_state_dict, tmp_path / "w.safetensors")
    model = InatForImageClassification.from_backbone_pretrained(weights=tmp_path / "w.safetensors", **_tiny_kwargs())
    assert isinstance(model, InatForImageClassification)


def _tiny_kwargs():
    return dict(backbone="resnet10t", num_labels=4, head_hidden_sizes=[8])


def test_weights_of_another_architecture_are_refused(tmp_path):
    save_file(timm.create_model("resnet18").state_dict(), tmp_path / "resnet18.safetensors")
    with pytest.raises(
        ValueError, match=r"do not fit backbone='resnet10t': missing \['conv1.0.weight'.*same timm architecture"
    ):
        InatForImageClassification.from_backbone_pretrained(tiny_config(), weights=tmp_path / "resnet18.safetensors")


def test_missing_file():
    with pytest.raises(
        FileNotFoundError, match=r"Backbone weights file not found: '/nonexistent/resnet50.safetensors'"
    ):
        InatForImageClassification.from_backbone_pretrained(tiny_config(), weights="/nonexistent/resnet50.safetensors")


@pytest.mark.parametrize("name", ["list.pth", "damaged.safetensors"])
def test_file_without_a_state_dict(tmp_path, name):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    (tmp_path / "damaged.safetensors").write_bytes(b"not a safetensors header" * 4)
    with pytest.raises(ValueError, match="does not contain a state dict"):
        InatForImageClassification.from_backbone_pretrained(tiny_config(), weights=tmp_path / name)


def test_offline_unknown_name_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ValueError, match="neither an existing weights file nor a timm model name"):
        InatForImageClassification.from_backbone_pretrained(tiny_config(), weights="resnet_does_not_exist")
    assert time.perf_counter() - start < 5


def test_offline_uncached_timm_weights_fail_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(
        OSError, match=r"HF_HUB_OFFLINE is set and the weights of 'resnet10t.c3_in1k' .* local .safetensors"
    ):
        InatForImageClassification.from_backbone_pretrained(tiny_config(), weights="resnet10t.c3_in1k")
    assert time.perf_counter() - start < 5


def test_offline_cached_timm_weights_load(monkeypatch, tmp_path, timm_state_dict):
    """Offline, a timm name loads from the local Hugging Face cache (timm's Hub loader, no network)."""
    import huggingface_hub.constants

    revision = "0" * 40
    repo = tmp_path / "models--timm--resnet10t.c3_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    save_file(timm_state_dict, repo / "snapshots" / revision / "model.safetensors")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    model = InatForImageClassification.from_backbone_pretrained(tiny_config(), weights="resnet10t.c3_in1k")
    assert torch.equal(model.backbone.conv1[0].weight, timm_state_dict["conv1.0.weight"])
