"""One RGB conversion rule (``inat_hf.data.rgb.to_rgb``) for every mode, used by every reader of images:
the builder in both storage modes (what ``datasets`` decodes from the Arrow data), the training decoder and
predict."""

import io

import datasets
import numpy as np
import pytest
from PIL import Image

from inat_hf.data import decode_image
from inat_hf.data.rgb import to_rgb
from tests.data.helpers import prep, read_json

W, H = 32, 8
_ramp16 = (np.arange(W * H, dtype=np.float64).reshape(H, W) / (W * H - 1) * 65535).round().astype(np.uint16)
_alpha = np.tile(np.linspace(0, 255, W).round().astype(np.uint8), (H, 1))  # transparent -> opaque, left to right
_rgb = np.stack([np.full((H, W), 200), np.full((H, W), 40), np.tile(np.arange(W) * 8, (H, 1))], -1).astype(np.uint8)


def _composite(rgb, alpha):
    """Reference: straight alpha over white, in float, rounded."""
    a = alpha[..., None].astype(np.float64) / 255
    return (rgb * a + 255 * (1 - a)).round().astype(np.uint8)


def _grey(values):
    return np.repeat(values[..., None], 3, axis=-1).astype(np.uint8)


def _palette_with_transparency():
    image = Image.fromarray(_rgb).quantize(8)
    image.info["transparency"] = 0  # palette index 0 is transparent
    index = np.asarray(image)
    rgb = np.asarray(image.convert("RGB"))
    expected = np.where((index == 0)[..., None], 255, rgb).astype(np.uint8)
    return image, expected


def _cases():
    ramp8 = (_ramp16 / 257).round()
    pa = Image.fromarray(_rgb).quantize(8)
    pa_expected_rgb = np.asarray(pa.convert("RGB"))
    pa = pa.convert("PA")
    pa.putalpha(Image.fromarray(_alpha))
    p_trans, p_expected = _palette_with_transparency()
    return {
        "I;16": (Image.frombytes("I;16", (W, H), _ramp16.astype("<u2").tobytes()), _grey(ramp8)),
        "I;16B": (Image.frombytes("I;16B", (W, H), _ramp16.astype(">u2").tobytes()), _grey(ramp8)),
        "I": (Image.fromarray(_ramp16.astype(np.int32)), _grey(ramp8)),
        "F": (Image.fromarray((_ramp16 / 65535).astype(np.float32)), _grey(ramp8)),
        "LA": (
            Image.fromarray(np.stack([_ramp16 >> 8, _alpha], -1).astype(np.uint8), "LA"),
            _composite(_grey(_ramp16 >> 8), _alpha),
        ),
        "PA": (pa, _composite(pa_expected_rgb, _alpha)),
        "RGBA": (Image.fromarray(np.dstack([_rgb, _alpha]), "RGBA"), _composite(_rgb, _alpha)),
        "P+transparency": (p_trans, p_expected),
        "CMYK": (
            Image.fromarray(_rgb).convert("CMYK"),
            np.asarray(Image.fromarray(_rgb).convert("CMYK").convert("RGB")),
        ),
    }


CASES = _cases()


def _encode(image):
    """Lossless file bytes that keep the mode (TIFF holds them all; P + transparency needs PNG's tRNS)."""
    buffer = io.BytesIO()
    if image.mode == "P":
        image.save(buffer, format="PNG", transparency=image.info["transparency"])
    else:
        image.save(buffer, format="TIFF")
    return buffer.getvalue()


@pytest.mark.parametrize("name", list(CASES))
def test_to_rgb_uses_the_real_range_and_composites_on_white(name):
    image, expected = CASES[name]
    out = to_rgb(image)
    assert out.mode == "RGB"
    np.testing.assert_allclose(np.asarray(out, dtype=np.int16), expected, atol=1, err_msg=name)
    # not degenerate: the test images span a range (a white-out would pass a white reference only)
    assert np.asarray(out).std() > 20


@pytest.mark.parametrize("name", list(CASES))
def test_training_decoder_and_predict_use_the_same_rule(name):
    image, expected = CASES[name]
    data = _encode(image)
    assert Image.open(io.BytesIO(data)).mode == image.mode  # the file really holds that mode
    for decoded in (decode_image(data), decode_image(image), decode_image({"bytes": data, "path": None})):
        np.testing.assert_allclose(decoded.permute(1, 2, 0).numpy().astype(np.int16), expected, atol=1)


@pytest.mark.parametrize("storage", ["path", "bytes"])
def test_builder_stores_the_same_pixels_in_both_storage_modes(demo_copy, tmp_path, storage):
    data = read_json(demo_copy, "train")
    victims = [i for i in data["images"] if "Animalia" in i["file_name"]][: len(CASES)]
    for (image, _), victim in zip(CASES.values(), victims):
        (demo_copy / victim["file_name"]).write_bytes(_encode(image))
    prepared = prep(demo_copy, tmp_path, splits="train", image_storage=storage, preprocessing_num_workers=1)
    train = prepared.dataset["train"]
    raw = train.cast_column("image", datasets.Image(decode=False))
    ids = train["image_id"]
    # embedded images are re-encoded as JPEG (quality 90); references keep the file's pixels exactly
    tolerance = 12 if storage == "bytes" else 1
    wrong = []
    for (name, (_, expected)), victim in zip(CASES.items(), victims):
        row = ids.index(victim["id"])
        stored = np.asarray(train[row]["image"], dtype=np.int16)  # what datasets decodes
        trained = raw[row]["image"]  # what the training decoder reads
        decoded = decode_image(trained).permute(1, 2, 0).numpy().astype(np.int16)
        for what, pixels in (("datasets", stored), ("decode_image", decoded)):
            diff = np.abs(pixels - expected)
            if diff.mean() > tolerance / 3 or diff.max() > 4 * tolerance:
                wrong.append(f"{name} via {what}: mean error {diff.mean():.1f}")
    assert not wrong, "; ".join(wrong)
