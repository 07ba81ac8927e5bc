"""Image bytes <-> pixel arrays: sniff the format from the content, check pixel limits from the header
before any full decode, apply EXIF orientation, keep the ICC profile, keep 16 bits where the format has them.

Decoded layout (what the engine takes): ``HxW`` gray, ``HxWx3`` RGB, ``HxWx4`` RGBA; uint8, or uint16 for
16-bit PNG/TIFF. Gray+alpha becomes RGBA (gray replicated) so alpha has one layout; palette becomes RGB(A),
CMYK and other colour models RGB, 1-bit gray 8-bit gray. Animated or multi-page inputs give their first frame
(an MPO, the two-frame JPEG of many cameras, is a JPEG).

The probe reads headers only: it never decodes pixel data and walks at most ``MAX_FRAMES_COUNTED`` pages.
Decoding refuses truncated or corrupt data rather than returning a partial image.

No TensorFlow here (the API probes uploads); OpenCV is imported only for 16-bit colour, which Pillow
reduces to 8 bits.
"""
from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from .errors import ImageError, LimitExceeded, UnsupportedFormat

ACCEPTED = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")
# zlib level of written PNGs: 3 encodes a 256x256 photo in 9 ms where 6 (Pillow's default) takes 27 ms,
# for files ~12% larger; in a service every job pays it
PNG_COMPRESS_LEVEL = 3

# Output formats: name -> (Pillow format, media type, file extension)
FORMATS: dict[str, tuple[str, str, str]] = {
    "png": ("PNG", "image/png", ".png"),
    "jpg": ("JPEG", "image/jpeg", ".jpg"),
    "webp": ("WEBP", "image/webp", ".webp"),
    "tiff": ("TIFF", "image/tiff", ".tiff"),
}
ALIASES = {"jpeg": "jpg", "tif": "tiff"}
DEFAULT_QUALITY = 95  # JPEG/WebP quality when none is given (the CLI, the API and the page)

# Our own pixel limit (checked from the header) is the guard; Pillow's bomb check stays on as a backstop
# whose error is translated below, and its warning (between 1x and 2x its threshold) is noise next to ours.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

# A JPEG with an MP index (MPO: stereo pairs, phone depth maps) is a JPEG whose first frame is the photo.
_SAME_AS = {"MPO": "JPEG"}

# Who applies the EXIF orientation, per format (one rule each). Pillow (>= 13) and OpenCV (>= 5) rotate
# TIFFs while decoding, and Pillow reports a TIFF's displayed size; for the other formats we read the
# orientation from the header and rotate the decoded pixels ourselves.
_DECODER_ORIENTS = frozenset({"TIFF"})

# Pillow's TIFF n_frames walks every page with a list lookup per page (quadratic): 96,000 one-pixel pages
# took 42 s. Only the first page is decoded, so counting a few is enough.
MAX_FRAMES_COUNTED = 16

# PNG text chunks are metadata we do not use; Pillow's default allows 64 MB of inflated text per file.
PngImagePlugin.MAX_TEXT_MEMORY = 4 * 2**20

# Modes the decoders turn into our layouts; anything else (LAB, HSV...) is refused by the probe.
_DECODABLE_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I", "F",
                    "I;16", "I;16L", "I;16B", "I;16N"}
# 16-bit TIFF photometric interpretations OpenCV decodes: min-is-white/black gray, RGB
_TIFF16_PHOTOMETRIC = {0: "gray", 1: "gray", 2: "RGB"}

# Magic numbers, only to name what Pillow could not open (a truncated PNG vs. a PDF)
_MAGIC = [(b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
          (b"BM", "BMP"), (b"GIF8", "GIF"), (b"%PDF", "PDF"), (b"8BPS", "PSD"), (b"\x00\x00\x01\x00", "ICO")]

_GRAY_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
# What Pillow's parsers raise on malformed data (its own Image.open catches much the same)
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, struct.error,
                  zlib.error)


@dataclass(frozen=True)
class ImageInfo:
    format: str  # one of ACCEPTED
    width: int  # as displayed, i.e. after EXIF orientation
    height: int
    mode: str  # Pillow's mode of the stored image
    bit_depth: int  # 8 or 16 bits per sample
    has_alpha: bool
    channels: int  # stored channels with alpha: 1 gray, 2 gray+alpha, 3 colour, 4 colour+alpha
    frames: int  # > 1 for animations and multi-page files (TIFF pages counted up to MAX_FRAMES_COUNTED)
    orientation: int = 1  # EXIF orientation (1..8), applied on decode

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass
class Decoded:
    pixels: np.ndarray
    info: ImageInfo
    icc_profile: bytes | None
    exif_transposed: bool


