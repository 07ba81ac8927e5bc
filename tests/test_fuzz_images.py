"""Image decoders fuzzed with hypothesis: corrupted and crafted files of every accepted kind are each
processed or refused with ImageError / UnsupportedFormat / LimitExceeded, never another exception, a
hang (hypothesis deadline) or unbounded memory (decompression bombs refused from the header); whatever
both accept, the probe (API) and the decode (worker) agree on. Generated PNG / TIFF / JPEG structures
(rows missing, eXIf before or after the pixels, orientations, page counts, MPO) come out exactly right."""
from __future__ import annotations

import io
import resource
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from model import imageio
from model.errors import ImageError, LimitExceeded
from tests.imagefactory import exif_orientation, mpo_bytes, pattern, png_rows, tiff_bytes

MAX_PIXELS = 4_000_000
REFUSALS = (ImageError, LimitExceeded)  # UnsupportedFormat is an ImageError
FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _noise(w: int, h: int, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(w * 7 + h)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16))
    return Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA").convert(mode)


def _animated(fmt: str) -> bytes:
    frames = [_noise(16, 16).convert("RGB"), Image.new("RGB", (16, 16), "red")]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)


# Valid seeds of every kind the decoders meet; the fuzzer corrupts them.
SEEDS = {
    "png-rgb": _save(_noise(24, 16), "PNG"),
    "png-rgba": _save(_noise(16, 16, "RGBA"), "PNG"),
    "png-palette": _save(_noise(16, 16).convert("P"), "PNG"),
    "png-16bit-gray": _save(_noise(16, 16, "I;16"), "PNG"),
    "png-1x1": _save(Image.new("RGB", (1, 1), "blue"), "PNG"),
    "png-extreme-aspect": _save(Image.new("L", (4000, 1)), "PNG"),
    "jpeg": _save(_noise(32, 24), "JPEG", quality=80),
    "jpeg-cmyk": _save(_noise(16, 16).convert("CMYK"), "JPEG"),
    "jpeg-gray-tall": _save(Image.new("L", (1, 2000)), "JPEG"),
    "webp": _save(_noise(16, 16), "WEBP"),
    "webp-alpha": _save(_noise(16, 16, "RGBA"), "WEBP", lossless=True),
    "webp-animated": _animated("WEBP"),
    "tiff": _save(_noise(16, 16), "TIFF"),
    "tiff-cmyk": _save(_noise(16, 16).convert("CMYK"), "TIFF"),
    "tiff-16bit": _save(_noise(16, 16, "I;16"), "TIFF"),
    "tiff-deflate": _save(_noise(16, 16), "TIFF", compression="tiff_adobe_deflate"),
    "bmp": _save(_noise(16, 16), "BMP"),
    "gif-animated": _animated("GIF"),
    "mpo": mpo_bytes(pattern(16, 24), pattern(16, 24, seed=1)),
    "tiff-pages": tiff_bytes(pattern(12, 16), pages=5),
    "tiff-orientation-6": tiff_bytes(pattern(12, 16), orientation=6),
    "tiff-16bit-orientation-8": tiff_bytes(pattern(12, 16, dtype=np.uint16), orientation=8),
    "png-16bit-gray-trns": png_rows(pattern(12, 16, channels=1, dtype=np.uint16), trns=b"\x00\x07"),
    "png-exif-after-idat": png_rows(pattern(12, 16), exif_after_idat=exif_orientation(6)[6:]),
}


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A well-formed PNG header declaring any size, with a few bytes of pixel data (a bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    data = bytearray(SEEDS["jpeg"])
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)  # JPEG sizes are 16-bit
    return bytes(data)


def bmp_declaring(width: int, height: int) -> bytes:
    data = bytearray(SEEDS["bmp"])
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def exercise(data: bytes) -> None:
    """Probe and decode; only a result or one of our refusals may come out, and what the API's probe
    promised about an image the worker decodes (size, channels, depth) is what the decode gives."""
    try:
        info = imageio.probe(data, max_pixels=MAX_PIXELS)  # what the API runs on an upload
    except REFUSALS:
        info = None
    try:
        decoded = imageio.decode(data, max_pixels=MAX_PIXELS)
    except REFUSALS:
        return
    pixels = decoded.pixels
    assert pixels.dtype in (np.uint8, np.uint16) and pixels.ndim in (2, 3)
    assert pixels.shape[0] * pixels.shape[1] <= MAX_PIXELS
    assert info is not None, "decoded what the probe refused"
    assert_matches_probe(info, pixels)


def assert_matches_probe(info: imageio.ImageInfo, pixels: np.ndarray) -> None:
    layout = {1: (), 2: (4,), 3: (3,), 4: (4,)}[info.channels]  # gray+alpha decodes as RGBA
    assert pixels.shape == (info.height, info.width) + layout, (info, pixels.shape)
    assert pixels.dtype == (np.uint16 if info.bit_depth == 16 else np.uint8)


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_valid_seeds_decode_or_are_refused_cleanly(kind):
    data = SEEDS[kind]
    if kind.startswith("gif"):
        with pytest.raises(ImageError, match="unsupported format"):
            imageio.decode(data)
        return
    decoded = imageio.decode(data, max_pixels=MAX_PIXELS)
    assert decoded.pixels.shape[:2] == Image.open(io.BytesIO(data)).size[::-1]


@FUZZ
@given(kind=st.sampled_from(sorted(SEEDS)), cut=st.floats(0, 1))
def test_truncated_files(kind, cut):
    data = SEEDS[kind]
    exercise(data[:int(len(data) * cut)])


