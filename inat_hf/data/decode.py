"""Image decoding to RGB ``uint8`` tensors.

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

Images are always decoded at full size, so every preset sees the pixels the image processor sees. JPEGs go
through torchvision's libjpeg-turbo decoder (pixels bit-identical to PIL's, tested; faster than PIL's decode +
array conversion: ``benchmarks/bench_data.py``); anything else (PNG, WebP, ...), and any JPEG torchvision refuses,
through PIL.
"""

from __future__ import annotations

import functools
import io
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch

from .rgb import to_rgb

__all__ = [
    "ImageDecodeError",
    "ImageInput",
    "decode_image",
    "image_name",
]

ImageInput = Any
"""Anything :func:`decode_image` accepts (see the module docstring)."""

_JPEG_MAGIC = b"\xff\xd8\xff"

_tv_decode_jpeg: Any = None  # resolved lazily: False when unavailable


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


def _get_tv_decode_jpeg():
    global _tv_decode_jpeg
    if _tv_decode_jpeg is None:
        try:
            from torchvision.io import ImageReadMode, decode_jpeg

            _tv_decode_jpeg = functools.partial(decode_jpeg, mode=ImageReadMode.RGB, apply_exif_orientation=True)
        except ImportError:  # a torchvision without image decoding (deprecated in 0.29): PIL does it all
            _tv_decode_jpeg = False
    return _tv_decode_jpeg


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


def _decode_pil(data: bytes | bytearray | memoryview, name: str) -> torch.Tensor:
    try:
        with PIL.Image.open(io.BytesIO(data)) as img:
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


def decode_image(image: ImageInput) -> torch.Tensor:
    """Decode ``image`` to an RGB ``torch.uint8`` tensor ``[3, H, W]``, at full size.

    Args:
        image: a ``datasets`` Image value dict, a path, encoded bytes, a PIL image, an ``HW``/``HWC`` uint8 numpy
            array or a ``CHW`` uint8 tensor (1 or 3 channels; returned as is / expanded to RGB).

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
    decode_jpeg = _get_tv_decode_jpeg() if bytes(data[:3]) == _JPEG_MAGIC else None
    if decode_jpeg:
        try:
            # torchvision.io warns on every call that its decoders are deprecated (0.29; TorchCodec succeeds them)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        except RuntimeError:
            pass  # e.g. an unusual JPEG flavour: let PIL try (and produce the error message)
    return _decode_pil(data, name)


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