def sniff(data: bytes) -> str | None:
    """Format named by the leading bytes, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        return "HEIF/AVIF"
    return next((name for magic, name in _MAGIC if data.startswith(magic)), None)


def output_format(name: str) -> str:
    """Normalise an output format name ('JPEG', '.jpg', 'tif'...) to a key of FORMATS."""
    key = name.lower().lstrip(".")
    key = ALIASES.get(key, key)
    if key not in FORMATS:
        raise UnsupportedFormat(f"cannot write {name!r} images; output formats: {', '.join(FORMATS)}")
    return key


def format_of_path(path: Path | str) -> str:
    return output_format(Path(path).suffix or "(no extension)")


def default_output_format(input_format: str) -> str:
    """The output format matching an input's (BMP, which we do not write, becomes PNG)."""
    return {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "TIFF": "tiff"}.get(input_format, "png")


def check_output_size(width: int, height: int, max_output_pixels: int | None) -> None:
    if max_output_pixels and width * height > max_output_pixels:
        raise LimitExceeded(f"output would be {width}x{height} ({width * height:,} pixels), over the output "
                            f"limit of {max_output_pixels:,} pixels")


# --- reading ---------------------------------------------------------------------------------------

def _open(data: bytes, max_pixels: int | None) -> tuple[Image.Image, ImageInfo]:
    """Open lazily (header only) and check format and size; nothing is decoded yet."""
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        pillow_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise LimitExceeded(f"image declares over {pillow_limit:,} pixels, over the input limit of "
                            f"{max_pixels or pillow_limit:,} pixels (decompression bomb?)") from None
    except UnidentifiedImageError:
        kind = sniff(data)
        if kind in ACCEPTED:
            raise ImageError(f"corrupt or truncated {kind} image (unreadable header)") from None
        raise UnsupportedFormat(f"unsupported format: {kind or 'not an image'} "
                                f"(accepted: {', '.join(ACCEPTED)})") from None
    except _DECODE_ERRORS as exc:
        raise ImageError(f"corrupt {sniff(data) or 'image'} header: {exc}") from None
    fmt = _SAME_AS.get(img.format, img.format)
    if fmt not in ACCEPTED:
        raise UnsupportedFormat(f"unsupported format: {img.format} (accepted: {', '.join(ACCEPTED)})")
    if img.mode not in _DECODABLE_MODES:
        raise UnsupportedFormat(f"unsupported {fmt} colour model {img.mode!r}")
    width, height = img.size
    if max_pixels and width * height > max_pixels:  # before reading anything more of the file
        raise LimitExceeded(f"image is {width}x{height} ({width * height:,} pixels), over the input "
                            f"limit of {max_pixels:,} pixels")
    try:
        return img, _info(img, fmt, data)
    except _DECODE_ERRORS as exc:  # e.g. a broken page chain found while counting pages
        raise ImageError(f"corrupt {fmt} file: {exc}") from None


def _bit_depth(img: Image.Image, data: bytes) -> int:
    if img.format == "PNG":
        return 16 if data[24] == 16 else 8  # IHDR's bit depth; IHDR is always the first chunk
    if img.format == "TIFF":
        bits = img.tag_v2.get(258, 8)
        bits = max(bits) if isinstance(bits, tuple) else int(bits)
        if bits > 16:
            raise UnsupportedFormat(f"{bits}-bit TIFF samples are not supported (8 or 16 bits only)")
        photometric = img.tag_v2.get(262, 1)
        if bits == 16 and photometric not in _TIFF16_PHOTOMETRIC:  # e.g. 16-bit CMYK: OpenCV cannot decode it
            raise UnsupportedFormat(f"16-bit TIFF in the {img.mode} colour model is not supported "
                                    "(16-bit gray or RGB only; save it as 8-bit, or convert it to RGB)")
        return 16 if bits == 16 else 8
    return 8


def _orientation(img: Image.Image) -> int:
    if img.format == "TIFF":
        value = img.tag_v2.get(0x0112, 1)  # the tag Pillow and OpenCV rotate by
    elif img.format == "PNG" and "exif" not in img.info:
        # No eXIf before the pixel data (where the PNG spec puts it). Pillow's getexif() would decode the
        # whole image to look for one after it; such a late chunk is ignored, by the probe and the decode alike.
        return 1
    else:
        try:
            value = img.getexif().get(0x0112, 1)
        except Exception:  # unreadable EXIF is not worth refusing the image for
            return 1
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def _frames(img: Image.Image) -> int:
    """Frames or pages, from the header (PNG acTL, WebP, the MPO index); TIFF pages up to MAX_FRAMES_COUNTED."""
    if img.format != "TIFF":
        return getattr(img, "n_frames", 1)
    if not getattr(img, "is_animated", False):
        return 1
    count = 1
    try:
        while count < MAX_FRAMES_COUNTED:
            img.seek(count)
            count += 1
    except EOFError:
        pass
    img.seek(0)
    return count