@FUZZ
@given(kind=st.sampled_from(sorted(SEEDS)), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)),
                                                           min_size=1, max_size=8))
def test_corrupted_bytes(kind, flips):
    data = bytearray(SEEDS[kind])
    for where, value in flips:
        data[min(int(where * len(data)), len(data) - 1)] = value
    exercise(bytes(data))


@FUZZ
@given(kind=st.sampled_from(sorted(SEEDS)), magic=st.binary(min_size=1, max_size=12))
def test_wrong_magic_numbers(kind, magic):
    exercise(magic + SEEDS[kind][len(magic):])


@FUZZ
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes(data):
    exercise(data)


@settings(max_examples=60, deadline=2000, derandomize=True)
@given(maker=st.sampled_from([png_declaring, jpeg_declaring, bmp_declaring]),
       width=st.integers(0, 2**31 - 1), height=st.integers(0, 2**31 - 1))
def test_crafted_dimensions(maker, width, height):
    exercise(maker(width, height))


@pytest.mark.parametrize("maker", [png_declaring, jpeg_declaring, bmp_declaring])
def test_decompression_bombs_are_refused_from_the_header(maker):
    """A 65535x65535 declaration (4.3 Gpixels, ~13 GB decoded) is refused without the memory."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for check in (imageio.probe, imageio.decode):
        with pytest.raises(LimitExceeded):
            check(maker(65535, 65535), max_pixels=MAX_PIXELS)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100


def test_zero_size_and_empty():
    with pytest.raises(ImageError, match="empty"):
        imageio.decode(b"")
    for maker in (png_declaring, bmp_declaring):
        with pytest.raises(ImageError):
            imageio.decode(maker(0, 0))


# --- generated structures: each is decoded exactly right or refused ---------------------------------------

STRUCTURE = settings(max_examples=60, deadline=3000, suppress_health_check=[HealthCheck.too_slow],
                     derandomize=True)
sizes = st.tuples(st.integers(1, 24), st.integers(1, 24))


@STRUCTURE
@given(size=sizes, sixteen=st.booleans(), channels=st.sampled_from([1, 3]), data=st.data(),
       exif=st.one_of(st.none(), st.tuples(st.integers(1, 8), st.booleans())))
def test_png_structures(size, sixteen, channels, data, exif):
    """Rows missing from a complete zlib stream are refused; an eXIf chunk counts only before the pixels."""
    (height, width), dtype = size, np.uint16 if sixteen else np.uint8
    pixels = pattern(height, width, channels=channels, dtype=dtype, seed=height * width)
    rows = data.draw(st.integers(0, height), label="rows")
    png = png_rows(pixels, rows=rows)
    orientation = 1
    if exif is not None:
        value, before_idat = exif
        chunk = _png_chunk(b"eXIf", exif_orientation(value)[6:])
        if before_idat:
            png, orientation = png[:33] + chunk + png[33:], value
        else:
            png = png[:-12] + chunk + png[-12:]
    info = imageio.probe(png)
    expected = imageio.orient(pixels, orientation)
    assert (info.width, info.height, info.orientation) == (expected.shape[1], expected.shape[0], orientation)
    if rows < height:
        with pytest.raises(ImageError, match="truncated PNG"):
            imageio.decode(png)
        return
    decoded = imageio.decode(png).pixels
    assert_matches_probe(info, decoded)
    np.testing.assert_array_equal(decoded, expected)


@STRUCTURE
@given(size=sizes, sixteen=st.booleans(), channels=st.sampled_from([1, 3]), orientation=st.integers(1, 8),
       pages=st.integers(1, 300))
def test_tiff_structures(size, sixteen, channels, orientation, pages):
    """Orientation applied once (by the decoders, never again by us), whatever the depth; pages after the
    first counted up to the cap and never decoded."""
    (height, width), dtype = size, np.uint16 if sixteen else np.uint8
    pixels = pattern(height, width, channels=channels, dtype=dtype, seed=height + width)
    tiff = tiff_bytes(pixels, orientation=orientation, pages=pages)
    info, decoded = imageio.probe(tiff), imageio.decode(tiff)
    expected = imageio.orient(pixels, orientation)
    assert info.frames == min(pages, imageio.MAX_FRAMES_COUNTED)
    assert_matches_probe(info, decoded.pixels)
    np.testing.assert_array_equal(decoded.pixels, expected)


@STRUCTURE
@given(size=st.tuples(st.integers(8, 40), st.integers(8, 40)), orientation=st.integers(1, 8), mpo=st.booleans())
def test_jpeg_structures(size, orientation, mpo):
    """A JPEG or a two-frame MPO, any orientation: the first frame, turned once, the size the probe said."""
    height, width = size
    pixels = pattern(height, width, noise=0)
    exif = exif_orientation(orientation)
    if mpo:
        frames = [Image.fromarray(pixels), Image.fromarray(255 - pixels)]
        jpeg = _save(frames[0], "MPO", save_all=True, append_images=frames[1:], quality=95, exif=exif)
    else:
        jpeg = _save(Image.fromarray(pixels), "JPEG", quality=95, exif=exif)
    info, decoded = imageio.probe(jpeg), imageio.decode(jpeg)
    assert info.format == "JPEG" and info.frames == (2 if mpo else 1) and info.orientation == orientation
    assert_matches_probe(info, decoded.pixels)
    assert np.abs(decoded.pixels.astype(int) - imageio.orient(pixels, orientation)).mean() < 6
