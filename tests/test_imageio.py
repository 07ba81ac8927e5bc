"""Image I/O: format sniffing, limits before decode, orientation, ICC, alpha/gray/16-bit round trips."""
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image, ImageOps

from model import imageio
from model.errors import ImageError, LimitExceeded, UnsupportedFormat
from tests.imagefactory import (exif_orientation, insert_after_ihdr, mpo_bytes, pattern, pillow_bytes,
                                png16_gray_alpha, png_chunk, png_rows, raw_png, srgb_profile, tiff_bytes)

ROOT = Path(__file__).resolve().parents[1]
LOSSY = {"jpg": 6, "webp": 8}  # mean absolute error allowed at quality 95


def roundtrip(pixels, fmt, **kw):
    return imageio.decode(imageio.encode(pixels, fmt, **kw))


# --- round trips ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["png", "tiff"])
@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_lossless_roundtrip_keeps_layout_dtype_and_values(fmt, channels, dtype):
    pixels = pattern(channels=channels, dtype=dtype)
    out = roundtrip(pixels, fmt)
    assert out.pixels.dtype == dtype and out.pixels.shape == pixels.shape
    np.testing.assert_array_equal(out.pixels, pixels)
    assert out.info.bit_depth == (16 if dtype == np.uint16 else 8)
    assert out.info.has_alpha == (channels == 4)
    assert out.info.channels == channels


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
@pytest.mark.parametrize("channels", [1, 3])
def test_lossy_roundtrip_is_close(fmt, channels):
    pixels = pattern(channels=channels, noise=0)
    out = roundtrip(pixels, fmt, quality=95)
    got = out.pixels if out.pixels.ndim == pixels.ndim else out.pixels[..., 0]  # WebP has no gray
    assert got.shape == pixels.shape
    assert np.abs(got.astype(int) - pixels).mean() < LOSSY[fmt]


def test_webp_keeps_alpha_and_jpeg_flattens_it_on_white():
    pixels = pattern(channels=4)
    pixels[..., 3] = 255
    pixels[:, :8, 3] = 0  # transparent stripe
    webp = roundtrip(pixels, "webp", quality=95).pixels
    assert webp.shape == pixels.shape and (webp[:, :8, 3] == 0).all() and (webp[:, 8:, 3] == 255).all()
    jpg = roundtrip(pixels, "jpg", quality=95).pixels
    assert jpg.shape == pixels.shape[:2] + (3,)
    assert jpg[:, :6].min() > 240  # transparent became white
    assert np.abs(jpg[:, 10:].astype(int) - pixels[:, 10:, :3]).mean() < LOSSY["jpg"]


def test_16bit_to_8bit_formats_rounds_to_nearest():
    pixels = np.array([[0, 128, 257 * 100 + 128, 65535]], np.uint16)
    np.testing.assert_array_equal(imageio.to_8bit(pixels), [[0, 0, 100, 255]])
    out = roundtrip(np.dstack([pixels] * 3), "webp", quality=100).pixels
    assert out.dtype == np.uint8


def test_16bit_gray_alpha_png_decodes_to_rgba16():
    pixels = pattern(channels=2, dtype=np.uint16)
    out = imageio.decode(png16_gray_alpha(pixels))
    assert out.info.bit_depth == 16 and out.info.channels == 2 and out.info.has_alpha
    assert out.pixels.shape == pixels.shape[:2] + (4,) and out.pixels.dtype == np.uint16
    for c in range(3):
        np.testing.assert_array_equal(out.pixels[..., c], pixels[..., 0])
    np.testing.assert_array_equal(out.pixels[..., 3], pixels[..., 1])


def test_8bit_gray_alpha_palette_bilevel_and_cmyk_are_normalised():
    gray = pattern(channels=1)
    la = Image.fromarray(np.dstack([gray, 255 - gray]), "LA")
    out = imageio.decode(pillow_bytes(la, "PNG")).pixels
    assert out.shape == gray.shape + (4,)
    np.testing.assert_array_equal(out[..., 1], gray)
    np.testing.assert_array_equal(out[..., 3], 255 - gray)

    rgb = Image.fromarray(pattern())
    pal = rgb.quantize(16)
    out = imageio.decode(pillow_bytes(pal, "PNG"))
    assert out.info.mode == "P" and out.pixels.shape == (24, 32, 3)
    np.testing.assert_array_equal(out.pixels, np.asarray(pal.convert("RGB")))

    pal.info["transparency"] = 0
    out = imageio.decode(pillow_bytes(pal, "PNG", transparency=0))
    assert out.info.has_alpha and out.pixels.shape == (24, 32, 4)
    assert set(np.unique(out.pixels[..., 3])) == {0, 255}

    bits = Image.fromarray(gray > 128)
    out = imageio.decode(pillow_bytes(bits, "BMP"))
    assert out.info.format == "BMP" and out.pixels.dtype == np.uint8
    np.testing.assert_array_equal(out.pixels, np.where(gray > 128, 255, 0))

    out = imageio.decode(pillow_bytes(rgb.convert("CMYK"), "JPEG", quality=95))
    assert out.info.mode == "CMYK" and out.pixels.shape == (24, 32, 3)
    assert np.abs(out.pixels.astype(int) - pattern()).mean() < 8