def _info(img: Image.Image, fmt: str, data: bytes) -> ImageInfo:
    # Pillow opens 16-bit gray+alpha PNG as RGBA: the PNG colour type (0 gray, 4 gray+alpha) says what it is
    gray = data[25] in (0, 4) if fmt == "PNG" else img.mode in _GRAY_MODES
    has_alpha = "A" in img.mode or "a" in img.mode or img.has_transparency_data
    orientation = _orientation(img)
    # 5..8 swap the axes; a TIFF's size from Pillow is already the displayed one
    swap = orientation >= 5 and fmt not in _DECODER_ORIENTS
    width, height = img.size[::-1] if swap else img.size
    return ImageInfo(format=fmt, width=width, height=height, mode=img.mode,
                     bit_depth=_bit_depth(img, data), has_alpha=has_alpha,
                     channels=(1 if gray else 3) + has_alpha, frames=_frames(img), orientation=orientation)


def probe(data: bytes, *, max_pixels: int | None = None) -> ImageInfo:
    """Format and size from the header, never decoding the pixels."""
    return _open(data, max_pixels)[1]


def _pillow_pixels(img: Image.Image, info: ImageInfo) -> np.ndarray:
    if info.has_alpha:
        img = img.convert("RGBA")
    elif info.channels == 1:
        img = img.convert("L")
    else:
        img = img.convert("RGB")  # palette, CMYK, YCbCr...
    return np.asarray(img)


def _cv2_pixels(data: bytes) -> np.ndarray:
    """16-bit PNG/TIFF (Pillow keeps 16 bits only for gray), as RGB(A)."""
    import cv2

    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)  # orientation left to us
    if pixels is None:
        raise ImageError("corrupt or truncated 16-bit image")
    if pixels.ndim == 3:
        channels = pixels.shape[2]
        if channels == 1:
            return pixels[..., 0]
        if channels == 2:  # gray+alpha: same layout as 8-bit gray+alpha
            return np.dstack([pixels[..., 0]] * 3 + [pixels[..., 1]])
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB if channels == 3 else cv2.COLOR_BGRA2RGBA)
    return pixels


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) so the array looks as the image is meant to be seen."""
    if orientation in (5, 6, 7, 8):
        pixels = pixels.swapaxes(0, 1)  # 5 transpose; 6, 7, 8 = transpose then flip
    flip_rows = orientation in (3, 4, 7, 8)
    flip_cols = orientation in (2, 3, 6, 7)
    return pixels[::-1 if flip_rows else 1, ::-1 if flip_cols else 1]


def _colour_key_alpha(pixels: np.ndarray, key) -> np.ndarray:
    """16-bit gray PNG with a tRNS colour key (OpenCV drops it) as gray+alpha's RGBA layout."""
    alpha = np.where(pixels == key, 0, 65535).astype(np.uint16)
    return np.dstack([pixels] * 3 + [alpha])


