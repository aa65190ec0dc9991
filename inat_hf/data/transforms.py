"""Train / eval / TTA transform presets: the one transforms module of inat_hf.

Recipes are code, in the style of torchvision's reference presets. Keyword names follow timm's
``create_transform`` (``image_size`` is used throughout for its ``input_size``).

Presets (each callable on one image: anything :func:`~inat_hf.data.decode.decode_image` accepts)
-----------------------------------------------------------------------------------------------
* :class:`TrainPreset` -- the seed project's augmentation recipe, held by :class:`AugmentationConfig`::

      decode (JPEG DCT-reduced only while the smallest crop keeps image_size px per side: see decode_min_size)
      -> RandomResizedCrop(image_size, scale, ratio)    uint8, crop first, antialiased resize of the crop only
      -> RandomHorizontalFlip(hflip)                    uint8
      -> TimmAutoAugment(auto_augment)                  uint8 -> PIL -> timm RandAugment/AugMix/AutoAugment -> uint8
      -> FusedColorJitter(color_jitter, hue)            uint8 in/out, affine colour maps + torchvision's HSV hue
      -> RandomRotationNearest(rotation)                uint8, torchvision's PIL kernel (nearest, fill 0)
      -> RandomGaussianBlur(blur_prob, blur_sigma)      separable, equal to torchvision's GaussianBlur
      -> ToNormalizedFloat(mean, std)                   float32; skipped with normalize=False
      -> RandomErasing(re_prob)                         fills the mean colour (0 after normalisation)

  Every augmentation is switched off by its config value: ``hflip=0``, ``color_jitter=0``, ``rotation=0``,
  ``blur_prob=0``, ``re_prob=0`` (and ``scale=(1, 1)``, ``ratio=(r, r)`` for the image's aspect ratio ``r`` make
  the crop deterministic: a plain resize).
* :class:`EvalPreset` -- exactly the model's image processor (transformers ``BitImageProcessor``, torchvision
  backend): resize the shortest edge to ``floor(image_size / crop_pct)`` (antialiased, bicubic by default) ->
  center crop ``image_size`` (zero padded when smaller) -> ``/255`` -> normalise. Tested equal (atol 1e-5).
* :class:`TTAPreset` / :func:`tta_views` -- ``[V, 3, S, S]`` deterministic views of one decoded image,
  view 0 being the eval preset's output; see :data:`TTA_VIEWS`.

Why this is fast (``benchmarks/bench_data.py``: one core of this repo's 2-core dev box, 500x375 q90 JPEGs)
-----------------------------------------------------------------------------------------------------------
The seed chain (PIL decode, ``ToTensor`` at full resolution, v1 float transforms) is the baseline of
``bench_data.py`` (figures in ``benchmarks/results.md``); this preset has the same augmentation families and the
same float32 ``[3, 224, 224]`` output. Per op at 224 px (torchvision v2 on uint8 / on float32 -> ours):
``RandomResizedCrop`` from 500x375 0.74 / 1.87 ms (so: crop first, from uint8, antialiased -- stock v2);
``ColorJitter(.4, .4, .4, .1)``: torchvision's colour kernels compute in float whatever the input dtype and its
HSV round trip for hue dominates; ours fuses brightness / contrast / saturation into affine maps and computes
the same HSV hue shift with fewer tensor ops (:func:`hsv_hue_shift`); ``RandomRotation(15)`` 2.7 / 2.4 -> 0.49 ms (``grid_sample`` -> torchvision's PIL kernel on the
uint8 image); ``GaussianBlur(13)`` 6.0 / 5.7 -> 2.1 ms (2-D -> separable, and only 10% of images). uint8 is not
faster than float for torchvision's colour / rotation / blur kernels here -- only for resizing -- so the speed
comes from the kernels above, with float work confined to the final normalisation (0.28 ms).

Deviation from torchvision's ``ColorJitter`` (documented, same family): brightness / contrast / saturation are
composed (in the random order torchvision samples) into affine colour maps, clamped once per map instead of after
every step. Hue is torchvision's own HSV hue shift (``adjust_hue``), applied at its place in the order between
the affine maps: a rotation of the YIQ chroma plane (the fused alternative) moves different colours by different
HSV angles (0.37x-1.46x of the requested shift) and changes their value, and colour is a species cue.
``AugmentationConfig(color_jitter_impl="torchvision")`` restores torchvision's kernel exactly, at its cost.

Batches for ``datasets``
------------------------
:func:`make_train_transform` / :func:`make_eval_transform` / :func:`make_tta_transform` return
:class:`BatchTransform` objects for ``Dataset.with_transform`` / ``set_transform``::

    ds = ds.cast_column("image", datasets.Image(decode=False))   # decode in the transform, DCT-reduced
    train_ds = ds.with_transform(make_train_transform(AugmentationConfig()))
    # batch {"image": [...], "label": [...]} -> {"pixel_values": [B, 3, S, S], "labels": int64 [B]}

With ``with_transform`` the ``Trainer`` must run with ``remove_unused_columns=False`` (else it drops the
``image`` column before the transform sees it: ``KeyError: 'image'``). Use
:class:`~inat_hf.data.collate.ImageClassificationCollator` as ``data_collator``.

uint8 batches and on-device normalisation
-----------------------------------------
``normalize=False`` (presets and ``make_*_transform``) keeps images uint8 to the end: 4x fewer bytes through
worker pipes, pinned memory and host-to-device copies. Normalise on the device with :class:`Normalizer` (an
``nn.Module``; passes float batches through untouched) or :func:`normalize_uint8`. Random erasing then fills the
mean colour ``round(255 * mean)``, which normalises to ~0, the value the float path fills.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as nnF
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as tvF

from .augmentation import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, AugmentationConfig
from .decode import ImageInput, decode_image
from .tta_views import TTA_VIEWS

__all__ = [
    "TTA_VIEWS",
    "BatchTransform",
    "EvalPreset",
    "FusedColorJitter",
    "Normalizer",
    "RandomGaussianBlur",
    "RandomRotationNearest",
    "TTAPreset",
    "TimmAutoAugment",
    "ToNormalizedFloat",
    "TrainPreset",
    "center_crop",
    "eval_kwargs_from_image_processor",
    "make_eval_transform",
    "make_train_transform",
    "make_tta_transform",
    "normalize_uint8",
    "resize_shortest_edge",
    "tta_views",
]

_INTERPOLATIONS = {
    "nearest": v2.InterpolationMode.NEAREST,
    "bilinear": v2.InterpolationMode.BILINEAR,
    "bicubic": v2.InterpolationMode.BICUBIC,
    "lanczos": v2.InterpolationMode.LANCZOS,
}
# PIL.Image.Resampling values, as stored in transformers image processors' `resample`.
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}


def _interpolation(value: str | int | v2.InterpolationMode) -> v2.InterpolationMode:
    if isinstance(value, v2.InterpolationMode):
        return value
    if isinstance(value, int):
        if value not in _PIL_RESAMPLE:
            raise ValueError(f"interpolation: expected a PIL resample code in {sorted(_PIL_RESAMPLE)}, found {value}")
        value = _PIL_RESAMPLE[value]
    try:
        return _INTERPOLATIONS[str(value).lower()]
    except KeyError:
        raise ValueError(f"interpolation: expected one of {sorted(_INTERPOLATIONS)}, found {value!r}") from None


# --------------------------------------------------------------------------------------------------------------
# Custom v2 transforms (uint8-friendly fast kernels)
# --------------------------------------------------------------------------------------------------------------

# torchvision's grayscale weights (rgb_to_grayscale).
_GRAY = np.array([0.2989, 0.587, 0.114])


def _jitter_range(value: float | Sequence[float], name: str, center: float = 1.0, bound: float = math.inf):
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, found {value}")
        if value == 0:
            return None
        lo, hi = max(center - value, 0.0 if center == 1.0 else -bound), center + value
    else:
        lo, hi = (float(v) for v in value)
    if center == 0.0 and not -bound <= lo <= hi <= bound:
        raise ValueError(f"{name} must lie in [-{bound}, {bound}], found ({lo}, {hi})")
    return None if lo == hi == center else (lo, hi)


class FusedColorJitter(v2.Transform):
    """``ColorJitter`` with fused kernels: brightness, contrast, saturation and hue factors are sampled as by
    ``torchvision.transforms.v2.ColorJitter`` (same ranges, random order). The brightness / contrast / saturation
    steps on either side of the hue step are each composed into one 3x3 matrix + offset, applied once and clamped
    once; the hue step is torchvision's HSV hue shift (``adjust_hue``). uint8 in -> uint8 out (rounded); float in
    [0, 1] -> float.
    """

    def __init__(
        self,
        brightness: float | Sequence[float] = 0.0,
        contrast: float | Sequence[float] = 0.0,
        saturation: float | Sequence[float] = 0.0,
        hue: float | Sequence[float] = 0.0,
    ) -> None:
        super().__init__()
        self.brightness = _jitter_range(brightness, "brightness")
        self.contrast = _jitter_range(contrast, "contrast")
        self.saturation = _jitter_range(saturation, "saturation")
        self.hue = _jitter_range(hue, "hue", center=0.0, bound=0.5)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        order = torch.randperm(4).tolist()

        def sample(rng):
            return None if rng is None else float(torch.empty(1).uniform_(rng[0], rng[1]))

        return {
            "order": order,
            "brightness": sample(self.brightness),
            "contrast": sample(self.contrast),
            "saturation": sample(self.saturation),
            "hue": sample(self.hue),
        }

    @staticmethod
    def color_matrix(params: Mapping[str, Any], mean_rgb: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
        """(3x3 matrix, offset) of the composed brightness / contrast / saturation steps in ``params["order"]``
        (hue, op 3, is not affine and is skipped here), in the image's value units. ``mean_rgb`` (per-channel mean
        of the input) is needed when contrast is jittered: torchvision blends with the mean grey level of the image
        as it is at that step, which for an affine map is ``gray . (M @ mean_rgb + b)``."""
        m = np.eye(3)
        b = np.zeros(3)
        for op in params["order"]:
            if op == 0 and params["brightness"] is not None:
                f = params["brightness"]
                m, b = f * m, f * b
            elif op == 1 and params["contrast"] is not None:
                f = params["contrast"]
                gray_mean = float(_GRAY @ (m @ np.asarray(mean_rgb) + b))
                m, b = f * m, f * b + (1.0 - f) * gray_mean
            elif op == 2 and params["saturation"] is not None:
                f = params["saturation"]
                s = f * np.eye(3) + (1.0 - f) * np.tile(_GRAY, (3, 1))
                m, b = s @ m, s @ b
        return m, b

    @classmethod
    def _affine(cls, x: torch.Tensor, params: Mapping[str, Any], order: list[int], top: float) -> torch.Tensor:
        """Apply the affine steps of ``order`` to float ``x`` (values in [0, top]) and clamp once."""
        if not any(op != 3 and params[_OPS[op]] is not None for op in order):
            return x
        step = {**params, "order": order}
        mean_rgb = x.mean(dim=(-2, -1)).tolist() if params["contrast"] is not None and 1 in order else None
        m, b = cls.color_matrix(step, mean_rgb)
        # (3, 3) @ (3, H*W) on a CHW buffer is the fast GEMM layout here (an (H*W, 3) result is ~10x slower).
        m_t = torch.from_numpy(m.astype(np.float32)).to(x.device)
        b_t = torch.from_numpy(b.astype(np.float32)).to(x.device)
        return torch.addmm(b_t[:, None], m_t, x.reshape(3, -1)).view(x.shape).clamp_(0.0, top)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, torch.Tensor):
            raise TypeError(f"FusedColorJitter expects an image tensor, found {type(inpt).__name__}")
        if all(params[k] is None for k in _OPS):
            return inpt
        if inpt.ndim != 3 or inpt.shape[0] != 3:
            raise ValueError(f"FusedColorJitter expects one RGB image [3, H, W], found shape {tuple(inpt.shape)}")
        is_uint8 = inpt.dtype == torch.uint8
        top = 255.0 if is_uint8 else 1.0
        order = list(params["order"])
        y = inpt.to(torch.float32)
        if params["hue"] is None:
            y = self._affine(y, params, order, top)
        else:
            k = order.index(3)
            y = self._affine(y, params, order[:k], top)
            y = hsv_hue_shift(y, params["hue"])
            y = self._affine(y, params, order[k + 1 :], top)
        if not is_uint8:
            return y.to(inpt.dtype)
        return _float_to_uint8(y.round_())


_OPS = ("brightness", "contrast", "saturation", "hue")
# hsv_hue_shift: position of R, G, B on the hue hexagon in the HSV -> RGB formula below
_HUE_CHANNEL_OFFSETS = torch.tensor([5.0, 3.0, 1.0]).view(3, 1, 1)


def hsv_hue_shift(x: torch.Tensor, hue: float) -> torch.Tensor:
    """torchvision's ``adjust_hue`` (shift of the HSV hue channel by ``hue`` turns) on a float ``[3, H, W]`` image,
    in any value scale (``[0, 1]`` or ``[0, 255]``: the shift keeps each pixel's max and min channel, so it is
    scale-free). Hue is computed exactly as torchvision's ``_rgb_to_hsv``; the way back uses the closed form
    ``c = max - (max - min) * clamp(min(k, 4 - k), 0, 1)`` with ``k = (n_c + 6 h) mod 6`` (``n`` = 5, 3, 1 for
    R, G, B), which equals torchvision's ``_hsv_to_rgb`` sector table with a few tensor ops instead of a 6-way
    masked sum; equal to it within one uint8 level (tested)."""
    r, g, b = x.unbind(0)
    maxc = x.amax(0)
    minc = x.amin(0)
    chroma = maxc - minc
    divisor = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    rc, gc, bc = (maxc - r) / divisor, (maxc - g) / divisor, (maxc - b) / divisor
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    h6 = torch.where(is_r, bc - gc, torch.where(is_g, 2.0 + rc - bc, 4.0 + gc - rc))
    # hue in sixths of a turn, shifted, wrapped into [0, 6) (floor arithmetic: torch.remainder is ~10x slower)
    h6 = h6 + 6.0 * hue
    h6 = h6 - 6.0 * torch.floor(h6 * (1.0 / 6.0))
    k = _HUE_CHANNEL_OFFSETS.to(x.device) + h6  # in [1, 11)
    k = torch.where(k >= 6.0, k - 6.0, k)
    w = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return maxc - chroma * w


class TimmAutoAugment(v2.Transform):
    """timm's RandAugment / AugMix / AutoAugment (``timm.data.auto_augment``) on a uint8 ``[3, H, W]`` tensor.

    Built with the parameters timm's ``create_transform`` uses (translate 45% of the image size, the mean colour as
    fill, the crop interpolation). timm's ops are PIL-based and draw from Python's ``random`` and NumPy's global RNG;
    here each call seeds both from torch's RNG (so the dataset's per-item seeding covers them, like every other op)
    and restores them afterwards, leaving e.g. the Mixup RNG of the training loop untouched.
    """

    def __init__(self, config_str: str, *, image_size: int, mean: Sequence[float], interpolation: str = "bilinear"):
        super().__init__()
        from timm.data.auto_augment import augment_and_mix_transform, auto_augment_transform, rand_augment_transform
        from timm.data.transforms import str_to_pil_interp

        params = dict(translate_const=int(image_size * 0.45), img_mean=tuple(min(255, round(255 * x)) for x in mean))
        if interpolation and interpolation != "random":
            params["interpolation"] = str_to_pil_interp(interpolation)
        self.config_str = config_str
        if config_str.startswith("rand"):
            self.op = rand_augment_transform(config_str, params)
        elif config_str.startswith("augmix"):
            self.op = augment_and_mix_transform(config_str, {**params, "translate_pct": 0.3})
        else:
            self.op = auto_augment_transform(config_str, params)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"seed": int(torch.randint(0, 2**31 - 1, ()).item())}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, torch.Tensor) or inpt.dtype != torch.uint8:
            raise TypeError(f"TimmAutoAugment expects a uint8 image tensor, got {type(inpt).__name__}")
        python_state, numpy_state = random.getstate(), np.random.get_state()
        random.seed(params["seed"])
        np.random.seed(params["seed"])
        try:
            out = self.op(tvF.to_pil_image(inpt))
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
        return tvF.pil_to_tensor(out)

    def extra_repr(self) -> str:
        return repr(self.config_str)


def _float_to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Cast a float tensor holding integral values in [0, 255] to uint8 (numpy's cast is ~5x faster than torch's
    saturating float->uint8 conversion on CPU)."""
    if x.device.type != "cpu":
        return x.to(torch.uint8)
    return torch.from_numpy(x.numpy().astype(np.uint8))


