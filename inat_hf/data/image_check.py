"""Per-image checks and (optional) re-encoding while a dataset is prepared: every image the builder writes passed
:func:`check_image`; every one it skips has a reason from here (the skip report). What can be repaired is: modes
become RGB (:func:`~inat_hf.data.rgb.to_rgb`) and EXIF orientation is applied when images are embedded or resized;
with path storage both happen at decode time, except where PIL's ``convert("RGB")`` differs from ``to_rgb``
(transparency, more than 8 bits): those converted pixels are stored too, as lossless PNG, so every reader agrees.
"""

from __future__ import annotations

import dataclasses
import io
import os
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from .rgb import needs_own_conversion, to_rgb

# PIL's own guard against decompression bombs (~89 Mpx). iNat 2021 images are at most 500 px on the long side.
DEFAULT_MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
_EXIF_ORIENTATION = 0x0112
# Magic numbers of JPEG, PNG, GIF, WebP/RIFF, BMP, TIFF: such a file that PIL cannot open is corrupt, not foreign.
_IMAGE_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")


@dataclasses.dataclass
class ImageCheckResult:
    ok: bool
    kind: str | None = None  # short class of problem, e.g. "truncated image" (report counts group by it)
    reason: str | None = None  # the full explanation
    data: bytes | None = None  # bytes to store: the image (bytes storage) or its converted pixels (see above)
    # what was repaired, one report key each: "mode CMYK->RGB", "EXIF orientation 6", "resized"
    fixed: tuple[str, ...] = ()


def _bad(kind: str, detail: str = "") -> ImageCheckResult:
    return ImageCheckResult(ok=False, kind=kind, reason=f"{kind} ({detail})" if detail else kind)


def _encode(image: Image.Image, **save_options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **save_options)
    return buffer.getvalue()


def check_image(path: str, config, root: str) -> ImageCheckResult:
    """Check one image file and, when images are embedded, return the bytes to store. ``config``: the
    preparation's :class:`~inat_hf.data.builder.InatBuilderConfig`; ``root``: its data root (a real path)."""
    embed, resize_shorter = config.image_storage == "bytes", config.resize_shorter
    # file_name is checked for '..' and absolute paths at parse time; links are only seen here.
    real = None if config.follow_symlinks else os.path.realpath(path)
    if real is not None and os.path.commonpath([real, root]) != root:
        return _bad(
            "outside the data root",
            f"a symbolic link to {real}; pass --follow_symlinks to accept links that leave the data root",
        )
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return _bad("missing file")
    except OSError as err:
        return _bad("unreadable file", str(err.strerror or err))
    if size == 0:
        return _bad("empty file", "0 bytes")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        with warnings.catch_warnings():
            # We apply our own pixel limit below; PIL's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError as err:
        return _bad("decompression bomb", str(err))
    except UnidentifiedImageError:
        if raw.startswith(_IMAGE_SIGNATURES):
            return _bad("corrupt image", f"starts like an image file but PIL cannot read its header ({size} bytes)")
        # The file's bytes are never quoted: the path may lead to anything (a private text file).
        return _bad("not an image", f"PIL cannot identify the file ({size} bytes)")
    except Exception as err:  # noqa: BLE001 - any decoder failure is a bad image, with its message
        return _bad("corrupt image", f"{type(err).__name__}: {err}")
    width, height = image.size
    if width * height > config.max_image_pixels:
        return _bad(
            "decompression bomb",
            f"{width}x{height} = {width * height:,} pixels, over the limit of {config.max_image_pixels:,} "
            "(--max_image_pixels)",
        )
    if not config.verify_files and resize_shorter is None and not needs_own_conversion(image):
        return ImageCheckResult(ok=True, data=raw)  # embed as is: any reader converts it the same way
    mode = image.mode
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    need_resize = resize_shorter is not None and min(width, height) > resize_shorter
    if embed and need_resize and image.format == "JPEG":
        # Decode straight at a reduced scale (DCT scaling) when the target allows it: much faster.
        scale = min(width, height) / resize_shorter
        image.draft("RGB", (max(1, int(width / scale)), max(1, int(height / scale))))
    elif not embed and image.format == "JPEG":
        # Verification only: a 1/8-scale decode still reads (and checks) the whole entropy-coded stream.
        image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
    try:
        image.load()
    except Exception as err:  # noqa: BLE001 - PIL raises OSError/SyntaxError/ValueError for broken streams
        text = str(err)
        kind = "truncated image" if "truncated" in text.lower() else "corrupt image"
        return _bad(kind, f"{type(err).__name__}: {text}")
    fixed = []
    if mode != "RGB":
        fixed.append(f"mode {mode}->RGB")
    if orientation not in (1, None):
        fixed.append(f"EXIF orientation {orientation}")
    if not embed:
        # see the module docstring: images PIL converts otherwise are stored converted, losslessly
        png = None
        if needs_own_conversion(image):
            png = _encode(to_rgb(ImageOps.exif_transpose(image)), format="PNG", compress_level=1)
        return ImageCheckResult(ok=True, fixed=tuple(fixed), data=png)
    if not fixed and not need_resize and image.format == "JPEG":
        return ImageCheckResult(ok=True, data=raw)  # already what we want: keep the original bytes bit-exact
    if orientation not in (1, None):
        image = ImageOps.exif_transpose(image)
    image = to_rgb(image)
    if need_resize:
        w, h = image.size
        scale = resize_shorter / min(w, h)
        if scale < 1:
            new_size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = image.resize(new_size, Image.Resampling.BICUBIC, reducing_gap=2.0)
        fixed.append("resized")
    jpeg = _encode(image, format="JPEG", quality=config.jpeg_quality, optimize=False)
    return ImageCheckResult(ok=True, data=jpeg, fixed=tuple(fixed))


def check_images(paths: list[str], config) -> list[ImageCheckResult]:
    """Batch form for worker processes (one task per chunk keeps the inter-process traffic low)."""
    root = os.path.realpath(config.data_dir)
    return [check_image(p, config, root) for p in paths]
