"""Fast image decoding to RGB ``uint8`` tensors, with reduced-size JPEG decoding.

:func:`decode_image` turns whatever a pipeline holds for an image into an RGB ``torch.uint8`` tensor of shape
``[3, H, W]``:

* a ``datasets`` Image value ``{"bytes": ..., "path": ...}`` -- what a column cast with
  ``dataset.cast_column("image", datasets.Image(decode=False))`` yields (``bytes`` wins when both are set, as in
  ``datasets``; ``path`` then only names the image in error messages);
* a file path (``str`` / ``os.PathLike``), raw encoded bytes (``bytes`` / ``bytearray`` / ``memoryview``);
* an already decoded ``PIL.Image.Image``, ``numpy`` array (``HW`` or ``HWC``) or ``torch`` tensor (``CHW``).

EXIF orientation is applied (``PIL.ImageOps.exif_transpose`` semantics) and every mode becomes RGB by
:func:`to_rgb`, the project's one conversion rule (the builder uses it too, in both storage modes): images with
transparency are composited onto white, high-bit-depth images are scaled to 8 bit by their real range.

Reduced-size decoding (``min_size``)
------------------------------------
JPEG can be decoded at 1/2, 1/4 or 1/8 scale in the DCT domain (libjpeg scaling, PIL ``Image.draft``), which is
much cheaper than decoding at full size and then downscaling. With ``min_size=m`` the largest such reduction is used
that keeps the decoded **shorter side >= m**; it is never smaller (tested). The transform presets pass:

* train (``RandomResizedCrop`` to ``S`` with area fractions from ``scale[0]``): ``m = ceil(S / sqrt(scale[0]))``
  (``AugmentationConfig.decode_min_size``). A crop of area fraction ``s`` spans about ``sqrt(s) * short_r`` pixels
  of a decode with shorter side ``short_r``; with ``short_r >= m`` even the smallest crop still spans ``>= S``
  pixels, so it is downscaled to ``S`` as it would be from the full-size decode, and no crop is upsampled from a
  reduced image. (``m = S`` would let a 500x500 JPEG decode at 250x250 and most crops then upsample half the
  pixels: about 11 % of iNat 2021 training images are that large.) For ``S = 224`` and ``scale[0] = 0.08``,
  ``m = 792``: only originals of ``>= 1584`` px per side are reduced.
* eval / TTA: ``m = resize_size = floor(S / crop_pct)`` (the processor's ``shortest_edge``), so the bicubic resize
  that follows is always a downscale, as with a full-size decode. Draft-decoded pixels are not bit-identical to a
  full decode + resize, which is why exact processor parity holds for images the draft does not shrink (tested).

Which decoder (``benchmarks/bench_data.py``, one core of the 2-core dev box, photo JPEGs q90, img/s):

    ===========================  =======  ========
    decoder                      500x375  1000x750
    ===========================  =======  ========
    PIL, full size (+ to tensor)     493       137
    PIL draft, 1/2 scale             915       299
    torchvision decode_jpeg          786       236
    decode_image(min_size=224)       799       299
    ===========================  =======  ========

So JPEGs that ``min_size`` lets us shrink go through PIL draft; full-size JPEGs through torchvision's
libjpeg-turbo decoder (pixels bit-identical to PIL's, tested); anything else (PNG, WebP, ...) and any JPEG that
torchvision refuses, through PIL. The JPEG header is parsed in Python (:func:`jpeg_size`, ~3 us) to choose.
``torchvision.io``'s public wrapper is deprecated since torchvision 0.29 (TorchCodec is its successor) and warns
on every call, so the kernel it wraps, ``torch.ops.image.decode_jpeg``, is called directly; when it is missing
(a future torchvision), PIL is used. ``backend="pil"`` forces PIL everywhere.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch

from .rgb import to_rgb

__all__ = [
    "ImageDecodeError",
    "ImageInput",
    "decode_image",
    "draft_size",
    "image_name",
    "jpeg_size",
]

ImageInput = Any
"""Anything :func:`decode_image` accepts (see the module docstring)."""

_JPEG_MAGIC = b"\xff\xd8\xff"

_RGB_MODE = 3  # torchvision.io.ImageReadMode.RGB.value
_tv_jpeg_op: Any = None  # resolved lazily: False when unavailable


class ImageDecodeError(ValueError):
    """An image could not be read or decoded. The message names the image and says what was expected/found."""


def image_name(image: ImageInput) -> str:
    """A short human-readable name for ``image``, for error messages (its path when it has one)."""
    if isinstance(image, Mapping):
        path = image.get("path")
        if path:
            return str(path)
        data = image.get("bytes")
        return f"<{len(data)} encoded bytes>" if data is not None else "<empty datasets Image value>"
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return f"<{len(image)} encoded bytes>"
    filename = getattr(image, "filename", None)
    if filename:
        return str(filename)
    return f"<{type(image).__name__}>"


def draft_size(width: int, height: int, min_size: int) -> tuple[int, int]:
    """Size ``(w, h)`` a JPEG of ``width x height`` decodes to with the largest DCT reduction (1, 1/2, 1/4, 1/8) that
    keeps the shorter side >= ``min_size`` -- the size :func:`decode_image` returns with ``min_size`` (before EXIF
    rotation). Returns the full size when no reduction qualifies."""
    scale = _draft_scale(width, height, min_size)
    return (width + scale - 1) // scale, (height + scale - 1) // scale


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT/JPG/DAC)


def jpeg_size(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's start-of-frame header (stored orientation, before EXIF rotation), by
    walking the marker segments -- a few microseconds, versus ~80 us for ``PIL.Image.open``. ``None`` when the
    header cannot be parsed."""
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i = 2
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers carry no length
            i += 2
            continue
        if marker in _SOF_MARKERS:
            height = (data[i + 5] << 8) | data[i + 6]
            width = (data[i + 7] << 8) | data[i + 8]
            return (width, height) if width and height else None
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
    return None