class RandomRotationNearest(v2.Transform):
    """``v2.RandomRotation(degrees)`` with nearest interpolation and a constant fill, through torchvision's PIL
    kernel for uint8 images (~5x faster than its ``grid_sample`` tensor kernel here; both rotate about the
    center, counter-clockwise for positive angles, and agree on >99.8% of pixels). Float tensors use the tensor
    kernel."""

    def __init__(self, degrees: float, fill: int = 0) -> None:
        super().__init__()
        if degrees < 0:
            raise ValueError(f"degrees must be >= 0, found {degrees}")
        self.degrees = float(degrees)
        self.fill = int(fill)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"angle": float(torch.empty(1).uniform_(-self.degrees, self.degrees))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        angle = params["angle"]
        if angle == 0.0:
            return inpt
        if not isinstance(inpt, torch.Tensor) or inpt.dtype != torch.uint8 or inpt.ndim != 3 or inpt.shape[0] != 3:
            return tvF.rotate(inpt, angle, interpolation=v2.InterpolationMode.NEAREST, fill=self.fill)
        # CHW planes -> PIL RGB without a transposing copy (merge), rotate, back as an HWC buffer viewed as CHW.
        planes = inpt.numpy()
        if not all(p.flags.c_contiguous for p in planes):
            planes = inpt.contiguous().numpy()
        pil = PIL.Image.merge("RGB", [PIL.Image.fromarray(p) for p in planes])
        out = pil.rotate(angle, resample=PIL.Image.Resampling.NEAREST, fillcolor=(self.fill,) * 3)
        return torch.from_numpy(np.array(out)).permute(2, 0, 1)


