"""Identify an upload from its bytes: format sniffed from the content, dimensions read from the header,
without decoding the pixels (a decompression bomb is refused before it costs memory).

Stand-in with the same name and meaning as ``model.imageio.probe`` until that module is in main; then
this file becomes ``from model.imageio import probe``.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from model.errors import ImageError, LimitExceeded, UnsupportedFormat

ACCEPTED = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")


@dataclass(frozen=True)
class ImageInfo:
    format: str  # one of ACCEPTED
    width: int
    height: int


def probe(data: bytes, *, max_pixels: int | None = None) -> ImageInfo:
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                fmt, (width, height) = im.format, im.size
    except Image.DecompressionBombError:
        raise LimitExceeded("the image declares too many pixels (decompression bomb?)") from None
    except UnidentifiedImageError:
        raise UnsupportedFormat(f"unsupported format: not an image, or not one of {', '.join(ACCEPTED)}") from None
    except Exception as exc:  # truncated or corrupt header
        raise ImageError(f"corrupt image header: {exc}") from None
    if fmt not in ACCEPTED:
        raise UnsupportedFormat(f"unsupported format: {fmt} (accepted: {', '.join(ACCEPTED)})")
    if max_pixels and width * height > max_pixels:
        raise LimitExceeded(f"image is {width}x{height} ({width * height:,} pixels), over the input limit of "
                            f"{max_pixels:,} pixels")
    return ImageInfo(fmt, width, height)
