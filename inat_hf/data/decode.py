"""Image decoding: :func:`decode_image` turns whatever a pipeline holds for an image into an RGB ``uint8 [3, H, W]``
tensor, at full size (every preset sees the pixels the image processor sees).

Inputs: a ``datasets`` Image value ``{"bytes", "path"}`` (``bytes`` wins, as in ``datasets``), a path, encoded bytes,
or an already decoded PIL image, ``HW``/``HWC`` numpy array or ``CHW`` tensor. EXIF orientation is applied and every
mode becomes RGB by :func:`~inat_hf.data.rgb.to_rgb`, the project's one conversion rule. JPEGs go through
torchvision's libjpeg-turbo decoder (bit-identical to PIL, tested; faster: ``benchmarks/bench_data.py``), anything
else and any JPEG torchvision refuses through PIL.
"""

from __future__ import annotations

import functools
import io
import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL.Image
import PIL.ImageOps

from ..files import printable_path
from .rgb import to_rgb

if TYPE_CHECKING:  # torch loads where tensors are made: decode_array (the ONNX backend's) never imports it
    import torch

ImageInput = Any
"""Anything :func:`decode_image` accepts (see the module docstring)."""

_JPEG_MAGIC = b"\xff\xd8\xff"


class ImageDecodeError(ValueError):
    """An image could not be read or decoded. The message names the image and says what was expected/found."""


def image_name(image: ImageInput) -> str:
    """A short name for ``image`` (its path when it has one, as given); in a message it goes through
    :func:`~inat_hf.files.printable_path`."""
    if isinstance(image, Mapping):
        if image.get("path"):
            return str(image["path"])
        image = image.get("bytes")
        if image is None:
            return "<empty datasets Image value>"
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return f"<{len(image)} encoded bytes>"
    return str(getattr(image, "filename", None) or f"<{type(image).__name__}>")


@functools.cache
def _tv_decode_jpeg():
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:  # a torchvision without image decoding (deprecated in 0.29): PIL does it all
        return None
    return functools.partial(decode_jpeg, mode=ImageReadMode.RGB, apply_exif_orientation=True)


def _as_bytes(image: ImageInput, name: str) -> bytes | bytearray | memoryview:
    """Encoded bytes of a dict / path / bytes input."""
    if isinstance(image, Mapping):
        if image.get("bytes") is None and not image.get("path"):
            raise ImageDecodeError(
                f"could not read image {name}: expected a datasets Image value with 'bytes' or 'path' set, found "
                f"neither (keys {sorted(image)})"
            )
        image = image["bytes"] if image.get("bytes") is not None else image["path"]
    if isinstance(image, (bytes, bytearray, memoryview)):
        return image
    try:
        with open(image, "rb") as f:
            return f.read()
    except OSError as e:
        raise ImageDecodeError(f"could not read image file {name}: expected a readable file, found {e}") from e


def _pil_to_rgb_tensor(img: PIL.Image.Image) -> torch.Tensor:
    import torch

    # np.array copies into a writable buffer; the result is a CHW view of that HWC buffer.
    return torch.from_numpy(np.array(to_rgb(img))).permute(2, 0, 1)


def _decode_pil(data: bytes | bytearray | memoryview, name: str) -> np.ndarray:
    """RGB ``uint8 [H, W, 3]`` (EXIF orientation applied, :func:`~.rgb.to_rgb`)."""
    try:
        with PIL.Image.open(io.BytesIO(data)) as img:
            img.load()
            PIL.ImageOps.exif_transpose(img, in_place=True)
            return np.array(to_rgb(img))
    except (OSError, SyntaxError, ValueError, PIL.Image.DecompressionBombError) as e:
        # Never quote the data itself: a path may lead to any file (a private text file), and PIL's messages
        # do not quote it either.
        raise ImageDecodeError(
            f"could not decode image {name}: expected an encoded image file (JPEG, PNG, WebP, ...), found "
            f"{len(data)} bytes that PIL cannot decode ({type(e).__name__}: {e})"
        ) from e


def decode_image(image: ImageInput) -> torch.Tensor:
    """Decode ``image`` (see the module docstring; uint8 arrays / tensors of 1 or 3 channels) to RGB ``uint8
    [3, H, W]``. Raises :class:`ImageDecodeError` (a ``ValueError`` naming the image, what was expected and what was
    found) when it cannot be read or decoded, ``TypeError`` for an unsupported input type."""
    import torch

    if isinstance(image, torch.Tensor):
        return _tensor_to_rgb(image, printable_path(image_name(image)))
    if isinstance(image, np.ndarray):
        t = torch.from_numpy(np.array(image))  # copy: numpy inputs may be read-only
        return _tensor_to_rgb(t.permute(2, 0, 1) if t.ndim == 3 else t, printable_path(image_name(image)))
    if isinstance(image, PIL.Image.Image):
        return _pil_to_rgb_tensor(PIL.ImageOps.exif_transpose(image))
    if not isinstance(image, (Mapping, str, os.PathLike, bytes, bytearray, memoryview)):
        raise TypeError(
            "decode_image expected a datasets Image dict, a path, bytes, a PIL image, a numpy array or a tensor, "
            f"found {type(image).__name__}"
        )
    name = printable_path(image_name(image))  # for messages: one line, whatever the file is called
    data = _as_bytes(image, name)
    decode_jpeg = _tv_decode_jpeg() if bytes(data[:3]) == _JPEG_MAGIC else None
    if decode_jpeg:
        try:
            # torchvision.io warns on every call that its decoders are deprecated (0.29; TorchCodec succeeds them)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        except RuntimeError:
            pass  # e.g. an unusual JPEG flavour: let PIL try (and produce the error message)
    return torch.from_numpy(_decode_pil(data, name)).permute(2, 0, 1)


def decode_array(image: ImageInput) -> np.ndarray:
    """:func:`decode_image` without torch (the ONNX backend's decoder): RGB ``uint8 [H, W, 3]`` from a path,
    bytes, a ``datasets`` Image value, a PIL image or a ``HW``/``HWC`` uint8 array, through PIL (whose JPEG decoding
    is bit-identical to torchvision's). Same errors as :func:`decode_image`."""
    if isinstance(image, np.ndarray):
        array = image[..., None] if image.ndim == 2 else image
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] not in (1, 3):
            raise TypeError(
                f"expected a uint8 image array [H, W] or [H, W, C] with 1 or 3 channels for {image_name(image)}, "
                f"found {image.dtype} of shape {image.shape}"
            )
        return np.ascontiguousarray(np.broadcast_to(array, (*array.shape[:2], 3)))
    if isinstance(image, PIL.Image.Image):
        return np.array(to_rgb(PIL.ImageOps.exif_transpose(image)))
    if not isinstance(image, (Mapping, str, os.PathLike, bytes, bytearray, memoryview)):
        raise TypeError(
            "decode_array expected a datasets Image dict, a path, bytes, a PIL image or a numpy array, found "
            f"{type(image).__name__}"
        )
    name = image_name(image)
    return _decode_pil(_as_bytes(image, name), name)


def _tensor_to_rgb(t: torch.Tensor, name: str) -> torch.Tensor:
    import torch

    t = t[None] if t.ndim == 2 else t
    if t.dtype != torch.uint8 or t.ndim != 3 or t.shape[0] not in (1, 3):
        raise TypeError(
            f"expected a uint8 image tensor [C, H, W] with 1 or 3 channels for {name}, found {t.dtype} of shape "
            f"{tuple(t.shape)}"
        )
    return t.expand(3, -1, -1).contiguous() if t.shape[0] == 1 else t
