"""Identify an upload from its bytes: format sniffed from the content and dimensions read from the
header, without decoding the pixels (so a decompression bomb is refused before it costs memory).

Stand-in for ``model.imageio.probe`` (same name and meaning) until that module is available to the API.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from model.errors import ImageError, LimitExceeded, UnsupportedFormat

FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "TIFF": "tiff", "BMP": "bmp"}


@dataclass(frozen=True)
class ImageInfo:
    format: str  # png, jpeg, webp, tiff, bmp
    width: int
    height: int


def probe(data: bytes, max_pixels: int | None = None) -> ImageInfo:
    if not data:
        raise ImageError("the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=None) as im:
                fmt, (width, height) = im.format, im.size
    except Image.DecompressionBombError:
        raise LimitExceeded("the image's declared dimensions are too large") from None
    except UnidentifiedImageError:
        raise UnsupportedFormat("not an image, or not a supported format (PNG, JPEG, WebP, TIFF, BMP)") from None
    except Exception as exc:  # truncated or corrupt header
        raise ImageError(f"unreadable image: {exc}") from None
    if fmt not in FORMATS:
        raise UnsupportedFormat(f"{fmt} images are not supported (PNG, JPEG, WebP, TIFF, BMP)")
    if width < 1 or height < 1:
        raise ImageError(f"the image has no pixels ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        raise LimitExceeded(f"the image is {width}x{height} = {width * height:,} pixels; "
                            f"the limit is {max_pixels:,}")
    return ImageInfo(FORMATS[fmt], width, height)
