"""Tests for inat_hf.data.decode: inputs, EXIF orientation, modes, full-size decoding, errors."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import pytest
import torch

from inat_hf.data.decode import ImageDecodeError, decode_image


def photo(w: int, h: int, seed: int = 0) -> PIL.Image.Image:
    """Smooth gradients + a few blocks: compresses like a small photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) * 127 // max(w + h - 2, 1)], -1)
    arr = arr.astype(np.uint8)
    for _ in range(3):
        x0, y0 = rng.integers(0, max(w - 8, 1)), rng.integers(0, max(h - 8, 1))
        arr[y0 : y0 + 8, x0 : x0 + 8] = rng.integers(0, 255, 3)
    return PIL.Image.fromarray(arr)


def encode(img: PIL.Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def as_tensor(img: PIL.Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)


def test_every_input_kind_decodes_to_the_same_rgb_uint8_tensor(tmp_path: Path):
    img = photo(40, 30)
    data = encode(img, quality=95)
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    expected = as_tensor(PIL.Image.open(io.BytesIO(data)))
    inputs = {
        "dict bytes": {"bytes": data, "path": "ignored/for/decoding.jpg"},
        "dict path": {"bytes": None, "path": str(path)},
        "str": str(path),
        "Path": path,
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "PIL": PIL.Image.open(io.BytesIO(data)),
        "numpy HWC": np.array(PIL.Image.open(io.BytesIO(data))),
        "tensor CHW": expected.clone(),
    }
    for name, value in inputs.items():
        out = decode_image(value)
        assert out.dtype == torch.uint8 and out.shape == (3, 30, 40), name
        assert torch.equal(out, expected), name


@pytest.mark.parametrize("size", [(64, 48), (640, 480)])
def test_jpegs_decode_at_full_size_bit_identical_to_pil(size):
    data = encode(photo(*size), quality=90)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchvision's per-call deprecation warning must not reach the user
        out = decode_image(data)
    assert torch.equal(out, as_tensor(PIL.Image.open(io.BytesIO(data))))


def test_exif_orientation_is_applied():
    img = photo(64, 32)  # landscape as stored
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": shown as portrait
    data = encode(img, quality=95, exif=exif)
    out = decode_image(data)
    reference = PIL.ImageOps.exif_transpose(PIL.Image.open(io.BytesIO(data)))
    assert out.shape == (3, 64, 32)
    assert torch.equal(out, as_tensor(reference))


def test_exif_orientation_of_a_pil_input_is_applied():
    exif = PIL.Image.Exif()
    exif[0x0112] = 8
    pil = PIL.Image.open(io.BytesIO(encode(photo(50, 20), exif=exif)))
    assert decode_image(pil).shape == (3, 50, 20)
    assert pil.size == (50, 20)  # the caller's image is not modified


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "1"])
def test_modes_become_three_channel_uint8(mode):
    img = photo(24, 16).convert(mode) if mode != "I;16" else photo(24, 16).convert("L").convert("I;16")
    fmt = "JPEG" if mode in ("L", "CMYK") else "PNG"
    for value in (encode(img, fmt), img):
        out = decode_image(value)
        assert out.dtype == torch.uint8 and out.shape == (3, 16, 24), (mode, type(value))


def test_transparency_is_composited_on_white_like_transformers():
    from transformers.image_transforms import convert_to_rgb

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255  # top half opaque red-ish, bottom half fully transparent
    img = PIL.Image.fromarray(rgba, "RGBA")
    out = decode_image(encode(img, "PNG"))
    assert out[:, 6, 3].tolist() == [255, 255, 255]
    assert out[:, 1, 3].tolist() == [200, 0, 0]
    assert torch.equal(out, torch.from_numpy(convert_to_rgb(img, return_numpy=True)).permute(2, 0, 1))


def test_cmyk_and_gray_jpegs_match_pil_conversion():
    for mode in ("CMYK", "L"):
        data = encode(photo(32, 24).convert(mode), quality=95)
        expected = as_tensor(PIL.Image.open(io.BytesIO(data)))
        assert (decode_image(data).int() - expected.int()).abs().max() <= 1, mode


def test_corrupt_bytes_raise_a_clear_error_naming_the_file():
    garbage = b"this is not an image at all"
    with pytest.raises(ImageDecodeError) as err:
        decode_image({"bytes": garbage, "path": "train/00042_birds/0007.jpg"})
    msg = str(err.value)
    assert "train/00042_birds/0007.jpg" in msg and "expected" in msg and "found" in msg
    assert "27 bytes that PIL cannot decode" in msg and "this is" not in msg  # never quotes the data

    with pytest.raises(ImageDecodeError, match="encoded bytes"):
        decode_image(garbage)


def test_truncated_jpeg_raises_a_clear_error(tmp_path: Path):
    data = encode(photo(64, 48), quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError) as err:
        decode_image(str(path))
    assert str(path) in str(err.value) and "expected" in str(err.value)


def test_missing_file_and_bad_values():
    with pytest.raises(ImageDecodeError, match=r"nowhere/missing\.jpg.*expected a readable file"):
        decode_image({"bytes": None, "path": "nowhere/missing.jpg"})
    with pytest.raises(ImageDecodeError, match="found neither"):
        decode_image({"bytes": None, "path": None})
    with pytest.raises(ImageDecodeError, match="keys"):
        decode_image({"pixels": 1})
    with pytest.raises(TypeError, match="found int"):
        decode_image(3)
    with pytest.raises(TypeError, match="uint8"):
        decode_image(torch.zeros(3, 4, 4))


def test_gray_tensor_and_array_inputs_are_expanded():
    gray = torch.arange(12, dtype=torch.uint8).view(1, 3, 4)
    out = decode_image(gray)
    assert out.shape == (3, 3, 4) and torch.equal(out[2], gray[0])
    assert decode_image(gray[0].numpy()).shape == (3, 3, 4)
