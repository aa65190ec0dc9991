"""save_pretrained / from_pretrained, Auto classes, image processor, pipeline and trust_remote_code loading."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    BitImageProcessor,
    pipeline,
)

from inat_hf.models import InatConfig, InatForImageClassification, image_processor_from_config

from .conftest import LABELS, tiny_config


def _images(n=2, size=(48, 40)):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(n)]


def _logits(model, pixel_values):
    with torch.no_grad():
        return model.eval()(pixel_values).logits


def test_saved_files(saved_dir):
    files = set(os.listdir(saved_dir))
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= files
    assert {"configuration_inat.py", "modeling_inat.py", "losses.py", "image_processing_inat.py"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pth")) for f in files)  # safetensors only
    config = json.loads((saved_dir / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_inat.InatConfig",
        "AutoModelForImageClassification": "modeling_inat.InatForImageClassification",
    }


def test_round_trip_identical_logits(saved_dir, pixel_values):
    saved = load_file(saved_dir / "model.safetensors")
    for loaded in (
        InatForImageClassification.from_pretrained(saved_dir),
        AutoModelForImageClassification.from_pretrained(saved_dir),
    ):
        assert type(loaded) is InatForImageClassification and not loaded.training
        state = loaded.state_dict()
        assert saved.keys() == state.keys()
        for key, tensor in saved.items():
            assert torch.equal(state[key], tensor), key
    reference = InatForImageClassification.from_pretrained(saved_dir)
    torch.testing.assert_close(_logits(loaded, pixel_values), _logits(reference, pixel_values), rtol=0, atol=0)


@pytest.mark.parametrize("backbone", ["resnetblur18"])
def test_round_trip_backbone_with_non_persistent_buffers(backbone, tmp_path, pixel_values):
    """BlurPool's filter is not saved; loading must recompute it (not leave an uninitialised tensor)."""
    model = InatForImageClassification(tiny_config(backbone=backbone)).eval()
    model.save_pretrained(tmp_path)
    loaded = InatForImageClassification.from_pretrained(tmp_path)
    torch.testing.assert_close(_logits(loaded, pixel_values), _logits(model, pixel_values), rtol=0, atol=0)


def test_auto_classes_resolve(saved_dir):
    assert type(AutoConfig.from_pretrained(saved_dir)) is InatConfig
    assert type(AutoConfig.for_model("inat")) is InatConfig
    model = AutoModelForImageClassification.from_config(tiny_config())
    assert type(model) is InatForImageClassification
    processor = AutoImageProcessor.from_pretrained(saved_dir)
    assert isinstance(processor, BitImageProcessor)


def test_image_processor_matches_config():
    config = tiny_config(
        image_size=64, crop_pct=0.95, interpolation="bilinear", image_mean=[0.5] * 3, image_std=[0.25] * 3
    )
    processor = image_processor_from_config(config)
    assert processor.size == {"shortest_edge": 67}  # floor(64 / 0.95)
    assert processor.crop_size == {"height": 64, "width": 64}
    assert int(processor.resample) == 2  # PIL bilinear
    assert list(processor.image_mean) == [0.5] * 3 and list(processor.image_std) == [0.25] * 3
    assert processor.do_convert_rgb and processor.do_center_crop and processor.rescale_factor == 1 / 255
    pixel_values = processor(_images(3, size=(80, 100)), return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (3, 3, 64, 64)


def test_image_processor_reproduces_documented_torchvision_ops():
    """The ops listed in image_processor_from_config's docstring (what inat_hf.data replicates)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as tvF

    config = tiny_config(image_size=32)
    image = _images(1, size=(45, 64))[0]  # resized to 36x51: odd margin 19, floor(9.5) != round(9.5)
    expected_size = config.resize_shortest_edge
    img = torch.from_numpy(np.array(image)).permute(2, 0, 1)  # uint8 [3, H, W]
    img = tvF.resize(img, [expected_size], interpolation=InterpolationMode.BICUBIC, antialias=True)
    top, left = int((img.shape[1] - 32) / 2), int((img.shape[2] - 32) / 2)
    img = tvF.crop(img, top, left, 32, 32).float() / 255
    img = tvF.normalize(img, config.image_mean, config.image_std)
    processed = image_processor_from_config(config)(image, return_tensors="pt")["pixel_values"][0]
    torch.testing.assert_close(processed, img, rtol=0, atol=1e-5)


def test_pipeline_on_saved_dir(saved_dir):
    classifier = pipeline("image-classification", model=str(saved_dir), device="cpu")
    predictions = classifier(_images(1)[0], top_k=3)
    assert {p["label"] for p in predictions} == set(LABELS)
    assert abs(sum(p["score"] for p in predictions) - 1) < 1e-4


def test_save_without_image_processor(tmp_path):
    InatForImageClassification(tiny_config()).save_pretrained(tmp_path, save_image_processor=False)
    assert not (tmp_path / "preprocessor_config.json").exists()


def test_trust_remote_code_without_inat_hf(saved_dir, tmp_path, pixel_values):
    """A checkpoint is usable where inat_hf is not importable: the code travels with it."""
    expected = _logits(InatForImageClassification.from_pretrained(saved_dir), pixel_values)
    torch.save(pixel_values, tmp_path / "x.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["inat_hf"] = None  # importing it now raises ImportError
        try:
            import inat_hf
        except ImportError:
            pass
        else:
            raise SystemExit("inat_hf is importable: the test would prove nothing")
        import torch
        from transformers import AutoConfig, AutoModelForImageClassification
        config = AutoConfig.from_pretrained({str(saved_dir)!r}, trust_remote_code=True)
        model = AutoModelForImageClassification.from_pretrained({str(saved_dir)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert type(config).__name__ == "InatConfig"
        with torch.no_grad():
            logits = model(torch.load({str(tmp_path / "x.pt")!r})).logits
        torch.save(logits, {str(tmp_path / "logits.pt")!r})
        """
    )
    # Run outside the repository with a PYTHONPATH that does not contain it, and a private modules cache.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), expected)


