"""Images made in the test: patterns whose pixels show any flip, channel swap or bit loss, and hand-built
PNG bytes for what Pillow cannot write (16-bit gray+alpha, headers declaring absurd sizes)."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageCms


def pattern(height: int = 24, width: int = 32, channels: int = 3, dtype=np.uint8, seed: int = 0,
            noise: float = 0.2) -> np.ndarray:
    """Gradients plus noise, every pixel different enough to catch misplaced rows/columns
    (``noise=0`` for a smooth image that lossy codecs keep close)."""
    rng = np.random.default_rng(seed)
    top = 65535 if dtype == np.uint16 else 255
    y, x = np.mgrid[0:height, 0:width]
    ramps = [(x * 7 + y * 3 + c * 50) % 510 for c in range(max(channels, 1))]
    planes = [(255 - np.abs(r - 255)) / 255 for r in ramps]  # triangle waves: no jumps
    img = np.stack(planes, axis=-1) * (1 - noise) + rng.random((height, width, max(channels, 1))) * noise
    img = np.round(img * top).astype(dtype)
    return img[..., 0] if channels == 1 else img


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def pillow_bytes(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def raw_png(width: int, height: int, color_type: int, bit_depth: int, rows: bytes | None = None) -> bytes:
    """A PNG from its raw scanlines; ``rows=None`` gives a tiny IDAT for any declared size (a bomb header)."""
    idat = zlib.compress(rows if rows is not None else b"\x00" * 64)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def png16_gray_alpha(pixels: np.ndarray) -> bytes:
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    return raw_png(width, height, color_type=4, bit_depth=16, rows=rows)


def insert_after_ihdr(png: bytes, chunk: bytes) -> bytes:
    return png[:33] + chunk + png[33:]


def exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def png_rows(pixels: np.ndarray, rows: int | None = None, exif_after_idat: bytes | None = None,
             trns: bytes | None = None) -> bytes:
    """A PNG of 8/16-bit gray or RGB ``pixels`` whose (complete, valid) zlib stream holds only the first
    ``rows`` rows, optionally with a tRNS chunk and an eXIf chunk after the image data."""
    height, width = pixels.shape[:2]
    depth = 16 if pixels.dtype == np.uint16 else 8
    colour_type = 0 if pixels.ndim == 2 else 2
    data = pixels.astype(">u2") if depth == 16 else pixels
    raw = b"".join(b"\x00" + data[y].tobytes() for y in range(height if rows is None else rows))
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + (png_chunk(b"tRNS", trns) if trns else b"")
            + png_chunk(b"IDAT", zlib.compress(raw))
            + (png_chunk(b"eXIf", exif_after_idat) if exif_after_idat else b"") + png_chunk(b"IEND", b""))


def tiff_bytes(pixels: np.ndarray, orientation: int = 1, pages: int = 1, photometric: str | None = None) -> bytes:
    """A TIFF (tifffile) with an orientation tag, and ``pages - 1`` more one-pixel pages after the first."""
    import tifffile

    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        tif.write(pixels, photometric=photometric or ("rgb" if pixels.ndim == 3 else "minisblack"),
                  extratags=[(274, "H", 1, orientation, True)])
        for _ in range(pages - 1):
            tif.write(np.zeros((1, 1), np.uint8), contiguous=False)
    return buf.getvalue()


def mpo_bytes(first: np.ndarray, second: np.ndarray) -> bytes:
    """A two-frame JPEG (MPO), as phones and stereo cameras write."""
    return pillow_bytes(Image.fromarray(first), "MPO", save_all=True, append_images=[Image.fromarray(second)],
                        quality=95)


# width 1, height 1, 8 bits, min-is-black, strip at offset 8 (the header's bytes, any pixel will do)
TINY_PAGE = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (262, 3, 1, 1), (273, 4, 1, 8), (279, 4, 1, 1)]
PAGE = 2 + 12 * len(TINY_PAGE) + 4


def tiff_with_tiny_pages(pixels: np.ndarray, pages: int) -> bytes:
    """A TIFF whose first page is ``pixels``, followed by ``pages - 1`` one-pixel pages of 78 bytes each
    (96,000 such pages held the API for 42 s while Pillow counted them)."""
    data = bytearray(tiff_bytes(pixels))
    ifd = int.from_bytes(data[4:8], "little")
    next_pointer = ifd + 2 + 12 * int.from_bytes(data[ifd:ifd + 2], "little")
    start = len(data) + len(data) % 2
    data += b"\0" * (start - len(data))
    data[next_pointer:next_pointer + 4] = start.to_bytes(4, "little")
    for k in range(pages - 1):
        following = start + PAGE * (k + 1) if k < pages - 2 else 0
        data += struct.pack("<H", len(TINY_PAGE)) + b"".join(struct.pack("<HHII", *tag) for tag in TINY_PAGE)
        data += following.to_bytes(4, "little")
    return bytes(data)
