"""Tests for the presets (inat_hf.data.transforms), their kernels (inat_hf.data.kernels) and the collator."""

from __future__ import annotations

import dataclasses
import io
import math
import pickle

import numpy as np
import PIL.Image
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as tvF

from inat_hf.data.array_preset import eval_kwargs_from_image_processor
from inat_hf.data.augmentation import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, AugmentationConfig
from inat_hf.data.collate import ImageClassificationCollator
from inat_hf.data.kernels import FusedColorJitter, RandomGaussianBlur, RandomRotationNearest, separable_gaussian_blur
from inat_hf.data.torch_dataset import ImageClassificationDataset
from inat_hf.data.transforms import (
    TTA_VIEWS,
    EvalPreset,
    TrainPreset,
    TTAPreset,
    normalize,
)

S = 32  # small output size keeps the tests fast
MEAN = torch.tensor(IMAGENET_DEFAULT_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_DEFAULT_STD).view(3, 1, 1)
ALL_OFF = {"hflip": 0.0, "color_jitter": 0.0, "rotation": 0.0, "blur_prob": 0.0, "re_prob": 0.0}


def photo(w: int = 60, h: int = 45, seed: int = 0) -> PIL.Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 255 // (w - 1), yy * 255 // (h - 1), ((xx * yy) % 97) * 2], -1).astype(np.float64)
    arr += rng.normal(0, 8, arr.shape)
    return PIL.Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def jpeg(img: PIL.Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def image_bytes() -> bytes:
    return jpeg(photo())


def aug(**overrides) -> AugmentationConfig:
    return AugmentationConfig(image_size=S, **overrides)


# ---- config -----------------------------------------------------------------------------------------------------


def test_config_defaults_are_the_seed_recipe():
    cfg = AugmentationConfig()
    assert cfg.image_size == 224 and cfg.scale == (0.08, 1.0) and cfg.ratio == pytest.approx((3 / 4, 4 / 3))
    assert cfg.hflip == 0.5 and cfg.color_jitter == 0.4 and cfg.hue == 0.1 and cfg.rotation == 15.0
    assert cfg.blur_prob == 0.1 and cfg.blur_sigma == (0.1, 2.0) and cfg.re_prob == 0.25
    assert cfg.train_interpolation == "bilinear"
    assert (cfg.mean, cfg.std) == (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    from timm.data import IMAGENET_DEFAULT_MEAN as TIMM_MEAN
    from timm.data import IMAGENET_DEFAULT_STD as TIMM_STD

    assert (tuple(TIMM_MEAN), tuple(TIMM_STD)) == (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hflip = 0.0


def test_config_from_yaml_like_dict():
    cfg = AugmentationConfig(image_size=256, scale=[0.2, 1.0], color_jitter=[0.3, 0.2, 0.1, 0.05])
    assert cfg.scale == (0.2, 1.0) and cfg.jitter_strengths == (0.3, 0.2, 0.1) and cfg.jitter_hue == 0.05
    assert AugmentationConfig(**dataclasses.asdict(cfg)) == cfg


@pytest.mark.parametrize(
    "bad",
    [
        {"re_prob": 1.5},
        {"scale": (1.0, 0.5)},
        {"hue": 0.7},
        {"rotation": -1},
        {"blur_kernel_size": 4},
        {"color_jitter": (0.1, 0.2)},
        {"train_interpolation": "cubic-ish"},
        {"image_size": 0},
    ],
)
def test_config_rejects_invalid_values(bad):
    with pytest.raises(ValueError):
        AugmentationConfig(**bad)


def test_torchvision_color_jitter_option(image_bytes):
    preset = TrainPreset(aug(color_jitter_impl="torchvision"))
    assert any(type(t) is v2.ColorJitter for t in preset.transforms.transforms)
    assert preset(image_bytes).shape == (3, S, S)
    with pytest.raises(ValueError, match="color_jitter_impl"):
        aug(color_jitter_impl="opencv")


def test_color_jitter_zero_turns_hue_off_too():
    assert aug(color_jitter=0).jitter_hue == 0.0
    assert aug(color_jitter=0.4, hue=0).jitter_hue == 0.0
    assert [type(t).__name__ for t in TrainPreset(aug(**ALL_OFF)).transforms.transforms] == [
        "RandomResizedCrop",
        "ToDtype",
        "Normalize",
    ]


# ---- train preset -----------------------------------------------------------------------------------------------


def test_train_output_shape_dtype_and_range(image_bytes):
    lo, hi = (0 - MEAN) / STD, (1 - MEAN) / STD
    for seed in range(5):
        torch.manual_seed(seed)
        x = TrainPreset(aug())(image_bytes)
        assert x.shape == (3, S, S) and x.dtype == torch.float32 and x.is_contiguous()
        assert (x >= lo - 1e-5).all() and (x <= hi + 1e-5).all()


def test_train_is_deterministic_under_a_seed(image_bytes):
    preset = TrainPreset(aug(blur_prob=0.5, re_prob=0.5))
    outs = []
    for _ in range(2):
        torch.manual_seed(1234)
        outs.append(torch.stack([preset(image_bytes) for _ in range(4)]))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0][0], outs[0][1])  # but random from call to call


def test_everything_off_is_a_deterministic_resize():
    img = photo(48, 48)
    data = jpeg(img)
    preset = TrainPreset(aug(scale=(1.0, 1.0), ratio=(1.0, 1.0), **ALL_OFF))
    expected = tvF.resize(tvF.pil_to_tensor(PIL.Image.open(io.BytesIO(data))), [S, S], antialias=True)
    expected = (expected.float() - 255 * MEAN) / (255 * STD)
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        torch.testing.assert_close(preset(data), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "name,overrides",
    [
        ("random resized crop", {"scale": (0.08, 1.0)}),
        ("horizontal flip", {"hflip": 1.0}),
        ("color jitter", {"color_jitter": 0.4, "hue": 0.0}),
        ("hue", {"color_jitter": (0.0, 0.0, 0.0, 0.1)}),
        ("rotation", {"rotation": 15.0}),
        ("gaussian blur", {"blur_prob": 1.0}),
        ("random erasing", {"re_prob": 1.0}),
    ],
)
def test_each_augmentation_alone_changes_the_output(image_bytes, name, overrides):
    base = {"scale": (1.0, 1.0), "ratio": (60 / 45, 60 / 45), **ALL_OFF}
    reference = TrainPreset(aug(**base))(image_bytes)
    preset = TrainPreset(aug(**{**base, **overrides}))
    changed = False
    for seed in range(5):
        torch.manual_seed(seed)
        out = preset(image_bytes)
        assert out.shape == reference.shape and out.dtype == reference.dtype
        changed |= not torch.allclose(out, reference, atol=1e-4)
    assert changed, name


def test_normalize_is_the_image_processors_arithmetic():
    """One normalisation for every preset: (x / 255 - mean) / std in float32, on one image or a TTA stack."""
    u = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    out = normalize()(u)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, (u.float() - 255 * MEAN) / (255 * STD), atol=1e-5, rtol=0)
    torch.testing.assert_close(normalize()(u[1]), out[1])


