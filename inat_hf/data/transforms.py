"""Train / eval / TTA transform presets, in the style of torchvision's ``references/classification/presets.py``.

Each preset takes one image (anything :func:`~inat_hf.data.decode.decode_image` accepts) and returns float32,
normalised; keyword names follow timm's ``create_transform``. :class:`TrainPreset` runs every augmentation on the
uint8 crop (only the crop is resized; the colour / rotation / blur work touches ``S x S`` pixels), with the fast
kernels of :mod:`inat_hf.data.kernels`. :class:`EvalPreset` is exactly the model's image processor (tested equal);
:class:`TTAPreset` gives ``[V, 3, S, S]`` deterministic views (:data:`~inat_hf.data.tta_views.TTA_VIEWS`), view 0
being the eval preset's output. Datasets apply a preset per item with
:class:`~inat_hf.data.torch_dataset.ImageClassificationDataset`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as tvF

from .array_preset import PIL_RESAMPLE as _PIL_RESAMPLE
from .augmentation import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, AugmentationConfig
from .decode import ImageInput, decode_image
from .kernels import FusedColorJitter, RandomGaussianBlur, RandomRotationNearest, TimmAutoAugment
from .tta_views import TTA_VIEWS


def _interpolation(value: str | int | v2.InterpolationMode) -> v2.InterpolationMode:
    if isinstance(value, v2.InterpolationMode):
        return value
    name = _PIL_RESAMPLE.get(value) if isinstance(value, int) else str(value).lower()
    if name not in _PIL_RESAMPLE.values():
        raise ValueError(
            f"interpolation: expected one of {sorted(_PIL_RESAMPLE.values())} or a PIL resample code "
            f"{sorted(_PIL_RESAMPLE)}, found {value!r}"
        )
    return v2.InterpolationMode(name)


def normalize(
    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN, std: Sequence[float] = IMAGENET_DEFAULT_STD
) -> v2.Compose:
    """The presets' one normalisation: uint8 ``[..., 3, H, W]`` -> float32 ``(x / 255 - mean) / std``, the image
    processor's rescale + normalise (equal to float rounding)."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


def resize_shortest_edge(
    img: torch.Tensor, size: int, interpolation: str | int | v2.InterpolationMode = "bicubic"
) -> torch.Tensor:
    """Resize so the shorter edge is ``size`` (long edge ``int(size * long / short)``), antialiased -- the image
    processors' ``size={"shortest_edge": size}``."""
    h, w = img.shape[-2:]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_hw = [new_long, new_short] if w <= h else [new_short, new_long]
    return tvF.resize(img, new_hw, interpolation=_interpolation(interpolation), antialias=True)


