"""Custom torchvision v2 transforms used by the training preset (:mod:`inat_hf.data.transforms`).

Each exists because torchvision v2 has no equal (:class:`TimmAutoAugment`: timm's PIL-based policies, seeded from
torch's RNG) or because, on the preset's input (a uint8 ``[3, H, W]`` tensor), it beats the stock v2 transform
it replaces (per-op rows of ``benchmarks/bench_data.py``, figures in ``benchmarks/results.md``):

* :class:`FusedColorJitter` for ``v2.ColorJitter``: torchvision's colour kernels compute in float whatever the
  input dtype, clamp after every step, and its HSV round trip for hue dominates. Here brightness / contrast /
  saturation are sampled as torchvision samples them (same ranges, random order) and composed into affine colour
  maps, clamped once per map; the hue step is torchvision's own HSV shift computed with fewer tensor ops
  (:func:`hsv_hue_shift`), applied at its sampled place between the maps. A rotation of the YIQ chroma plane
  (the fully fused alternative) would move different colours by different HSV angles and change their value, and
  colour is a species cue. ``AugmentationConfig(color_jitter_impl="torchvision")`` restores ``v2.ColorJitter``.
* :class:`RandomRotationNearest` for ``v2.RandomRotation``: torchvision's tensor kernel is a ``grid_sample``
  in float; its PIL kernel (used here, on the tensor's planes) rotates the uint8 pixels directly.
* :class:`RandomGaussianBlur` for ``v2.GaussianBlur``: two 1-D passes instead of one 2-D convolution.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as nnF
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as tvF

__all__ = [
    "FusedColorJitter",
    "RandomGaussianBlur",
    "RandomRotationNearest",
    "TimmAutoAugment",
    "hsv_hue_shift",
    "separable_gaussian_blur",
]

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
        # (3, 3) @ (3, H*W) on a CHW buffer is the fast GEMM layout here (an (H*W, 3) result is much slower).
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
    # hue in sixths of a turn, shifted, wrapped into [0, 6) (floor arithmetic: torch.remainder is slower)
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
    """Cast a float tensor holding integral values in [0, 255] to uint8 (on CPU, numpy's cast is faster than
    torch's saturating float->uint8 conversion)."""
    if x.device.type != "cpu":
        return x.to(torch.uint8)
    return torch.from_numpy(x.numpy().astype(np.uint8))


class RandomRotationNearest(v2.Transform):
    """``v2.RandomRotation(degrees)`` with nearest interpolation and a constant fill, through torchvision's PIL
    kernel for uint8 ``[3, H, W]`` tensors (both kernels rotate about the center, counter-clockwise for positive
    angles; they differ only in where a few edge pixels round). Other inputs use ``tvF.rotate``."""

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
        # CHW planes -> PIL RGB without a transposing copy (merge), rotate, back to a contiguous CHW tensor.
        planes = inpt.numpy()
        if not all(p.flags.c_contiguous for p in planes):
            planes = inpt.contiguous().numpy()
        pil = PIL.Image.merge("RGB", [PIL.Image.fromarray(p) for p in planes])
        out = pil.rotate(angle, resample=PIL.Image.Resampling.NEAREST, fillcolor=(self.fill,) * 3)
        return torch.from_numpy(np.array(out)).permute(2, 0, 1).contiguous()


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