def _draft_scale(width: int, height: int, min_size: int) -> int:
    short = min(width, height)
    for scale in (8, 4, 2):
        if short >= scale and (short + scale - 1) // scale >= min_size:
            return scale
    return 1


def _get_tv_jpeg_op():
    global _tv_jpeg_op
    if _tv_jpeg_op is None:
        try:
            import torchvision.io  # noqa: F401  (loads the image extension that registers torch.ops.image.*)

            _tv_jpeg_op = torch.ops.image.decode_jpeg
        except (ImportError, AttributeError, RuntimeError):
            _tv_jpeg_op = False
    return _tv_jpeg_op


def _as_bytes(image: ImageInput, name: str) -> bytes | bytearray | memoryview:
    """Encoded bytes of a dict / path / bytes input."""
    if isinstance(image, Mapping):
        if "bytes" not in image and "path" not in image:
            raise ImageDecodeError(
                f"could not read image {name}: expected a datasets Image value with 'bytes' and/or 'path' keys, "
                f"found a mapping with keys {sorted(image)}"
            )
        data = image.get("bytes")
        if data is not None:
            return data
        path = image.get("path")
        if not path:
            raise ImageDecodeError(
                f"could not read image {name}: expected 'bytes' or 'path' in the datasets Image value, found neither"
            )
        image = path
    if isinstance(image, (bytes, bytearray, memoryview)):
        return image
    try:
        with open(image, "rb") as f:
            return f.read()
    except OSError as e:
        raise ImageDecodeError(f"could not read image file {name}: expected a readable file, found {e}") from e


def _pil_to_rgb_tensor(img: PIL.Image.Image) -> torch.Tensor:
    # np.array copies into a writable buffer; the result is a CHW view of that HWC buffer.
    return torch.from_numpy(np.array(to_rgb(img))).permute(2, 0, 1)