def _gaussian_kernel1d(kernel_size: int, sigma: float) -> torch.Tensor:
    # Same formula as torchvision's _get_gaussian_kernel1d, so results match v2.GaussianBlur.
    lim = (kernel_size - 1) / (2.0 * math.sqrt(2.0))
    x = torch.linspace(-lim, lim, steps=kernel_size, dtype=torch.float32)
    return torch.softmax(x.div(sigma).pow(2).neg(), dim=0)


def separable_gaussian_blur(img: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """Gaussian blur of a ``[..., C, H, W]`` image with reflect padding: numerically torchvision's
    ``gaussian_blur(img, [k, k], [sigma, sigma])`` (a 2-D convolution), computed as two 1-D passes."""
    dtype = img.dtype
    half = kernel_size // 2
    shape = img.shape
    x = img.reshape(-1, *shape[-3:]).to(torch.float32)
    # Reflect padding (torchvision's) needs pad < size; images under kernel_size // 2 px fall back to replicate.
    mode = "reflect" if half < min(shape[-2:]) else "replicate"
    k = _gaussian_kernel1d(kernel_size, sigma).tolist()
    x = nnF.pad(x, (half, half, half, half), mode=mode)
    h, w = shape[-2:]
    acc = x[..., :, 0:w] * k[0]
    for i in range(1, kernel_size):
        acc.add_(x[..., :, i : i + w], alpha=k[i])
    out = acc[..., 0:h, :] * k[0]
    for i in range(1, kernel_size):
        out.add_(acc[..., i : i + h, :], alpha=k[i])
    out = out.reshape(shape)
    if dtype == torch.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return out.to(dtype)


class RandomGaussianBlur(v2.Transform):
    """With probability ``p``, ``v2.GaussianBlur(kernel_size, sigma)`` (sigma uniform in ``sigma``), computed
    separably (2 x k taps per pixel instead of k x k). uint8 in -> uint8 out."""

    def __init__(self, kernel_size: int, sigma: Sequence[float] = (0.1, 2.0), p: float = 0.5) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, found {kernel_size}")
        self.kernel_size = int(kernel_size)
        self.sigma = (float(sigma[0]), float(sigma[1]))
        self.p = float(p)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        if torch.rand(1) >= self.p:
            return {"sigma": None}
        return {"sigma": float(torch.empty(1).uniform_(self.sigma[0], self.sigma[1]))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["sigma"] is None:
            return inpt
        return separable_gaussian_blur(inpt, self.kernel_size, params["sigma"])


def _scaled_mean_std(mean: Sequence[float], std: Sequence[float], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    # Exactly how transformers' TorchvisionBackend folds the 1/255 rescale into normalisation.
    rescale = 1.0 / 255.0
    mean_t = torch.tensor(list(mean), dtype=torch.float32, device=device) * (1.0 / rescale)
    std_t = torch.tensor(list(std), dtype=torch.float32, device=device) * (1.0 / rescale)
    return mean_t, std_t


def normalize_uint8(
    pixel_values: torch.Tensor,
    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    std: Sequence[float] = IMAGENET_DEFAULT_STD,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(x - 255 * mean) / (255 * std)`` for a uint8 ``[..., 3, H, W]`` batch, on its device, in ``dtype``
    (float32 by default). Memory format (e.g. ``channels_last``) is preserved. Same arithmetic as the eval preset
    and transformers' image processors, so host and device normalisation agree to float rounding."""
    if pixel_values.dtype != torch.uint8:
        raise TypeError(f"normalize_uint8 expects a uint8 tensor, found {pixel_values.dtype}")
    mean_t, std_t = _scaled_mean_std(mean, std, pixel_values.device)
    x = pixel_values.to(torch.float32)
    x = x.sub_(mean_t.view(-1, 1, 1)).div_(std_t.view(-1, 1, 1))
    return x if dtype == torch.float32 else x.to(dtype)


class Normalizer(torch.nn.Module):
    """On-device normalisation of uint8 ``pixel_values`` (``[B, 3, H, W]`` or TTA ``[B, V, 3, H, W]``).

    Floating-point inputs are returned unchanged (they come normalised from ``normalize=True`` presets), so a
    trainer can call it unconditionally. Move it to the device with the model (``.to(device)``)."""

    def __init__(
        self,
        mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        std: Sequence[float] = IMAGENET_DEFAULT_STD,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        mean_t, std_t = _scaled_mean_std(mean, std)
        self.register_buffer("mean", mean_t.view(-1, 1, 1), persistent=False)
        self.register_buffer("std", std_t.view(-1, 1, 1), persistent=False)
        self.dtype = dtype

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.dtype != torch.uint8:
            return pixel_values
        x = pixel_values.to(torch.float32).sub_(self.mean).div_(self.std)
        return x if self.dtype == torch.float32 else x.to(self.dtype)


class ToNormalizedFloat(v2.Transform):
    """uint8 image -> float32 normalised ``(x - 255 mean) / (255 std)`` (the image processor's arithmetic)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_DEFAULT_MEAN, std: Sequence[float] = IMAGENET_DEFAULT_STD):
        super().__init__()
        self.mean, self.std = _scaled_mean_std(mean, std)
        self.mean, self.std = self.mean.view(-1, 1, 1), self.std.view(-1, 1, 1)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if inpt.dtype != torch.uint8:
            raise TypeError(f"ToNormalizedFloat expects a uint8 image, found {inpt.dtype}")
        # Output is always a contiguous CHW float32 tensor (inputs may be HWC buffers, e.g. from PIL kernels).
        return inpt.to(torch.float32, memory_format=torch.contiguous_format).sub_(self.mean).div_(self.std)


# --------------------------------------------------------------------------------------------------------------
# Eval helpers: transformers TorchvisionBackend semantics
# --------------------------------------------------------------------------------------------------------------


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
        pad = [
            (size - w) // 2 if size > w else 0,
            (size - h) // 2 if size > h else 0,
            (size - w + 1) // 2 if size > w else 0,
            (size - h + 1) // 2 if size > h else 0,
        ]
        img = tvF.pad(img, pad, fill=0)
        h, w = img.shape[-2:]
        if (h, w) == (size, size):
            return img
    top, left = int((h - size) / 2.0), int((w - size) / 2.0)
    return img[..., top : top + size, left : left + size]


def eval_kwargs_from_image_processor(processor: Any) -> dict[str, Any]:
    """Keyword arguments for :class:`EvalPreset` / :class:`TTAPreset` that reproduce a transformers image
    processor with ``size={"shortest_edge": R}`` and ``crop_size={"height": S, "width": S}`` (BitImageProcessor,
    e.g. the model's). Raises ``ValueError`` for processors configured otherwise."""

    def get(obj, key):
        return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)

    size, crop = processor.size, processor.crop_size
    shortest = get(size, "shortest_edge")
    if not shortest or not getattr(processor, "do_center_crop", True) or crop is None:
        raise ValueError(
            f"expected an image processor with size={{'shortest_edge': R}} and a center crop, found size={size}"
        )
    height, width = get(crop, "height"), get(crop, "width")
    if height != width:
        raise ValueError(f"expected a square crop_size, found {crop}")
    resample = processor.resample
    return {
        "image_size": int(height),
        "resize_size": int(shortest),
        "interpolation": int(resample) if not isinstance(resample, v2.InterpolationMode) else resample,
        "mean": tuple(float(v) for v in processor.image_mean),
        "std": tuple(float(v) for v in processor.image_std),
    }


def _resize_size(image_size: int, crop_pct: float, resize_size: int | None) -> int:
    if resize_size is not None:
        return int(resize_size)
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"crop_pct must be in (0, 1], found {crop_pct}")
    return math.floor(image_size / crop_pct)


# --------------------------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------------------------


class TrainPreset:
    """The training recipe (see the module docstring), built from an :class:`AugmentationConfig`.

    ``preset(image)`` decodes ``image`` (DCT-reduced to ``aug.decode_min_size``) and returns float32
    ``[3, S, S]`` normalised, or uint8 ``[3, S, S]`` with ``normalize=False``. Randomness comes from torch's
    global RNG (``torch.manual_seed`` makes it reproducible; DataLoader workers are seeded by torch).
    ``preset.transforms`` is the ``v2.Compose`` applied to the decoded uint8 tensor.
    """

    def __init__(self, aug: AugmentationConfig | None = None, *, normalize: bool = True) -> None:
        aug = AugmentationConfig() if aug is None else aug
        self.aug = aug
        self.normalize = normalize
        ops: list[Callable] = [
            v2.RandomResizedCrop(
                aug.image_size,
                scale=aug.scale,
                ratio=aug.ratio,
                interpolation=_interpolation(aug.interpolation),
                antialias=True,
            )
        ]
        if aug.hflip > 0:
            ops.append(v2.RandomHorizontalFlip(aug.hflip))
        if aug.auto_augment:
            ops.append(
                TimmAutoAugment(
                    aug.auto_augment, image_size=aug.image_size, mean=aug.mean, interpolation=aug.interpolation
                )
            )
        b, c, s = aug.jitter_strengths
        if b or c or s or aug.jitter_hue:
            jitter = FusedColorJitter if aug.color_jitter_impl == "fused" else v2.ColorJitter
            ops.append(jitter(b, c, s, aug.jitter_hue))
        if aug.rotation > 0:
            ops.append(RandomRotationNearest(aug.rotation))
        if aug.blur_prob > 0:
            ks = aug.blur_kernel_size or 2 * math.ceil(3 * aug.blur_sigma[1]) + 1
            ops.append(RandomGaussianBlur(ks, aug.blur_sigma, p=aug.blur_prob))
        if normalize:
            ops.append(ToNormalizedFloat(aug.mean, aug.std))
        if aug.re_prob > 0:
            # Fill the mean colour: 0 once normalised, round(255 * mean) while still uint8.
            value = 0.0 if normalize else [round(255 * m) for m in aug.mean]
            ops.append(v2.RandomErasing(aug.re_prob, scale=aug.re_scale, ratio=aug.re_ratio, value=value))
        self.transforms = v2.Compose(ops)

    def __call__(self, image: ImageInput) -> torch.Tensor:
        return self.transforms(decode_image(image, min_size=self.aug.decode_min_size or None))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(normalize={self.normalize}, transforms={self.transforms})"


class EvalPreset:
    """The model's image-processor pipeline (BitImageProcessor, torchvision backend), on one image.

    resize shortest edge to ``resize_size`` (default ``floor(image_size / crop_pct)``; bicubic, antialiased) ->
    center crop ``image_size`` (zero pad if smaller) -> ``(x - 255 mean) / (255 std)``. Decoding is
    DCT-reduced to ``min_decode_size`` (default ``resize_size``, 0 = full size) -- not bit-identical to a
    full-size decode for files more than twice that size; pass ``min_decode_size=0`` for exact processor
    parity on such files. Use :func:`eval_kwargs_from_image_processor` to copy a processor's settings.
    """

    def __init__(
        self,
        *,
        image_size: int = 224,
        crop_pct: float = 0.875,
        resize_size: int | None = None,
        interpolation: str | int | v2.InterpolationMode = "bicubic",
        mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
        std: Sequence[float] = IMAGENET_DEFAULT_STD,
        normalize: bool = True,
        min_decode_size: int | None = None,
    ) -> None:
        self.image_size = int(image_size)
        self.resize_size = _resize_size(image_size, crop_pct, resize_size)
        self.interpolation = _interpolation(interpolation)
        self.mean, self.std = tuple(mean), tuple(std)
        self.normalize = normalize
        self.min_decode_size = self.resize_size if min_decode_size is None else int(min_decode_size)
        self._mean_t, self._std_t = (t.view(-1, 1, 1) for t in _scaled_mean_std(self.mean, self.std))

    def decode(self, image: ImageInput) -> torch.Tensor:
        return decode_image(image, min_size=self.min_decode_size or None)

    def _view(self, img: torch.Tensor, resize_size: int) -> torch.Tensor:
        return center_crop(resize_shortest_edge(img, resize_size, self.interpolation), self.image_size)

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        if not self.normalize:
            return x.contiguous()
        return x.to(torch.float32).sub_(self._mean_t).div_(self._std_t)

    def __call__(self, image: ImageInput) -> torch.Tensor:
        return self._finish(self._view(self.decode(image), self.resize_size))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(image_size={self.image_size}, resize_size={self.resize_size}, "
            f"interpolation={self.interpolation.value}, normalize={self.normalize})"
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

    def _view_resize(self, zoom: float | None) -> int:
        if zoom is None:
            return self.image_size
        return self.resize_size if zoom == 1.0 else math.floor(self.resize_size * zoom)

    def __call__(self, image: ImageInput) -> torch.Tensor:
        img = self.decode(image)
        crops: dict[float | None, torch.Tensor] = {}
        views = []
        for _, zoom, flip in self.views:
            if zoom not in crops:
                crops[zoom] = self._view(img, self._view_resize(zoom))
            views.append(crops[zoom].flip(-1) if flip else crops[zoom])
        return self._finish(torch.stack(views))

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", views={[v[0] for v in self.views]})"


def tta_views(image: ImageInput, *, num_views: int = 5, **kwargs: Any) -> torch.Tensor:
    """``TTAPreset(num_views=num_views, **kwargs)(image)``: ``[V, 3, S, S]`` views of one image."""
    return TTAPreset(num_views=num_views, **kwargs)(image)


# --------------------------------------------------------------------------------------------------------------
# datasets glue
# --------------------------------------------------------------------------------------------------------------


class BatchTransform:
    """Batch transform for ``datasets.Dataset.with_transform``: ``{"image": [...], "label": [...]}`` ->
    ``{"pixel_values": Tensor[B, ...], "labels": int64 Tensor[B]}`` (``labels`` only when the batch has
    ``label_key``). Image values may be undecoded ``{"bytes", "path"}`` dicts (``Image(decode=False)``: the fast
    path), PIL images, paths or bytes. Other columns are dropped.

    Note: with ``with_transform`` the ``Trainer`` needs ``remove_unused_columns=False`` (otherwise it removes
    ``image`` before the transform runs: ``KeyError: 'image'``).
    """

    def __init__(
        self, preset: Callable[[ImageInput], torch.Tensor], *, image_key: str = "image", label_key: str = "label"
    ):
        self.preset = preset
        self.image_key = image_key
        self.label_key = label_key

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, torch.Tensor]:
        if self.image_key not in batch:
            raise KeyError(
                f"batch has no {self.image_key!r} column (found {sorted(batch)}); with the Trainer, set "
                "remove_unused_columns=False so that raw columns reach the transform"
            )
        out = {"pixel_values": torch.stack([self.preset(image) for image in batch[self.image_key]])}
        if self.label_key in batch:
            out["labels"] = torch.as_tensor(batch[self.label_key], dtype=torch.long)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.preset!r}, image_key={self.image_key!r}, label_key={self.label_key!r})"


def make_train_transform(
    aug: AugmentationConfig | None = None,
    *,
    normalize: bool = True,
    image_key: str = "image",
    label_key: str = "label",
) -> BatchTransform:
    """Batch transform applying :class:`TrainPreset` (``aug`` defaults to the seed recipe)."""
    return BatchTransform(TrainPreset(aug, normalize=normalize), image_key=image_key, label_key=label_key)


def make_eval_transform(*, image_key: str = "image", label_key: str = "label", **kwargs: Any) -> BatchTransform:
    """Batch transform applying :class:`EvalPreset` (keywords: ``image_size``, ``crop_pct``, ``resize_size``,
    ``interpolation``, ``mean``, ``std``, ``normalize``, ``min_decode_size``)."""
    return BatchTransform(EvalPreset(**kwargs), image_key=image_key, label_key=label_key)


def make_tta_transform(
    *, num_views: int = 5, image_key: str = "image", label_key: str = "label", **kwargs: Any
) -> BatchTransform:
    """Batch transform applying :class:`TTAPreset`: ``pixel_values`` ``[B, V, 3, S, S]``."""
    return BatchTransform(TTAPreset(num_views=num_views, **kwargs), image_key=image_key, label_key=label_key)
