"""Evaluation image processor built from an [`InatConfig`].

The model does not need its own processor class: transformers' `BitImageProcessor` (torchvision backend in
transformers 5) performs exactly timm's evaluation transform (resize shortest edge, center crop, normalise). The
processor is written next to the weights by `InatForImageClassification.save_pretrained`, so that
`AutoImageProcessor.from_pretrained(dir)` and `pipeline("image-classification", model=dir)` work on a checkpoint.
"""

from transformers import BitImageProcessor
from transformers.image_utils import PILImageResampling

from .configuration_inat import InatConfig

_RESAMPLE = {"bicubic": PILImageResampling.BICUBIC, "bilinear": PILImageResampling.BILINEAR}


def image_processor_from_config(config: InatConfig) -> BitImageProcessor:
    """The evaluation preprocessing of `config` as a `BitImageProcessor`.

    For each image the processor does, with `s = floor(config.image_size / config.crop_pct)` (timm's formula) and
    `c = config.image_size`:

    1. convert to RGB (`do_convert_rgb`), as a `uint8` tensor `[3, H, W]`;
    2. `torchvision.transforms.v2.functional.resize(img, [s], interpolation=config.interpolation, antialias=True)`,
       on the uint8 tensor: the shortest edge becomes `s`, the other `int(s * long / short)` (truncated);
    3. center crop to `c x c` with `top = int((H - c) / 2)`, `left = int((W - c) / 2)` (floor; note that
       `tvF.center_crop` *rounds* odd margins, so replicate this with `tvF.crop(img, top, left, c, c)`);
    4. to float32, `/ 255`, normalise with `config.image_mean` / `config.image_std` (the processor fuses 2 and 3
       into `normalize(x, 255 * mean, 255 * std)`, equal to `/255` then `normalize` up to float rounding, ~1e-6).

    Returns `pixel_values` of shape `[B, 3, c, c]`.
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
