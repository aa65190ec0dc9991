"""The training augmentation recipe, as data: :class:`AugmentationConfig` (a recipe's ``augmentation:`` section).

Torch-free (auto_augment checks import timm when used); the transforms that apply it are in
:mod:`inat_hf.data.transforms`.
"""

from __future__ import annotations

import dataclasses

from ..cli import option

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

    Field names follow timm's ``create_transform`` where it has them; each field's help is its ``train.py --help``
    line. Lists (from YAML or the command line) are stored as tuples. In a training run ``image_size``, ``mean`` and
    ``std`` are the model config's, so the crop and the evaluation preprocessing share one value; the defaults here
    serve transforms built by hand.
    """

    image_size: int = option(224, "Output side S (square S x S).")
    scale: list[float] = option([0.08, 1.0], "RandomResizedCrop area fraction range (min max).")
    ratio: list[float] = option([3.0 / 4.0, 4.0 / 3.0], "RandomResizedCrop aspect-ratio range (min max).")
    train_interpolation: str = option(
        "bilinear", f"Resize interpolation of the training crop: {', '.join(INTERPOLATIONS)}."
    )
    hflip: float = option(0.5, "Horizontal flip probability; 0 disables.")
    color_jitter: list[float] = option(
        [0.4],
        "Colour jitter: one strength for brightness, contrast and saturation, or three; a fourth sets the hue "
        "(overriding hue). 0 disables colour jitter entirely, hue included.",
    )
    hue: float = option(0.1, "Hue jitter amplitude in [0, 0.5] while colour jitter is on; 0 disables hue only.")
    color_jitter_impl: str = option(
        "fused", "'fused' (FusedColorJitter, faster) or 'torchvision' (v2.ColorJitter: exact clamping, HSV hue)."
    )
    rotation: float = option(
        15.0, "Maximum rotation in degrees (uniform in [-r, r], nearest, black fill); 0 disables."
    )
    blur_prob: float = option(0.1, "Probability of a Gaussian blur; 0 disables.")
    blur_sigma: list[float] = option([0.1, 2.0], "Blur sigma range (min max), sampled uniformly.")
    blur_kernel_size: int | None = option(None, "Odd blur kernel size; None: 2 * ceil(3 * max sigma) + 1.")
    re_prob: float = option(0.25, "Random-erasing probability; 0 disables.")
    re_scale: list[float] = option([0.02, 1.0 / 3.0], "Erased area fraction range (min max).")
    re_ratio: list[float] = option([0.3, 3.3], "Erased aspect-ratio range (min max).")
    mean: tuple[float, float, float] = option(IMAGENET_DEFAULT_MEAN, "Normalisation mean (RGB, in [0, 1] units).")
    std: tuple[float, float, float] = option(IMAGENET_DEFAULT_STD, "Normalisation std.")
    auto_augment: str | None = option(
        None,
        "A timm auto-augment string, after the flip as in timm: RandAugment ('rand-m9-mstd0.5-inc1'), AugMix "
        "('augmix-m5-w3-d2') or AutoAugment ('v0'). It replaces colour jitter, as in timm: set color_jitter 0.",
    )

    def __post_init__(self) -> None:
        for name in ("scale", "ratio", "blur_sigma", "re_scale", "re_ratio", "mean", "std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        if isinstance(self.color_jitter, (list, tuple)):  # one value: the float form
            jitter = tuple(float(v) for v in self.color_jitter)
            object.__setattr__(self, "color_jitter", jitter[0] if len(jitter) == 1 else jitter)
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
        if str(self.train_interpolation).lower() not in INTERPOLATIONS:
            errors.append(
                f"train_interpolation must be one of {list(INTERPOLATIONS)}, found {self.train_interpolation!r}"
            )
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