# ---- custom kernels vs torchvision --------------------------------------------------------------------------------


def test_separable_blur_equals_torchvision_gaussian_blur():
    x = torch.rand(3, 40, 36) * 255
    for sigma in (0.1, 0.7, 2.0):
        ours = separable_gaussian_blur(x, 13, sigma)
        ref = tvF.gaussian_blur(x, [13, 13], [sigma, sigma])
        torch.testing.assert_close(ours, ref, atol=1e-3, rtol=0)
    u = x.to(torch.uint8)
    assert (
        separable_gaussian_blur(u, 13, 1.5).int() - tvF.gaussian_blur(u, [13, 13], [1.5, 1.5]).int()
    ).abs().max() <= 1
    assert separable_gaussian_blur(torch.rand(3, 4, 4), 13, 1.0).shape == (3, 4, 4)  # tiny: falls back


def test_rotation_matches_torchvision_nearest():
    x = tvF.pil_to_tensor(photo(S, S))
    rot = RandomRotationNearest(15)
    for angle in (-13.0, 4.5, 10.0):
        ours = rot.transform(x, {"angle": angle})
        ref = tvF.rotate(x.contiguous(), angle, interpolation=v2.InterpolationMode.NEAREST)
        assert ours.shape == x.shape and ours.dtype == torch.uint8
        assert (ours == ref).all(0).float().mean() > 0.98, angle
    assert rot.transform(x, {"angle": 0.0}) is x
    assert torch.equal(rot.transform(x.float(), {"angle": 10.0}), tvF.rotate(x.float(), 10.0))


