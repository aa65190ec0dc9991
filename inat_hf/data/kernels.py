"""Custom torchvision v2 transforms of the training preset (:mod:`inat_hf.data.transforms`).

:class:`TimmAutoAugment` exists because torchvision has no equal (timm's PIL policies, seeded from torch's RNG).
The others subclass the v2 transform they replace (same arguments, same random draws) and override only
``transform``, because on the preset's uint8 ``[3, H, W]`` input they are faster (``benchmarks/bench_data.py``):

* :class:`FusedColorJitter` (``v2.ColorJitter``): brightness / contrast / saturation composed into affine colour
  maps, clamped once per map; the hue step is torchvision's HSV shift with fewer tensor ops (:func:`hsv_hue_shift`;
  a YIQ rotation would move colours by different HSV angles, and colour is a species cue).
  ``AugmentationConfig(color_jitter_impl="torchvision")`` restores ``v2.ColorJitter``.
* :class:`RandomRotationNearest` (``v2.RandomRotation``): PIL's kernel rotates the uint8 pixels directly.
* :class:`RandomGaussianBlur` (``v2.RandomApply([v2.GaussianBlur])``): two 1-D passes instead of a 2-D convolution.
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

# torchvision's grayscale weights (rgb_to_grayscale).
_GRAY = np.array([0.2989, 0.587, 0.114])


class FusedColorJitter(v2.ColorJitter):
    """``v2.ColorJitter`` (its arguments and sampled ``params``) with fused kernels: the brightness / contrast /
    saturation steps on either side of the hue step are each one 3x3 matrix + offset, applied and clamped once.
    uint8 in -> uint8 out (rounded); float in [0, 1] -> float."""

    @staticmethod
    def color_matrix(params: Mapping[str, Any], order: Sequence[int], mean_rgb) -> tuple[np.ndarray, np.ndarray]:
        """(3x3 matrix, offset) of the brightness / contrast / saturation steps of ``order`` (hue, op 3, is not
        affine and is skipped). Contrast blends with the mean grey of the image as it is at that step, which for
        an affine map is ``gray . (M @ mean_rgb + b)``: ``mean_rgb`` is the input's per-channel mean."""
        m, b = np.eye(3), np.zeros(3)
        for op in order:
            f = params[_OPS[op]] if op != 3 else None
            if f is None:
                continue
            if op == 0:
                m, b = f * m, f * b
            elif op == 1:
                m, b = f * m, f * b + (1.0 - f) * float(_GRAY @ (m @ np.asarray(mean_rgb) + b))
            else:
                s = f * np.eye(3) + (1.0 - f) * np.tile(_GRAY, (3, 1))
                m, b = s @ m, s @ b
        return m, b

    @classmethod
    def _affine(cls, x: torch.Tensor, params: Mapping[str, Any], order: list[int], top: float) -> torch.Tensor:
        """Apply the affine steps of ``order`` to float ``x`` (values in [0, top]) and clamp once."""
        if not any(op != 3 and params[_OPS[op]] is not None for op in order):
            return x
        mean_rgb = x.mean(dim=(-2, -1)).tolist() if params["contrast_factor"] is not None and 1 in order else None
        m, b = cls.color_matrix(params, order, mean_rgb)
        # (3, 3) @ (3, H*W) on a CHW buffer is the fast GEMM layout here (an (H*W, 3) result is much slower).
        m_t = torch.from_numpy(m.astype(np.float32)).to(x.device)
        b_t = torch.from_numpy(b.astype(np.float32)).to(x.device)
        return torch.addmm(b_t[:, None], m_t, x.reshape(3, -1)).view(x.shape).clamp_(0.0, top)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if all(params[k] is None for k in _OPS):
            return inpt
        if not isinstance(inpt, torch.Tensor) or inpt.ndim != 3 or inpt.shape[0] != 3:
            raise ValueError(f"FusedColorJitter expects one RGB image tensor [3, H, W], found {type(inpt).__name__}")
        top = 255.0 if inpt.dtype == torch.uint8 else 1.0
        order = params["fn_idx"].tolist()
        y = inpt.to(torch.float32)
        if params["hue_factor"] is None:
            y = self._affine(y, params, order, top)
        else:
            k = order.index(3)
            y = self._affine(y, params, order[:k], top)
            y = self._affine(hsv_hue_shift(y, params["hue_factor"]), params, order[k + 1 :], top)
        return _float_to_uint8(y.round_()) if inpt.dtype == torch.uint8 else y.to(inpt.dtype)