def test_animated_input_gives_first_frame():
    frames = [Image.fromarray(pattern(seed=i)) for i in range(3)]
    data = pillow_bytes(frames[0], "PNG", save_all=True, append_images=frames[1:])
    out = imageio.decode(data)
    assert out.info.frames == 3
    np.testing.assert_array_equal(out.pixels, pattern(seed=0))


# --- orientation and colour profile -------------------------------------------------------------------

@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillows_transpose(orientation):
    img = Image.fromarray(pattern(20, 30))
    data = pillow_bytes(img, "PNG", exif=exif_orientation(orientation))
    out = imageio.decode(data)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(__import__("io").BytesIO(data))))
    np.testing.assert_array_equal(out.pixels, expected)
    assert (out.info.width, out.info.height) == (expected.shape[1], expected.shape[0])
    assert out.exif_transposed == (orientation != 1)


def test_jpeg_orientation_rotates_pixels():
    pixels = np.zeros((40, 64, 3), np.uint8)
    pixels[:16, :16] = (255, 0, 0)  # red top-left corner
    data = pillow_bytes(Image.fromarray(pixels), "JPEG", quality=95, exif=exif_orientation(6))
    out = imageio.decode(data)
    assert out.pixels.shape == (64, 40, 3) and out.info.orientation == 6
    # 90 degrees clockwise: the top-left corner moves to the top-right
    assert out.pixels[4, -4, 0] > 200 and out.pixels[4, 4, 0] < 50
    assert imageio.probe(data).width == 40


def test_16bit_png_orientation_applies_too():
    pixels = pattern(10, 16, dtype=np.uint16)
    exif = exif_orientation(8)[6:]  # PNG's eXIf holds the TIFF structure without "Exif\0\0"
    data = insert_after_ihdr(imageio.encode(pixels, "png"), png_chunk(b"eXIf", exif))
    out = imageio.decode(data)
    np.testing.assert_array_equal(out.pixels, np.rot90(pixels))  # 8 = 90 degrees counter-clockwise


@pytest.mark.parametrize("fmt,dtype", [("png", np.uint8), ("jpg", np.uint8), ("webp", np.uint8), ("tiff", np.uint8),
                                       ("png", np.uint16), ("tiff", np.uint16)])
def test_icc_profile_is_kept(fmt, dtype):
    icc = srgb_profile()
    out = roundtrip(pattern(dtype=dtype), fmt, icc_profile=icc)
    assert out.icc_profile == icc
    assert roundtrip(pattern(dtype=dtype), fmt).icc_profile is None


# --- bad input ----------------------------------------------------------------------------------------