def test_kernels_draw_what_the_torchvision_transforms_they_replace_draw():
    """Same seed, same random parameters as the stock v2 transforms (the blur: also the same pixels, within 1)."""
    x = tvF.pil_to_tensor(photo(S, S))

    def draw(transform, seed):
        torch.manual_seed(seed)
        params = transform.make_params([x])
        return {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in params.items()}

    for seed in range(4):
        assert draw(FusedColorJitter(0.4, 0.4, 0.4, 0.1), seed) == draw(v2.ColorJitter(0.4, 0.4, 0.4, 0.1), seed)
        assert draw(RandomRotationNearest(15), seed) == draw(v2.RandomRotation(15), seed)
        torch.manual_seed(seed)
        ours = RandomGaussianBlur(13, (0.1, 2.0), p=0.5)(x)
        torch.manual_seed(seed)
        theirs = v2.RandomApply([v2.GaussianBlur(13, (0.1, 2.0))], p=0.5)(x)
        assert (ours.int() - theirs.int()).abs().max() <= 1, seed


def _jitter_params(order, brightness=None, contrast=None, saturation=None, hue=None):
    """The params v2.ColorJitter.make_params returns, with a chosen order and factors."""
    return {
        "fn_idx": torch.tensor(order),
        "brightness_factor": brightness,
        "contrast_factor": contrast,
        "saturation_factor": saturation,
        "hue_factor": hue,
    }


@pytest.mark.parametrize(
    "op,fn",
    [("brightness", tvF.adjust_brightness), ("contrast", tvF.adjust_contrast), ("saturation", tvF.adjust_saturation)],
)
def test_fused_color_jitter_single_ops_equal_torchvision(op, fn):
    x = torch.rand(3, 16, 16) * 0.6 + 0.2
    jitter = FusedColorJitter()
    for factor in (0.7, 1.3):
        params = _jitter_params([0, 1, 2, 3], **{op: factor})
        torch.testing.assert_close(jitter.transform(x, params), fn(x, factor), atol=1e-5, rtol=0)


def _colour_sweep(step: int = 17) -> torch.Tensor:
    """Every RGB colour on a grid of ``step`` grey levels, as one uint8 image [3, 1, N]."""
    levels = torch.arange(0, 256, step, dtype=torch.int64)
    r, g, b = torch.meshgrid(levels, levels, levels, indexing="ij")
    return torch.stack([r.flatten(), g.flatten(), b.flatten()])[:, None, :].to(torch.uint8)


@pytest.mark.parametrize("hue", [-0.5, -0.37, -0.2, -0.1, -0.02, 0.0, 0.02, 0.05, 0.1, 0.25, 0.41, 0.5])
def test_fused_hue_equals_torchvision_adjust_hue(hue):
    """Hue is a species cue: the fused jitter's hue must be torchvision's HSV hue shift, for every colour."""
    x = _colour_sweep()
    params = _jitter_params([1, 3, 0, 2], hue=hue)
    ours = FusedColorJitter(hue=0.5).transform(x, params)
    ref = tvF.adjust_hue(x, hue)
    assert ours.dtype == torch.uint8
    assert (ours.int() - ref.int()).abs().max() <= 2, hue


def test_fused_jitter_with_hue_in_the_middle_equals_torchvision_steps():
    # saturation -> hue -> brightness, sequentially (torchvision clamps after each step; so does a step here)
    x = (torch.rand(3, 8, 8) * 0.6 + 0.2 + 0.0).clamp(0, 1)
    params = _jitter_params([2, 3, 0, 1], brightness=1.2, saturation=1.3, hue=0.15)
    ref = tvF.adjust_brightness(tvF.adjust_hue(tvF.adjust_saturation(x, 1.3), 0.15), 1.2)
    torch.testing.assert_close(FusedColorJitter(0.4, 0.4, 0.4, 0.2).transform(x, params), ref, atol=1e-5, rtol=0)


