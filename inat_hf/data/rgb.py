"""The project's one rule for turning any PIL image into RGB, in a module of its own: preparing data (which never
imports torch) and the tensor decoders (``inat_hf.data.decode``) both use it."""

from __future__ import annotations

import numpy as np
import PIL.Image

_TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _is_high_bit_depth(mode: str) -> bool:
    return mode == "F" or mode == "I" or mode.startswith("I;")


def needs_own_conversion(image: PIL.Image.Image) -> bool:
    """True when :func:`to_rgb` differs from PIL's ``convert("RGB")`` (transparency, more than 8 bits): such
    images cannot be left to other decoders (``datasets.Image(mode="RGB")`` uses PIL's)."""
    return image.mode in _TRANSPARENT_MODES or "transparency" in image.info or _is_high_bit_depth(image.mode)


def _high_bit_depth_to_l(image: PIL.Image.Image) -> PIL.Image.Image:
    """16/32-bit integer or float grey -> 8-bit ``L`` by the range the image is stored in (PIL's conversion clips
    at 255, turning a 16-bit photo white): 65535 for ``I;16*``; for ``I`` and ``F`` (no nominal range) the smallest
    of 1.0 (``F`` only), 255, 65535 that holds the maximum, else the maximum itself. Negative values become 0."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        full = 65535.0
    else:
        top = float(values.max()) if values.size else 0.0
        ranges = ((1.0,) if image.mode == "F" else ()) + (255.0, 65535.0)
        full = next((r for r in ranges if top <= r), top)
    scaled = np.clip(np.rint(values * (255.0 / full)), 0, 255).astype(np.uint8)
    return PIL.Image.fromarray(scaled, mode="L")


def to_rgb(image: PIL.Image.Image) -> PIL.Image.Image:
    """The project's one rule for turning any PIL image into RGB: transparency (alpha modes or a ``transparency``
    key) composited onto white, as transformers' ``convert_to_rgb``; high bit depth scaled to 8 bit by its real
    range (:func:`_high_bit_depth_to_l`), never clipped; anything else PIL's ``convert("RGB")``."""
    if image.mode == "RGB":
        return image
    if _is_high_bit_depth(image.mode):
        return _high_bit_depth_to_l(image).convert("RGB")
    if image.mode in _TRANSPARENT_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PIL.Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")