def _png_pixel_bytes(width: int, height: int, bit_depth: int, colour_type: int, interlaced: bool) -> int:
    """Inflated size of a PNG's image data: each row is a filter byte and the packed samples."""
    samples = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour_type, 4)

    def rows(w: int, h: int) -> int:
        return h * (1 + (w * samples * bit_depth + 7) // 8) if w > 0 and h > 0 else 0

    if not interlaced:
        return rows(width, height)
    adam7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    return sum(rows(-(-(width - x0) // dx), -(-(height - y0) // dy)) for x0, y0, dx, dy in adam7)


_BROKEN_PNG = "corrupt or truncated PNG image"  # the words of every other decode failure


def check_png_data(data: bytes) -> None:
    """Refuse a PNG whose image data is short, corrupt or fails its CRC. Pillow accepts a zlib stream that
    ends before the last row (the missing rows come out black); here the IDAT stream is inflated in 1 MB
    pieces and must hold every row IHDR declares."""
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    expected = _png_pixel_bytes(width, height, depth, colour_type, interlace == 1)
    inflater, inflated, pos = zlib.decompressobj(), 0, 8
    while pos + 12 <= len(data) and inflated < expected:
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            break
        if kind == b"IDAT":
            if struct.unpack(">I", data[end:end + 4])[0] != zlib.crc32(data[pos + 4:end]):
                raise ImageError(f"{_BROKEN_PNG}: an image data chunk fails its CRC check")
            piece = data[pos + 8:end]
            try:
                while piece and inflated < expected:
                    inflated += len(inflater.decompress(piece, 2**20))
                    piece = inflater.unconsumed_tail
            except zlib.error as exc:
                raise ImageError(f"{_BROKEN_PNG}: {exc}") from None
        elif kind == b"IEND":
            break
        pos = end + 4
    if inflated < expected:
        raise ImageError(f"{_BROKEN_PNG}: its image data ends at {inflated:,} of {expected:,} bytes "
                         f"({height} rows declared)")


def decode(data: bytes, *, max_pixels: int | None = None) -> Decoded:
    img, info = _open(data, max_pixels)
    if info.format == "PNG":
        check_png_data(data)
    try:
        if info.bit_depth == 16:
            pixels = _cv2_pixels(data)
            if pixels.ndim == 2 and info.has_alpha:
                pixels = _colour_key_alpha(pixels, img.info.get("transparency"))
        else:
            img.load()  # once: a second load() after a failed one returns the partial image silently
            pixels = _pillow_pixels(img, info)
    except _DECODE_ERRORS as exc:
        raise ImageError(f"corrupt or truncated {info.format} image: {exc}") from None
    icc = img.info.get("icc_profile") or None
    if img.mode == "CMYK":
        icc = None  # a CMYK profile does not describe the RGB pixels we return
    if info.format not in _DECODER_ORIENTS:
        pixels = orient(pixels, info.orientation)
    return Decoded(pixels=np.ascontiguousarray(pixels), info=info, icc_profile=icc,
                   exif_transposed=info.orientation != 1)


def read_image(path: Path | str, *, max_pixels: int | None = None) -> Decoded:
    return decode(Path(path).read_bytes(), max_pixels=max_pixels)


# --- writing ---------------------------------------------------------------------------------------

def _checked(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if pixels.dtype not in (np.uint8, np.uint16) or not (pixels.ndim == 2 or pixels.shape[2] in (3, 4)):
        raise ValueError(f"pixels must be HxW, HxWx3 or HxWx4 uint8/uint16, got {pixels.shape} {pixels.dtype}")
    return pixels


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _png16(pixels: np.ndarray, icc_profile: bytes | None) -> bytes:
    import cv2

    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR if pixels.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESS_LEVEL])
    if not ok:
        raise ImageError("PNG encoding failed")
    data = buf.tobytes()
    if not icc_profile:
        return data
    # OpenCV cannot write a profile: insert an iCCP chunk right after IHDR (8 + 25 bytes)
    body = b"ICC Profile\x00\x00" + zlib.compress(icc_profile)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    return data[:33] + chunk + data[33:]


def _tiff(pixels: np.ndarray, icc_profile: bytes | None) -> bytes:
    import tifffile  # writes 16-bit colour and the ICC tag, which Pillow cannot

    buf = io.BytesIO()
    tifffile.imwrite(buf, pixels, photometric="rgb" if pixels.ndim == 3 else "minisblack",
                     extrasamples=["unassalpha"] if pixels.ndim == 3 and pixels.shape[2] == 4 else None,
                     compression="zlib",
                     extratags=[(34675, "B", len(icc_profile), icc_profile, True)] if icc_profile else None)
    return buf.getvalue()


def encode(pixels: np.ndarray, fmt: str, *, quality: int = DEFAULT_QUALITY, icc_profile: bytes | None = None) -> bytes:
    """PNG and TIFF keep 16 bits; JPEG and WebP get 8 bits, JPEG alpha is flattened on white."""
    fmt = output_format(fmt)
    pixels = _checked(pixels)
    if fmt == "tiff":
        return _tiff(pixels, icc_profile)
    if fmt == "png" and pixels.dtype == np.uint16:
        return _png16(pixels, icc_profile)
    img = Image.fromarray(to_8bit(pixels))
    options: dict = {"icc_profile": icc_profile} if icc_profile else {}
    if fmt == "jpg":
        if img.mode == "RGBA":
            white = Image.new("RGB", img.size, (255, 255, 255))
            white.paste(img, mask=img.getchannel("A"))
            img = white
        options.update(quality=quality, subsampling=0 if quality >= 90 else 2)  # 4:4:4 at high quality
    elif fmt == "webp":
        options.update(quality=quality, method=4)
    else:
        options.update(compress_level=PNG_COMPRESS_LEVEL)
    buf = io.BytesIO()
    img.save(buf, FORMATS[fmt][0], **options)
    return buf.getvalue()


def write_image(path: Path | str, pixels: np.ndarray, fmt: str | None = None, quality: int = DEFAULT_QUALITY,
                icc_profile: bytes | None = None) -> Path:
    path = Path(path)
    data = encode(pixels, fmt or format_of_path(path), quality=quality, icc_profile=icc_profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