def test_fused_color_jitter_hue_and_composition():
    jitter = FusedColorJitter(0.4, 0.4, 0.4, 0.1)
    gray = torch.full((3, 4, 4), 0.5)
    params = _jitter_params([3, 0, 1, 2], hue=0.08)
    torch.testing.assert_close(jitter.transform(gray, params), gray)  # hue leaves greys alone
    red = torch.tensor([0.8, 0.2, 0.2]).view(3, 1, 1).expand(3, 2, 2).contiguous()
    shifted = jitter.transform(red, params)
    assert shifted[1].mean() > red[1].mean()  # positive hue: red towards yellow, as torchvision's HSV shift
    # the composition is applied in the sampled order, like torchvision's sequential ops (no clipping here)
    x = torch.rand(3, 8, 8) * 0.4 + 0.3
    params = _jitter_params([2, 0, 1, 3], brightness=1.1, contrast=0.9, saturation=1.2)
    ref = tvF.adjust_contrast(tvF.adjust_brightness(tvF.adjust_saturation(x, 1.2), 1.1), 0.9)
    torch.testing.assert_close(jitter.transform(x, params), ref, atol=1e-5, rtol=0)
    u = (x * 255).round().to(torch.uint8)
    assert jitter.transform(u, params).dtype == torch.uint8


# ---- full-size decode ----------------------------------------------------------------------------------------------