def center_crop(img: torch.Tensor, size: int) -> torch.Tensor:
    """Center crop to ``size x size``, zero padding first when the image is smaller (the image processors' rule:
    ``top = int((H - size) / 2)``, which differs from ``tvF.center_crop``'s rounding for odd margins)."""
    h, w = img.shape[-2:]
    if size > w or size > h:
        dw, dh = max(size - w, 0), max(size - h, 0)
        img = tvF.pad(img, [dw // 2, dh // 2, (dw + 1) // 2, (dh + 1) // 2], fill=0)
        h, w = img.shape[-2:]
    top, left = int((h - size) / 2.0), int((w - size) / 2.0)
    return img[..., top : top + size, left : left + size]


class TrainPreset:
    """The training recipe of an :class:`AugmentationConfig` (each augmentation off at its zero value)::

        RandomResizedCrop -> RandomHorizontalFlip -> TimmAutoAugment -> FusedColorJitter -> RandomRotationNearest
        -> RandomGaussianBlur -> normalize -> RandomErasing

    Randomness comes from torch's global RNG (``ImageClassificationDataset(seed=...)`` makes it a function of the
    item). ``preset.transforms`` is the ``v2.Compose`` applied to the decoded uint8 tensor.
    """

    def __init__(self, aug: AugmentationConfig | None = None) -> None:
        aug = AugmentationConfig() if aug is None else aug
        self.aug = aug
        interpolation = _interpolation(aug.train_interpolation)
        crop = v2.RandomResizedCrop(aug.image_size, aug.scale, aug.ratio, interpolation=interpolation, antialias=True)
        ops: list[Callable] = [crop]
        if aug.hflip > 0:
            ops.append(v2.RandomHorizontalFlip(aug.hflip))
        if aug.auto_augment:
            kwargs = dict(image_size=aug.image_size, mean=aug.mean, interpolation=aug.train_interpolation)
            ops.append(TimmAutoAugment(aug.auto_augment, **kwargs))
        b, c, s = aug.jitter_strengths
        if b or c or s or aug.jitter_hue:
            jitter = FusedColorJitter if aug.color_jitter_impl == "fused" else v2.ColorJitter
            ops.append(jitter(b, c, s, aug.jitter_hue))
        if aug.rotation > 0:
            ops.append(RandomRotationNearest(aug.rotation))
        if aug.blur_prob > 0:
            ks = aug.blur_kernel_size or 2 * math.ceil(3 * aug.blur_sigma[1]) + 1
            ops.append(RandomGaussianBlur(ks, aug.blur_sigma, p=aug.blur_prob))
        ops += normalize(aug.mean, aug.std).transforms
        if aug.re_prob > 0:
            # Fills 0 after normalisation: the mean colour.
            ops.append(v2.RandomErasing(aug.re_prob, scale=aug.re_scale, ratio=aug.re_ratio, value=0.0))
        self.transforms = v2.Compose(ops)

    def __call__(self, image: ImageInput) -> torch.Tensor:
        return self.transforms(decode_image(image))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(transforms={self.transforms})"


class EvalPreset:
    """The model's image processor (BitImageProcessor) on one image: resize the shortest edge to ``resize_size``
    (default ``floor(image_size / crop_pct)``, antialiased) -> center crop ``image_size`` (zero padded when
    smaller) -> :func:`normalize`. :func:`~inat_hf.data.array_preset.eval_kwargs_from_image_processor` copies a processor's settings."""

    def __init__(
        self,
        *,
        image_size: int = 224,
        crop_pct: float = 0.875,
        resize_size: int | None = None,
        interpolation: str | int | v2.InterpolationMode = "bicubic",
        mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        std: Sequence[float] = IMAGENET_DEFAULT_STD,
    ) -> None:
        self.image_size = int(image_size)
        if resize_size is None and not 0.0 < crop_pct <= 1.0:
            raise ValueError(f"crop_pct must be in (0, 1], found {crop_pct}")
        self.resize_size = int(resize_size) if resize_size is not None else math.floor(image_size / crop_pct)
        self.interpolation = _interpolation(interpolation)
        self.normalize = normalize(mean, std)

    def _view(self, img: torch.Tensor, resize_size: int) -> torch.Tensor:
        return center_crop(resize_shortest_edge(img, resize_size, self.interpolation), self.image_size)

    def __call__(self, image: ImageInput) -> torch.Tensor:
        return self.normalize(self._view(decode_image(image), self.resize_size))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(image_size={self.image_size}, resize_size={self.resize_size}, "
            f"interpolation={self.interpolation.value})"
        )


class TTAPreset(EvalPreset):
    """``num_views`` (1..8) deterministic views of one image, ``[V, 3, S, S]``, from a single decode (see
    :data:`TTA_VIEWS`); view 0 equals :class:`EvalPreset`'s output and view 1 its mirror. Accepts the same
    keywords as :class:`EvalPreset`. Stack ``B`` of them into ``[B, V, 3, S, S]`` for one batched forward of
    ``B * V`` images."""

    def __init__(self, *, num_views: int = 5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 1 <= num_views <= len(TTA_VIEWS):
            raise ValueError(f"num_views must be in 1..{len(TTA_VIEWS)}, found {num_views}")
        self.num_views = int(num_views)
        self.views = TTA_VIEWS[:num_views]

    def __call__(self, image: ImageInput) -> torch.Tensor:
        img = decode_image(image)
        crops: dict[float | None, torch.Tensor] = {}
        views = []
        for _, zoom, flip in self.views:
            if zoom not in crops:  # zoom None ("full"): the shortest edge resized to the crop size itself
                size = self.image_size if zoom is None else math.floor(self.resize_size * zoom)
                crops[zoom] = self._view(img, size)
            views.append(crops[zoom].flip(-1) if flip else crops[zoom])
        return self.normalize(torch.stack(views))

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", views={[v[0] for v in self.views]})"
