"""Evaluation image processor built from an [`InatConfig`]: transformers' `BitImageProcessor` (torchvision backend)
performs exactly timm's evaluation transform, so the model needs no processor class of its own. `save_pretrained`
writes it next to the weights for `AutoImageProcessor` and `pipeline("image-classification")`.
"""

from transformers import BitImageProcessor
from transformers.image_utils import PILImageResampling

from .configuration_inat import InatConfig

_RESAMPLE = {"bicubic": PILImageResampling.BICUBIC, "bilinear": PILImageResampling.BILINEAR}


def image_processor_from_config(config: InatConfig) -> BitImageProcessor:
    """The evaluation preprocessing of `config`; per image, with `s = floor(image_size / crop_pct)` (timm's) and
    `c = image_size`: convert to RGB as a uint8 tensor [3, H, W]; `torchvision.transforms.v2.functional.resize(img,
    [s], interpolation, antialias=True)` on it (the other edge `int(s * long / short)`); crop `c x c` at `top =
    int((H - c) / 2)`, `left = int((W - c) / 2)` (floor: `tvF.center_crop` rounds odd margins, use `tvF.crop`);
    `/ 255` and normalise with `image_mean` / `image_std` (fused, equal up to ~1e-6). Returns `[B, 3, c, c]`.
    """
    return BitImageProcessor(
        do_convert_rgb=True,
        do_resize=True,
        size={"shortest_edge": config.resize_shortest_edge},
        resample=_RESAMPLE[config.interpolation],
        do_center_crop=True,
        crop_size={"height": config.image_size, "width": config.image_size},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(config.image_mean),
        image_std=list(config.image_std),
    )


__all__ = ["image_processor_from_config"]