def _grating_jpeg(size: int, period: int = 6) -> bytes:
    """Vertical black/white stripes: all detail is high frequency, the first thing a reduced decode loses."""
    columns = (np.arange(size) // (period // 2)) % 2 * 255
    array = np.broadcast_to(columns[None, :, None], (size, size, 3)).astype(np.uint8)
    buf = io.BytesIO()
    PIL.Image.fromarray(array).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_train_crops_come_from_the_full_size_decode():
    """Even a JPEG four times the crop's side is decoded at full size: a DCT-reduced decode would upsample the
    smallest crops (the half-resolution training crops of an earlier version)."""
    data = _grating_jpeg(128)
    cfg = AugmentationConfig(image_size=S, scale=(0.25, 0.25), ratio=(1.0, 1.0), **ALL_OFF)
    preset = TrainPreset(cfg)
    for seed in range(3):
        torch.manual_seed(seed)
        ours = preset(data)
        torch.manual_seed(seed)
        assert torch.equal(ours, preset(PIL.Image.open(io.BytesIO(data)))), seed


# ---- eval / TTA ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(60, 45), (45, 60), (33, 71), (40, 40), (150, 100)])
@pytest.mark.parametrize("resample", [3, 2])  # PIL bicubic, bilinear
def test_eval_preset_equals_bit_image_processor(size, resample):
    from transformers import BitImageProcessor

    img = photo(*size, seed=size[0])
    resize = math.floor(S / 0.875)
    processor = BitImageProcessor(
        size={"shortest_edge": resize},
        crop_size={"height": S, "width": S},
        resample=resample,
        image_mean=list(IMAGENET_DEFAULT_MEAN),
        image_std=list(IMAGENET_DEFAULT_STD),
    )
    expected = processor(img, return_tensors="pt").pixel_values[0]
    ours = EvalPreset(image_size=S, crop_pct=0.875, interpolation=resample)(img)
    assert ours.shape == (3, S, S) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
    # the same from encoded bytes (decode parity) and from the processor's own settings
    data = jpeg(img)
    expected = processor(PIL.Image.open(io.BytesIO(data)), return_tensors="pt").pixel_values[0]
    torch.testing.assert_close(
        EvalPreset(**eval_kwargs_from_image_processor(processor))(data), expected, atol=1e-5, rtol=0
    )


def test_eval_preset_zero_pads_like_the_processor_when_the_resize_is_smaller_than_the_crop():
    from transformers import BitImageProcessor

    img = photo(50, 37)
    processor = BitImageProcessor(
        size={"shortest_edge": 27},
        crop_size={"height": S, "width": S},
        image_mean=list(IMAGENET_DEFAULT_MEAN),
        image_std=list(IMAGENET_DEFAULT_STD),
    )
    expected = processor(img, return_tensors="pt").pixel_values[0]
    torch.testing.assert_close(EvalPreset(image_size=S, resize_size=27)(img), expected, atol=1e-5, rtol=0)


def test_tta_views(image_bytes):
    kwargs = {"image_size": S, "crop_pct": 0.875}
    views = TTAPreset(**kwargs)(image_bytes)
    assert views.shape == (5, 3, S, S) and views.dtype == torch.float32
    assert torch.equal(views[0], EvalPreset(**kwargs)(image_bytes))
    assert torch.equal(views[1], views[0].flip(-1))
    assert torch.equal(views, TTAPreset(**kwargs)(image_bytes))  # deterministic
    assert len({v.sum().item() for v in views}) == 5  # five distinct views
    for n in range(1, len(TTA_VIEWS) + 1):
        out = TTAPreset(num_views=n, **kwargs)(image_bytes)
        assert out.shape == (n, 3, S, S)
        assert torch.equal(out, TTAPreset(num_views=len(TTA_VIEWS), **kwargs)(image_bytes)[:n])
    full8 = TTAPreset(num_views=8, **kwargs)(image_bytes)
    assert torch.equal(full8[5], full8[2].flip(-1))
    for bad in (0, len(TTA_VIEWS) + 1):
        with pytest.raises(ValueError, match="num_views"):
            TTAPreset(num_views=bad)


# ---- dataset + collator, as the Trainer and the evaluator use them -------------------------------------------------


@pytest.fixture(scope="module")
def raw_dataset():
    datasets = pytest.importorskip("datasets")
    images = [{"bytes": jpeg(photo(60 + i, 45, seed=i)), "path": f"img_{i}.jpg"} for i in range(6)]
    return datasets.Dataset.from_dict(
        {"image": images, "label": [3, 1, 4, 1, 5, 9], "genus": ["a"] * 6},
        features=datasets.Features(
            {
                "image": datasets.Image(decode=False),
                "label": datasets.Value("int64"),
                "genus": datasets.Value("string"),
            }
        ),
    )


def test_collator_stacks_dataset_items(raw_dataset):
    train = ImageClassificationDataset(raw_dataset, TrainPreset(aug()), seed=0)
    batch = ImageClassificationCollator()([train[i] for i in range(4)])
    assert set(batch) == {"pixel_values", "labels"}
    assert batch["pixel_values"].shape == (4, 3, S, S) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].dtype == torch.int64 and batch["labels"].tolist() == [3, 1, 4, 1]
    tta = ImageClassificationDataset(raw_dataset, TTAPreset(num_views=3, image_size=S))
    assert ImageClassificationCollator()([tta[0], tta[1]])["pixel_values"].shape == (2, 3, 3, S, S)
    with pytest.raises(KeyError, match=r"missing \['labels'\]"):
        ImageClassificationCollator()([{"pixel_values": torch.zeros(3, 2, 2), "label": 1}])
    with pytest.raises(ValueError, match="empty"):
        ImageClassificationCollator()([])


@pytest.mark.slow
def test_dataloader_with_workers(raw_dataset):
    from torch.utils.data import DataLoader

    ds = ImageClassificationDataset(raw_dataset, TrainPreset(aug()), seed=0)
    loader = DataLoader(ds, batch_size=3, num_workers=1, collate_fn=ImageClassificationCollator())
    batches = list(loader)
    assert [b["pixel_values"].shape for b in batches] == [(3, 3, S, S)] * 2
    assert torch.equal(batches[1]["pixel_values"][0], ds[3]["pixel_values"])  # the worker sees the item's seed


def test_presets_pickle_for_spawned_workers(image_bytes):
    for preset in (TrainPreset(aug()), EvalPreset(image_size=S), TTAPreset(image_size=S)):
        torch.manual_seed(0)
        expected = preset(image_bytes)
        clone = pickle.loads(pickle.dumps(preset))
        torch.manual_seed(0)
        assert torch.equal(clone(image_bytes), expected)
