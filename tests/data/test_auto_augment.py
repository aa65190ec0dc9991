"""timm RandAugment / AugMix / AutoAugment on the uint8 train pipeline: parity with timm, per-item seeding."""

from __future__ import annotations

import random

import numpy as np
import PIL.Image
import pytest
import timm.data
import torch
from torchvision.transforms.v2 import functional as tvF

from inat_hf.data.augmentation import AugmentationConfig
from inat_hf.data.kernels import TimmAutoAugment
from inat_hf.data.transforms import TrainPreset

S = 32
RAND = "rand-m9-mstd0.5-inc1"


def image_tensor(seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (3, 40, 48), dtype=np.uint8))


def timm_aa_op(config_str: str):
    """The auto-augment op inside timm's own training transform (create_transform)."""
    transform = timm.data.create_transform(S, is_training=True, auto_augment=config_str, interpolation="bilinear")
    (op,) = [t for t in transform.transforms if type(t).__name__ in ("RandAugment", "AugMixAugment", "AutoAugment")]
    return op


def _op_settings(transform) -> list:
    ops = getattr(transform, "ops", None) or [op for sub in transform.policy for op in sub]
    return [(op.name, op.prob, op.magnitude, sorted(op.hparams.items())) for op in ops]


@pytest.mark.parametrize("config_str", [RAND, "rand-n1-m10-mstd101", "augmix-m5-w3-d2", "v0"])
def test_same_op_and_output_as_timms_create_transform(config_str):
    ours = TimmAutoAugment(config_str, image_size=S, mean=timm.data.IMAGENET_DEFAULT_MEAN)
    theirs = timm_aa_op(config_str)
    assert type(ours.op) is type(theirs)
    assert repr(ours.op) == repr(theirs)
    assert _op_settings(ours.op) == _op_settings(theirs)  # same ops, magnitudes, translate, fill and interpolation
    img = image_tensor()
    torch.manual_seed(3)
    out = ours(img)
    # timm's op, driven by the seed our transform draws from torch's RNG
    torch.manual_seed(3)
    seed = int(torch.randint(0, 2**31 - 1, ()).item())
    random.seed(seed)
    np.random.seed(seed)
    expected = tvF.pil_to_tensor(theirs(tvF.to_pil_image(img)))
    assert out.dtype == torch.uint8 and torch.equal(out, expected)


def test_seeded_by_torch_and_leaves_global_rngs_alone():
    op = TimmAutoAugment(RAND, image_size=S, mean=(0.5, 0.5, 0.5))
    img = image_tensor()
    random.seed(123)
    np.random.seed(123)
    python_state, numpy_state = random.getstate(), np.random.get_state()[1].copy()
    outs = []
    for seed in (0, 0, 1, 2, 3):
        torch.manual_seed(seed)
        outs.append(op(img))
    assert torch.equal(outs[0], outs[1])  # same torch seed, same augmentation
    assert any(not torch.equal(outs[0], o) for o in outs[2:])  # other seeds, other augmentations
    # Python's and NumPy's global RNGs (timm Mixup draws from NumPy's) are as they were
    assert random.getstate() == python_state and np.array_equal(np.random.get_state()[1], numpy_state)


def test_train_preset_uses_it_after_the_flip():
    config = AugmentationConfig(image_size=S, auto_augment=RAND, color_jitter=0.0, rotation=0.0, blur_prob=0.0)
    preset = TrainPreset(config)
    names = [type(t).__name__ for t in preset.transforms.transforms]
    assert names[:3] == ["RandomResizedCrop", "RandomHorizontalFlip", "TimmAutoAugment"]
    image = PIL.Image.fromarray(image_tensor().permute(1, 2, 0).numpy())
    torch.manual_seed(0)
    first = preset(image)
    torch.manual_seed(0)
    assert torch.equal(first, preset(image))  # the dataset's per-item torch seed fixes the whole chain
    plain = TrainPreset(AugmentationConfig(image_size=S, color_jitter=0.0, rotation=0.0, blur_prob=0.0))
    torch.manual_seed(0)
    assert not torch.equal(first, plain(image))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(auto_augment=RAND), r"replaces colour jitter \(as in timm\), so color_jitter must be 0"),
        (dict(auto_augment="randaug-m9", color_jitter=0.0), r"'randaug-m9' is not a timm auto-augment string"),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AugmentationConfig(image_size=S, **kwargs)