_OPS = ("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor")
# hsv_hue_shift: position of R, G, B on the hue hexagon in the HSV -> RGB formula below
_HUE_CHANNEL_OFFSETS = torch.tensor([5.0, 3.0, 1.0]).view(3, 1, 1)


def hsv_hue_shift(x: torch.Tensor, hue: float) -> torch.Tensor:
    """torchvision's ``adjust_hue`` on a float ``[3, H, W]`` image in any value scale (the shift keeps each pixel's
    max and min channel). Hue as torchvision's ``_rgb_to_hsv``; back with the closed form
    ``c = max - (max - min) * clamp(min(k, 4 - k), 0, 1)``, ``k = (n_c + 6 h) mod 6`` (``n`` = 5, 3, 1 for R, G, B)
    instead of ``_hsv_to_rgb``'s 6-way masked sum: within one uint8 level of it (tested)."""
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
    """timm's RandAugment / AugMix / AutoAugment (``timm.data.auto_augment``) on a uint8 ``[3, H, W]`` tensor, built
    with ``create_transform``'s parameters. timm's PIL ops draw from Python's ``random`` and NumPy's global RNG:
    each call seeds both from torch's RNG (so per-item seeding covers them) and restores them afterwards."""

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
    # integral floats in [0, 255]: on CPU numpy's cast is faster than torch's saturating one
    return x.to(torch.uint8) if x.device.type != "cpu" else torch.from_numpy(x.numpy().astype(np.uint8))


class RandomRotationNearest(v2.RandomRotation):
    """``v2.RandomRotation(degrees, fill=fill)`` (nearest) through torchvision's PIL kernel for uint8 ``[3, H, W]``
    tensors (both rotate about the center; they differ only in where a few edge pixels round)."""

    def __init__(self, degrees: float, fill: int = 0) -> None:
        super().__init__(degrees, interpolation=v2.InterpolationMode.NEAREST, fill=fill)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["angle"] == 0.0:
            return inpt
        if not isinstance(inpt, torch.Tensor) or inpt.dtype != torch.uint8 or inpt.ndim != 3 or inpt.shape[0] != 3:
            return super().transform(inpt, params)
        # CHW planes -> PIL RGB without a transposing copy (merge), rotate, back to a contiguous CHW tensor.
        pil = PIL.Image.merge("RGB", [PIL.Image.fromarray(p) for p in inpt.contiguous().numpy()])
        out = pil.rotate(params["angle"], resample=PIL.Image.Resampling.NEAREST, fillcolor=(self.fill,) * 3)
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


class RandomGaussianBlur(v2.GaussianBlur):
    """``v2.RandomApply([v2.GaussianBlur(kernel_size, sigma)], p)`` (same draws), computed separably: 2 x k taps
    per pixel instead of k x k. uint8 in -> uint8 out."""

    def __init__(self, kernel_size: int, sigma: Sequence[float] = (0.1, 2.0), p: float = 0.5) -> None:
        super().__init__(kernel_size, sigma)
        self.p = float(p)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"sigma": None} if torch.rand(1) >= self.p else super().make_params(flat_inputs)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["sigma"] is None:
            return inpt
        return separable_gaussian_blur(inpt, self.kernel_size[0], params["sigma"][0])
