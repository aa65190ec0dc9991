"""The training augmentation recipe, as data: :class:`AugmentationConfig` (a recipe's ``augmentation:`` section).

Torch-free, so that recipes parse and ``inat-train --help`` renders without importing torch; the transforms that
apply it are in :mod:`inat_hf.data.transforms`.
"""

from __future__ import annotations

import dataclasses

__all__ = ["IMAGENET_DEFAULT_MEAN", "IMAGENET_DEFAULT_STD", "INTERPOLATIONS", "AugmentationConfig"]

# Same values as timm.data.IMAGENET_DEFAULT_MEAN / _STD (timm's ResNet-50 weights), kept here to avoid importing
# timm's model registry just for two constants.
IMAGENET_DEFAULT_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# Resize interpolations by name (torchvision's InterpolationMode values).
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")


@dataclasses.dataclass(frozen=True)
class AugmentationConfig:
    """Training augmentation: a recipe's ``augmentation`` section (``inat_hf.training.arguments``).

    Field names follow timm's ``create_transform`` where it has them. Lists (from YAML) are stored as tuples. In a
    training run ``image_size``, ``mean`` and ``std`` are the model config's, so the crop and the evaluation
    preprocessing share one value; the defaults here serve transforms built by hand. Each entry below is also the
    field's ``train.py --help`` text.

    Attributes:
        image_size: output side ``S`` (square ``S x S``).
        scale: ``RandomResizedCrop`` area fraction range.
        ratio: ``RandomResizedCrop`` aspect-ratio range.
        interpolation: resize interpolation of the training crop (``"bilinear"``, ``"bicubic"``, ...).
        hflip: horizontal flip probability; 0 disables.
        color_jitter: brightness / contrast / saturation strength (a float for all three, or a 3-tuple); a 4-tuple
            also sets the hue (overriding ``hue``). 0 (or all zeros) disables colour jitter entirely, hue included.
        hue: hue jitter amplitude in [0, 0.5] (fraction of the colour wheel) applied while colour jitter is on;
            0 disables hue only.
        color_jitter_impl: ``"fused"`` (:class:`FusedColorJitter`, faster) or ``"torchvision"``
            (``v2.ColorJitter`` on the uint8 image: torchvision's exact per-step clamping and HSV hue).
        rotation: maximum rotation in degrees (uniform in ``[-rotation, rotation]``, nearest, black fill);
            0 disables.
        blur_prob: probability of a Gaussian blur; 0 disables.
        blur_sigma: blur sigma range, sampled uniformly.
        blur_kernel_size: odd kernel size; ``None`` = ``2 * ceil(3 * blur_sigma[1]) + 1`` (13 for sigma <= 2).
        re_prob: random-erasing probability; 0 disables.
        re_scale: erased area fraction range.
        re_ratio: erased aspect-ratio range.
        mean: normalisation mean (RGB, in [0, 1] units).
        std: normalisation std.
        auto_augment: a timm auto-augment string, applied after the flip as in timm's ``create_transform``:
            RandAugment (``"rand-m9-mstd0.5-inc1"``), AugMix (``"augmix-m5-w3-d2"``) or AutoAugment (``"v0"``);
            ``None`` disables. It replaces colour jitter, as in timm: set ``color_jitter=0`` with it.
    """

    image_size: int = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    interpolation: str = "bilinear"
    hflip: float = 0.5
    color_jitter: float | tuple[float, ...] = 0.4
    hue: float = 0.1
    color_jitter_impl: str = "fused"
    rotation: float = 15.0
    blur_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_size: int | None = None
    re_prob: float = 0.25
    re_scale: tuple[float, float] = (0.02, 1.0 / 3.0)
    re_ratio: tuple[float, float] = (0.3, 3.3)
    mean: tuple[float, float, float] = IMAGENET_DEFAULT_MEAN
    std: tuple[float, float, float] = IMAGENET_DEFAULT_STD
    auto_augment: str | None = None

    def __post_init__(self) -> None:
        for name in ("scale", "ratio", "blur_sigma", "re_scale", "re_ratio", "mean", "std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if isinstance(self.color_jitter, (list, tuple)):
            object.__setattr__(self, "color_jitter", tuple(float(v) for v in self.color_jitter))
        errors = []
        if self.image_size < 1:
            errors.append(f"image_size must be >= 1, found {self.image_size}")
        for name in ("scale", "ratio", "blur_sigma", "re_scale", "re_ratio"):
            pair = getattr(self, name)
            if len(pair) != 2 or not 0 < pair[0] <= pair[1]:
                errors.append(f"{name} must be a (min, max) pair with 0 < min <= max, found {pair}")
        for name in ("hflip", "blur_prob", "re_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                errors.append(f"{name} is a probability in [0, 1], found {getattr(self, name)}")
        if isinstance(self.color_jitter, tuple) and len(self.color_jitter) not in (3, 4):
            errors.append(f"color_jitter must be a float, a 3-tuple or a 4-tuple, found {self.color_jitter}")
        if not 0.0 <= self.jitter_hue <= 0.5:
            errors.append(f"hue must be in [0, 0.5], found {self.jitter_hue}")
        if min(self.jitter_strengths) < 0:
            errors.append(f"color_jitter strengths must be >= 0, found {self.color_jitter}")
        if self.color_jitter_impl not in ("fused", "torchvision"):
            errors.append(f"color_jitter_impl must be 'fused' or 'torchvision', found {self.color_jitter_impl!r}")
        if self.rotation < 0:
            errors.append(f"rotation is a maximum angle in degrees >= 0, found {self.rotation}")
        if self.blur_kernel_size is not None and (self.blur_kernel_size < 1 or self.blur_kernel_size % 2 == 0):
            errors.append(f"blur_kernel_size must be odd and positive, found {self.blur_kernel_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            errors.append(f"mean / std must be 3 values (std > 0), found {self.mean} / {self.std}")
        if str(self.interpolation).lower() not in INTERPOLATIONS:
            errors.append(f"interpolation must be one of {list(INTERPOLATIONS)}, found {self.interpolation!r}")
        if self.auto_augment is not None:
            if any(self.jitter_strengths) or self.jitter_hue:
                errors.append(
                    f"auto_augment={self.auto_augment!r} replaces colour jitter (as in timm), so color_jitter must be "
                    f"0, found {self.color_jitter}"
                )
            from .kernels import TimmAutoAugment  # torch and timm load only for a recipe that uses it

            try:
                TimmAutoAugment(self.auto_augment, image_size=self.image_size, mean=self.mean)
            except Exception as error:  # noqa: BLE001 - timm asserts / KeyErrors on a bad string
                errors.append(
                    f"auto_augment={self.auto_augment!r} is not a timm auto-augment string ({type(error).__name__}: "
                    f"{error}); e.g. 'rand-m9-mstd0.5-inc1', 'augmix-m5-w3-d2', 'v0'"
                )
        if errors:
            raise ValueError("invalid AugmentationConfig: " + "; ".join(errors))

    @property
    def jitter_strengths(self) -> tuple[float, float, float]:
        """(brightness, contrast, saturation) strengths."""
        cj = self.color_jitter
        return tuple(cj[:3]) if isinstance(cj, tuple) else (float(cj),) * 3

    @property
    def jitter_hue(self) -> float:
        """Hue amplitude in effect (0 when colour jitter is off)."""
        if isinstance(self.color_jitter, tuple) and len(self.color_jitter) == 4:
            return self.color_jitter[3]
        return self.hue if any(self.jitter_strengths) else 0.0