def _decode_pil(data: bytes | bytearray | memoryview, min_size: int | None, name: str) -> torch.Tensor:
    try:
        with PIL.Image.open(io.BytesIO(data)) as img:
            if min_size and img.format == "JPEG":
                scale = _draft_scale(img.width, img.height, min_size)
                if scale > 1:
                    # PIL picks the largest of 8/4/2 that is <= min(w // req_w, h // req_h): ask for floor sizes.
                    img.draft("RGB", (img.width // scale, img.height // scale))
            img.load()
            PIL.ImageOps.exif_transpose(img, in_place=True)
            return _pil_to_rgb_tensor(img)
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as e:
        # Never quote the data itself: a path may lead to any file (a private text file), and PIL's messages
        # do not quote it either.
        raise ImageDecodeError(
            f"could not decode image {name}: expected an encoded image file (JPEG, PNG, WebP, ...), found "
            f"{len(data)} bytes that PIL cannot decode ({type(e).__name__}: {e})"
        ) from e


def decode_image(
    image: ImageInput,
    *,
    min_size: int | None = None,
    backend: Literal["auto", "pil"] = "auto",
) -> torch.Tensor:
    """Decode ``image`` to an RGB ``torch.uint8`` tensor ``[3, H, W]`` (a CHW view of an HWC buffer).

    Args:
        image: a ``datasets`` Image value dict, a path, encoded bytes, a PIL image, an ``HW``/``HWC`` uint8 numpy
            array or a ``CHW`` uint8 tensor (1 or 3 channels; returned as is / expanded to RGB).
        min_size: when set, JPEGs are decoded with the largest DCT reduction (1/2, 1/4, 1/8) whose shorter side is
            still ``>= min_size`` (see :func:`draft_size`); ``None`` or ``0`` decodes at full size. Never upsamples: images already smaller than
            ``min_size`` are returned at full size. Decoded PIL images are not resized.
        backend: ``"auto"`` (the fastest correct path, see module docstring) or ``"pil"``.

    Raises:
        ImageDecodeError: (a ``ValueError``) when the file cannot be read or decoded; the message names the path
            (or the byte count) and says what was expected and what was found.
        TypeError: for an unsupported input type.
    """
    if isinstance(image, torch.Tensor):
        return _tensor_to_rgb(image, image_name(image))
    if isinstance(image, np.ndarray):
        t = torch.from_numpy(np.array(image))  # copy: numpy inputs may be read-only
        return _tensor_to_rgb(t.permute(2, 0, 1) if t.ndim == 3 else t, image_name(image))
    if isinstance(image, PIL.Image.Image):
        return _pil_to_rgb_tensor(PIL.ImageOps.exif_transpose(image))
    if not isinstance(image, (Mapping, str, os.PathLike, bytes, bytearray, memoryview)):
        raise TypeError(
            "decode_image expected a datasets Image dict, a path, bytes, a PIL image, a numpy array or a tensor, "
            f"found {type(image).__name__}"
        )
    name = image_name(image)
    data = _as_bytes(image, name)
    if backend == "auto" and bytes(data[:3]) == _JPEG_MAGIC:
        if min_size:
            size = jpeg_size(data)
            if size is None or draft_size(*size, min_size) != size:
                return _decode_pil(data, min_size, name)  # reducible (or unparsable header: PIL decides)
        op = _get_tv_jpeg_op()
        if op:
            buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            try:
                return op(buf, _RGB_MODE, True)  # apply_exif_orientation=True
            except RuntimeError:
                pass  # e.g. an unusual JPEG flavour: let PIL try (and produce the error message)
    elif backend not in ("auto", "pil"):
        raise ValueError(f"backend must be 'auto' or 'pil', found {backend!r}")
    return _decode_pil(data, min_size, name)


def _tensor_to_rgb(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.dtype != torch.uint8 or t.ndim not in (2, 3):
        raise TypeError(
            f"expected a uint8 image tensor [C, H, W] for {name}, found {t.dtype} of shape {tuple(t.shape)}"
        )
    if t.ndim == 2:
        t = t[None]
    if t.shape[0] == 1:
        return t.expand(3, -1, -1).contiguous()
    if t.shape[0] != 3:
        raise TypeError(f"expected 1 or 3 channels for {name}, found shape {tuple(t.shape)}")
    return t