def test_empty_and_non_image_bytes():
    with pytest.raises(ImageError, match="empty"):
        imageio.decode(b"")
    with pytest.raises(UnsupportedFormat, match="not an image"):
        imageio.probe(b"hello, this is plain text and not a picture\n" * 3)
    with pytest.raises(UnsupportedFormat, match="PDF"):
        imageio.decode(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")


def test_gif_is_refused_by_name():
    data = pillow_bytes(Image.fromarray(pattern()).convert("P"), "GIF")
    with pytest.raises(UnsupportedFormat, match="GIF"):
        imageio.probe(data)


def test_format_comes_from_content_not_name(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(imageio.encode(pattern(), "png"))
    assert imageio.read_image(path).info.format == "PNG"


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp", "tiff"])
@pytest.mark.parametrize("keep", [0.5, 0.9, 20])
def test_truncated_files_give_a_clear_error(fmt, keep):
    data = imageio.encode(pattern(64, 64), fmt, quality=90)
    cut = data[:keep] if isinstance(keep, int) else data[:int(len(data) * keep)]
    with pytest.raises(ImageError, match="(?i)corrupt|truncated") as err:
        imageio.decode(cut)
    assert not isinstance(err.value, UnsupportedFormat)


def test_truncated_16bit_png_gives_a_clear_error():
    data = imageio.encode(pattern(64, 64, dtype=np.uint16), "png")
    with pytest.raises(ImageError, match="(?i)corrupt|truncated"):
        imageio.decode(data[: len(data) // 2])


def test_tiff_with_a_broken_page_chain_is_corrupt():
    data = bytearray(imageio.encode(pattern(), "tiff"))
    ifd = int.from_bytes(data[4:8], "little")
    next_ifd = ifd + 2 + 12 * int.from_bytes(data[ifd:ifd + 2], "little")
    data[next_ifd:next_ifd + 4] = (len(data) + 1000).to_bytes(4, "little")  # second page past the end
    with pytest.raises(ImageError, match="corrupt TIFF"):
        imageio.decode(bytes(data))


def test_probe_reads_only_the_header():
    data = imageio.encode(pattern(64, 48), "png")
    info = imageio.probe(data[:200])  # pixels missing, header intact
    assert (info.format, info.width, info.height, info.bit_depth, info.channels) == ("PNG", 48, 64, 8, 3)


def _jpeg_claiming(width, height) -> bytes:
    data = bytearray(imageio.encode(pattern(), "jpg"))
    sof = data.index(b"\xff\xc0")  # baseline frame header: length(2) precision(1) height(2) width(2)
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


@pytest.mark.parametrize("data", [raw_png(60_000, 60_000, 2, 8), raw_png(5000, 4000, 6, 16),
                                  _jpeg_claiming(65000, 65000)], ids=["png-3.6Gpx", "png-20Mpx-16bit", "jpeg-4Gpx"])
def test_decompression_bombs_are_refused_from_the_header(data):
    process = psutil.Process()
    rss_before = process.memory_info().rss
    start = time.perf_counter()
    with pytest.raises(LimitExceeded, match="input limit"):
        imageio.decode(data, max_pixels=16_000_000)
    assert time.perf_counter() - start < 0.5
    assert process.memory_info().rss - rss_before < 50 * 2**20


def test_pillows_own_bomb_check_reads_as_our_limit():
    with pytest.raises(LimitExceeded, match="input limit"):
        imageio.probe(raw_png(60_000, 60_000, 2, 8))  # no max_pixels: Pillow's check still answers


def test_limit_allows_images_at_the_limit():
    data = imageio.encode(pattern(20, 30), "png")
    assert imageio.decode(data, max_pixels=600).pixels.shape == (20, 30, 3)
    with pytest.raises(LimitExceeded, match="30x20"):
        imageio.decode(data, max_pixels=599)


def test_output_size_check():
    imageio.check_output_size(1000, 1000, 1_000_000)
    with pytest.raises(LimitExceeded, match="4000x4000"):
        imageio.check_output_size(4000, 4000, 10_000_000)


def test_output_formats_and_paths(tmp_path):
    assert imageio.output_format("JPEG") == imageio.output_format(".jpg") == "jpg"
    assert imageio.default_output_format("BMP") == "png"
    with pytest.raises(UnsupportedFormat, match="gif"):
        imageio.output_format("gif")
    path = imageio.write_image(tmp_path / "sub" / "x.tif", pattern(dtype=np.uint16))
    assert imageio.read_image(path).info.format == "TIFF"
    with pytest.raises(UnsupportedFormat):
        imageio.write_image(tmp_path / "x.bmp", pattern())
    with pytest.raises(ValueError, match="uint8/uint16"):
        imageio.encode(pattern().astype(np.float32), "png")


def test_imageio_imports_neither_tensorflow_nor_opencv():
    code = ("import sys, model.imageio as m; m.probe(m.encode(__import__('numpy').zeros((4, 4), 'uint8'), 'png'));"
            "assert 'tensorflow' not in sys.modules and 'cv2' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


# --- hostile and unusual structures: the probe reads headers only, decode refuses partial data ----------

def test_many_page_tiff_is_probed_and_decoded_in_bounded_time():
    """Pillow's n_frames walks every page quadratically (96,000 pages: 42 s); only page one matters."""
    first = pattern(8, 12)
    data = tiff_bytes(first, pages=30_000)
    start = time.perf_counter()
    info = imageio.probe(data)
    out = imageio.decode(data)
    assert time.perf_counter() - start < 1.0
    assert info.frames == imageio.MAX_FRAMES_COUNTED and (info.width, info.height) == (12, 8)
    np.testing.assert_array_equal(out.pixels, first)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3])
def test_truncated_png_image_data_is_refused_not_filled_black(dtype, channels):
    """IHDR says 60 rows, the (complete, valid) zlib stream holds 6: Pillow would return black rows."""
    pixels = pattern(60, 40, channels=channels, dtype=dtype)
    data = png_rows(pixels, rows=6)
    assert imageio.probe(data).height == 60  # the header is fine
    with pytest.raises(ImageError, match="truncated PNG"):
        imageio.decode(data)
    np.testing.assert_array_equal(imageio.decode(png_rows(pixels)).pixels, pixels)


def test_png_with_a_zlib_error_or_a_bad_crc_in_its_image_data_is_refused():
    data = bytearray(png_rows(pattern(60, 40)))
    idat = data.index(b"IDAT")
    broken = bytearray(data)
    broken[idat + 4 + 50: idat + 4 + 60] = b"\xff" * 10  # garbage mid-stream, CRC recomputed
    length = int.from_bytes(data[idat - 4:idat], "big")
    broken[idat + 4 + length: idat + 8 + length] = zlib.crc32(broken[idat:idat + 4 + length]).to_bytes(4, "big")
    with pytest.raises(ImageError, match="corrupt or truncated PNG image: Error"):  # zlib's
        imageio.decode(bytes(broken))
    data[idat + 30] ^= 0x01  # one bit flipped, CRC left as it was
    with pytest.raises(ImageError, match="CRC"):
        imageio.decode(bytes(data))


def test_exif_after_the_image_data_is_ignored_by_probe_and_decode_alike():
    pixels = pattern(20, 30)
    data = png_rows(pixels, exif_after_idat=exif_orientation(6)[6:])
    info, out = imageio.probe(data), imageio.decode(data)
    assert (info.width, info.height, info.orientation) == (30, 20, 1)
    np.testing.assert_array_equal(out.pixels, pixels)


def test_probe_of_a_16_megapixel_16bit_png_decodes_no_pixels():
    """A 4000x4000 16-bit RGB PNG compresses to ~100 KB; decoding it would take ~100 MB. The probe runs in
    a fresh process whose peak memory must not move."""
    code = ("import resource, struct, time, zlib; from model import imageio; from tests.imagefactory import png_chunk;"
            "z = zlib.compressobj(); row = bytes(1 + 4000 * 6);"  # compressed row by row: no big buffer here
            "idat = b''.join(z.compress(row) for _ in range(4000)) + z.flush();"
            "data = (b'\\x89PNG\\r\\n\\x1a\\n' + png_chunk(b'IHDR', struct.pack('>IIBBBBB', 4000, 4000, 16, 2, 0, 0, 0))"
            "        + png_chunk(b'IDAT', idat) + png_chunk(b'IEND', b''));"
            "imageio.probe(data[:100]);"  # Pillow imports its plugins on first use
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; start = time.perf_counter();"
            "info = imageio.probe(data, max_pixels=16_000_000);"
            "assert (info.width, info.height, info.bit_depth) == (4000, 4000, 16), info;"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, time.perf_counter() - start)")
    grown, seconds = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True,
                                    text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.split()
    assert int(grown) < 5, f"the probe grew the process by {grown} MB"
    assert float(seconds) < 0.2, f"the probe took {seconds} s"


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_tiff_orientation_is_applied_once(dtype, orientation):
    stored = pattern(32, 48, dtype=dtype)  # 48 wide, 32 high
    data = tiff_bytes(stored, orientation=orientation)
    expected = {3: np.rot90(stored, 2), 6: np.rot90(stored, -1), 8: np.rot90(stored, 1)}[orientation]
    info, out = imageio.probe(data), imageio.decode(data)
    assert (info.width, info.height) == (expected.shape[1], expected.shape[0])
    assert info.orientation == orientation and out.exif_transposed
    np.testing.assert_array_equal(out.pixels, expected)


def test_mpo_is_a_jpeg_whose_first_frame_is_used():
    first, second = pattern(24, 32, noise=0), np.zeros((24, 32, 3), np.uint8)
    data = mpo_bytes(first, second)
    info, out = imageio.probe(data), imageio.decode(data)
    assert (info.format, info.frames, info.width, info.height) == ("JPEG", 2, 32, 24)
    assert np.abs(out.pixels.astype(int) - first).mean() < LOSSY["jpg"]


def test_16bit_gray_png_colour_key_becomes_alpha():
    gray = pattern(10, 12, channels=1, dtype=np.uint16)
    key = int(gray[3, 4])
    data = png_rows(gray, trns=key.to_bytes(2, "big"))
    info, out = imageio.probe(data), imageio.decode(data)
    assert info.has_alpha and info.channels == 2 and info.bit_depth == 16
    assert out.pixels.shape == (10, 12, 4) and out.pixels.dtype == np.uint16
    np.testing.assert_array_equal(out.pixels[..., 0], gray)
    np.testing.assert_array_equal(out.pixels[..., 3], np.where(gray == key, 0, 65535))


def test_16bit_cmyk_tiff_is_refused_by_the_probe():
    data = tiff_bytes(pattern(8, 8, channels=4, dtype=np.uint16), photometric="separated")
    with pytest.raises(UnsupportedFormat, match="16-bit TIFF"):
        imageio.probe(data)
    assert imageio.decode(tiff_bytes(pattern(8, 8, channels=4), photometric="separated")).pixels.shape == (8, 8, 3)


def test_png_text_chunks_cannot_inflate_much_memory():
    bomb = png_chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b" " * 2**20))  # 1 MB of text from 1 KB
    data = insert_after_ihdr(imageio.encode(pattern(), "png"), bomb * 8)
    with pytest.raises(ImageError):
        imageio.probe(data)
