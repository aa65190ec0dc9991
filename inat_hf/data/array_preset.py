"""The evaluation / TTA preprocessing with PIL and numpy only, for the ONNX backend (which never imports torch).

:class:`ArrayPreset` computes what :class:`~inat_hf.data.transforms.TTAPreset` (``num_views > 1``) or
:class:`~inat_hf.data.transforms.EvalPreset` (``num_views == 1``) compute, view for view (:data:`TTA_VIEWS`): resize
the shortest edge (PIL, which antialiases like torchvision's ``antialias=True``), center crop with the image
processors' floor rule and zero padding, mirror, ``(x / 255 - mean) / std``. PIL's and torchvision's uint8 resize
kernels round differently, so the two agree to a pixel level or so, not bit for bit:
``tests/inference/test_onnx.py`` bounds the difference and checks that predictions agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import PIL.Image

from .decode import ImageInput, decode_array
from .tta_views import TTA_VIEWS

# PIL.Image.Resampling codes (transformers image processors store `resample` so) and the names they stand for.
PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}


def eval_kwargs_from_image_processor(processor: Any) -> dict[str, Any]:
    """Keyword arguments for :class:`~inat_hf.data.transforms.EvalPreset` / ``TTAPreset`` / :class:`ArrayPreset`
    that reproduce a transformers image processor (an object, or its ``preprocessor_config.json`` as a dict) with
    ``size={"shortest_edge": R}`` and ``crop_size={"height": S, "width": S}`` (BitImageProcessor, e.g. the
    model's). Raises ``ValueError`` for processors configured otherwise."""

    def get(obj, key, default=None):
        return obj.get(key, default) if isinstance(obj, Mapping) else getattr(obj, key, default)

    size, crop = get(processor, "size"), get(processor, "crop_size")
    shortest = get(size, "shortest_edge") if size is not None else None
    if not shortest or not get(processor, "do_center_crop", True) or crop is None:
        raise ValueError(
            f"expected an image processor with size={{'shortest_edge': R}} and a center crop, found size={size}"
        )
    height, width = get(crop, "height"), get(crop, "width")
    if height != width:
        raise ValueError(f"expected a square crop_size, found {crop}")
    resample = get(processor, "resample")
    return {
        "image_size": int(height),
        "resize_size": int(shortest),
        "interpolation": int(resample) if isinstance(resample, (int, np.integer)) else resample,
        "mean": tuple(float(v) for v in get(processor, "image_mean")),
        "std": tuple(float(v) for v in get(processor, "image_std")),
    }


def _pil_resample(interpolation: Any) -> int:
    name = PIL_RESAMPLE.get(interpolation) if isinstance(interpolation, (int, np.integer)) else None
    name = name or str(getattr(interpolation, "value", interpolation)).lower()  # a name or an InterpolationMode
    codes = {v: k for k, v in PIL_RESAMPLE.items()}
    if name not in codes:
        raise ValueError(
            f"interpolation: expected one of {sorted(codes)} or a PIL code {sorted(PIL_RESAMPLE)}, found {interpolation!r}"
        )
    return codes[name]


class ArrayPreset:
    """One image -> float32 ``[3, S, S]`` (``num_views == 1``) or ``[V, 3, S, S]`` (the first ``V`` of
    :data:`TTA_VIEWS`), as the torch presets with the same keywords (:func:`eval_kwargs_from_image_processor`)."""

    def __init__(
        self,
        *,
        image_size: int,
        resize_size: int,
        interpolation: Any = "bicubic",
        mean: Sequence[float],
        std: Sequence[float],
        num_views: int = 1,
    ) -> None:
        if not 1 <= num_views <= len(TTA_VIEWS):
            raise ValueError(f"num_views must be in 1..{len(TTA_VIEWS)}, found {num_views}")
        self.image_size, self.resize_size, self.num_views = int(image_size), int(resize_size), int(num_views)
        self.resample = _pil_resample(interpolation)
        self.scale = (1 / (255 * np.asarray(std, dtype=np.float32)))[:, None, None]
        self.shift = (np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32))[:, None, None]

    def _view(self, image: PIL.Image.Image, short: int) -> np.ndarray:
        w, h = image.size
        if w <= h:
            new = (short, int(short * h / w))
        else:
            new = (int(short * w / h), short)
        array = np.asarray(image.resize(new, self.resample))  # [H, W, 3] uint8
        s = self.image_size
        h, w = array.shape[:2]
        if s > w or s > h:  # zero padding, as the processors' center crop
            dw, dh = max(s - w, 0), max(s - h, 0)
            array = np.pad(array, ((dh // 2, (dh + 1) // 2), (dw // 2, (dw + 1) // 2), (0, 0)))
            h, w = array.shape[:2]
        top, left = int((h - s) / 2.0), int((w - s) / 2.0)
        return array[top : top + s, left : left + s]

    def __call__(self, image: ImageInput) -> np.ndarray:
        pil = PIL.Image.fromarray(decode_array(image))
        crops: dict[float | None, np.ndarray] = {}
        views = []
        for _, zoom, flip in TTA_VIEWS[: self.num_views]:
            if zoom not in crops:  # zoom None ("full"): the shortest edge resized to the crop size itself
                crops[zoom] = self._view(pil, self.image_size if zoom is None else math.floor(self.resize_size * zoom))
            views.append(crops[zoom][:, ::-1] if flip else crops[zoom])
        chw = np.stack(views).transpose(0, 3, 1, 2).astype(np.float32)  # [V, 3, S, S]
        out = chw * self.scale - self.shift
        return out[0] if self.num_views == 1 else out