# ---------------------------------------------------------------- label-set changes and init of re-created weights


def test_other_label_set_requires_ignore_mismatched_sizes(saved_dir):
    with pytest.raises(
        ValueError, match=r"classifier for 3 labels but 5 were requested. Pass `ignore_mismatched_sizes=True`"
    ):
        InatForImageClassification.from_pretrained(saved_dir, num_labels=5)
    with pytest.raises(ValueError, match=r"Pass `ignore_mismatched_sizes=True`"):
        AutoModelForImageClassification.from_pretrained(saved_dir, id2label={0: "a", 1: "b"})
    with pytest.raises(ValueError, match=r"Pass `ignore_mismatched_sizes=True`"):
        InatForImageClassification.from_pretrained(saved_dir, config=tiny_config(id2label={0: "a", 1: "b"}))


def test_transformers_itself_also_refuses_a_size_mismatch(saved_dir):
    """Even past our label check (e.g. another head width), loading does not silently re-initialise."""
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        InatForImageClassification.from_pretrained(saved_dir, config=tiny_config(head_hidden_sizes=[32, 8]))


def test_ignore_mismatched_sizes_reinitialises_only_the_classifier(saved_dir, pixel_values):
    saved = load_file(saved_dir / "model.safetensors")
    model = InatForImageClassification.from_pretrained(
        saved_dir, id2label={i: f"taxon {i}" for i in range(5)}, ignore_mismatched_sizes=True
    )
    assert model.config.num_labels == 5 and model.config.label2id["taxon 4"] == 4
    state = model.state_dict()
    assert all(torch.isfinite(t.float()).all() for t in state.values()), "NaN/Inf after re-creating the classifier"
    for key, tensor in saved.items():
        if key.startswith("head.classifier."):
            assert state[key].shape[0] == 5
        else:
            assert torch.equal(state[key], tensor), key  # backbone, attention, hidden head layers: as saved
    weight = state["head.classifier.weight"]
    assert 0 < weight.std() < 0.05 and state["head.classifier.bias"].eq(0).all()  # trunc_normal(0.02), zeros
    assert _logits(model, pixel_values).shape == (4, 5)


def test_missing_backbone_tensor_is_initialised_not_left_empty(saved_dir, tmp_path):
    """A checkpoint without some backbone tensors still gives finite weights (timm's scheme)."""
    state = load_file(saved_dir / "model.safetensors")
    removed = ["backbone.layer1.0.conv1.weight", "backbone.layer1.0.bn1.weight", "backbone.layer1.0.bn1.running_var"]
    for key in removed:
        state.pop(key)
    tmp_path.joinpath("config.json").write_text((saved_dir / "config.json").read_text())
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    model = InatForImageClassification.from_pretrained(tmp_path)
    loaded = model.state_dict()
    assert all(torch.isfinite(t.float()).all() for t in loaded.values())
    assert (
        loaded["backbone.layer1.0.bn1.weight"].eq(1).all() and loaded["backbone.layer1.0.bn1.running_var"].eq(1).all()
    )
    assert 0 < loaded["backbone.layer1.0.conv1.weight"].std() < 1
    assert torch.equal(loaded["backbone.layer1.0.conv2.weight"], state["backbone.layer1.0.conv2.weight"])


def test_damaged_weights_are_refused(saved_dir, tmp_path):
    """A weights file of the right shapes holding NaN is refused instead of predicting NaN."""
    state = load_file(saved_dir / "model.safetensors")
    state["head.classifier.weight"][0, 0] = float("nan")
    tmp_path.joinpath("config.json").write_text((saved_dir / "config.json").read_text())
    save_file(state, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"non-finite values \(NaN/Inf\) in 1 weight tensors \(e.g. head.classifier"):
        InatForImageClassification.from_pretrained(tmp_path)
