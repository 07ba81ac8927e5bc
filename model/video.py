"""Videos and animations ("clips"): probe from the header, frames out, upscaled frames back in.

- Animations (GIF, APNG, animated WebP) through Pillow: frame durations, loop count and transparency kept.
- Videos (MP4, MOV, MKV, WebM) through PyAV, whose wheels carry FFmpeg: frame timestamps (so the frame rate,
  constant or not), pixel aspect, rotation and colour range and matrix kept; the audio stream is copied
  packet for packet, never decoded.

The frame runner (``model.frames``) cuts a clip into chunks of frames; each chunk's result is encoded on
its own as a *part* (``encode_part``) and the parts are joined once at the end (``join_parts``). Video parts
are small NUT files (a container that keeps any time base exactly) whose packets the join remuxes without
re-encoding; animation parts hold the frames themselves, losslessly compressed, since GIF/WebP/APNG are
written whole by Pillow.

No TensorFlow here: the API probes uploads with this module.
"""
from __future__ import annotations

import heapq
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from PIL import Image

from .errors import ImageError, InvalidOption, LimitExceeded, UnsupportedFormat
from .settings import Settings

# Output containers: name -> (media type, kind). APNG and animated WebP are the image formats png/webp.
VIDEO_FORMATS = {"mp4": "video/mp4", "mov": "video/quicktime", "mkv": "video/x-matroska", "webm": "video/webm"}
ANIMATION_FORMATS = {"gif": "image/gif", "webp": "image/webp", "png": "image/png"}
CLIP_SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "mkv", ".webm": "webm", ".gif": "gif",
                 ".apng": "png"}
# Video codec per container; browsers play H.264 in MP4 and VP9 in WebM
_CODECS = {"mp4": "libx264", "mov": "libx264", "mkv": "libx264", "webm": "libvpx-vp9"}
_MUXERS = {"mp4": "mp4", "mov": "mov", "mkv": "matroska", "webm": "webm"}
# Audio codecs each container takes (the audio is copied, never re-encoded); Matroska takes any
_AUDIO = {"mp4": {"aac", "mp3", "opus", "flac", "ac3", "eac3", "alac"}, "webm": {"opus", "vorbis"},
          "mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"}}
PART_MUXER = "nut"  # keeps every stream's time base exactly, writes no edit lists
ANIMATION_TIME_BASE = Fraction(1, 1000)  # Pillow's frame durations are milliseconds


class ClipTooLong(LimitExceeded):
    """Over the frames, duration or total-pixels limits: the API answers 413."""


@dataclass(frozen=True)
class ClipInfo:
    kind: str  # "video" or "animation"
    format: str  # the container: mp4, mov, mkv, webm; gif, png (APNG), webp
    width: int  # stored frame size (a video's rotation is metadata, kept as it is)
    height: int
    frames: int  # from the header: a video's frame count, else duration x rate; an animation's frames
    duration: float  # seconds
    fps: float
    has_audio: bool = False
    audio_codec: str | None = None
    has_alpha: bool = False
    exact_frames: bool = True  # the header states the frame count (MP4/MOV, animations), not an estimate

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass
class Frame:
    index: int
    pixels: np.ndarray  # HxWx3 or HxWx4 uint8
    pts: int  # presentation time in the clip's time base
    duration: int  # in the same time base (animations: the frame's own; videos: FFmpeg's estimate)


@dataclass
class ClipMeta:
    """What the output keeps of the input, read while decoding."""

    time_base: Fraction
    rate: Fraction | None = None
    loop: int | None = None  # animations: 0 = forever; None = play once
    rotation: int = 0  # videos: counter-clockwise degrees of the display matrix
    sample_aspect: Fraction | None = None
    color: dict = field(default_factory=dict)  # color_range, colorspace, color_primaries, color_trc


# --- probing -----------------------------------------------------------------------------------------

def sniff_clip(data: bytes) -> str | None:
    """The container a clip's leading bytes name (GIF, ISO media, Matroska), or None."""
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand == b"qt  ":
            return "mov"
        if brand in (b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1", b"avif", b"avis"):
            return None  # HEIF/AVIF stills: refused as images
        return "mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm" if b"webm" in data[:64] else "mkv"
    return None


def probe_clip(data: bytes, max_frames: int | None = None) -> ClipInfo | None:
    """A clip's info from its header (None for a still image; ImageError for a broken clip). An animation
    over ``max_frames`` is not walked for its durations: the frame limit refuses it anyway."""
    kind = sniff_clip(data)
    if kind in VIDEO_FORMATS:
        return _probe_video(data, kind)
    if kind == "gif" or data[:8] == b"\x89PNG\r\n\x1a\n" or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        try:
            img = Image.open(io.BytesIO(data))
            frames = getattr(img, "n_frames", 1)
        except Exception:
            if kind == "gif":
                raise ImageError("corrupt or truncated GIF (unreadable header)") from None
            return None  # the image path names what is wrong with a still PNG/WebP
        if kind == "gif" or frames > 1:
            return _probe_animation(img, frames, walk=max_frames is None or frames <= max_frames)
    return None


def _probe_animation(img: Image.Image, frames: int, walk: bool = True) -> ClipInfo:
    fmt = {"GIF": "gif", "PNG": "png", "WEBP": "webp"}[img.format]
    try:  # durations are in each frame's header (Pillow reports a WebP frame's once it is loaded)
        total = 0
        for i in range(frames if walk else 0):
            img.seek(i)
            if fmt == "webp":
                img.load()
            total += int(img.info.get("duration") or 0)
    except Exception as exc:
        raise ImageError(f"corrupt animated {fmt.upper()}: {exc}") from None
    img.seek(0)
    alpha = "A" in img.mode or img.has_transparency_data
    seconds = total / 1000
    return ClipInfo("animation", fmt, img.width, img.height, frames, seconds, frames / seconds if seconds else 0.0,
                    has_alpha=alpha)


def _open_video(data: bytes, fmt: str):
    import av

    try:
        container = av.open(io.BytesIO(data), "r", format=_MUXERS[fmt] if fmt in ("mkv", "webm") else None)
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise ImageError(f"corrupt or unreadable {fmt.upper()} clip: {exc}") from None
    if not container.streams.video:
        container.close()
        raise UnsupportedFormat(f"the {fmt.upper()} file has no video stream")
    return container


def _probe_video(data: bytes, fmt: str) -> ClipInfo:
    with _open_video(data, fmt) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx is None or not ctx.width or not ctx.height or ctx.name is None:
            raise ImageError(f"corrupt {fmt.upper()} clip: the video stream has no size or codec")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        else:
            seconds = (container.duration or 0) / 1_000_000
        frames = stream.frames or max(1, round(seconds * float(rate)))
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return ClipInfo("video", fmt, ctx.width, ctx.height, frames, seconds, float(rate), has_audio=audio is not None,
                        audio_codec=audio, exact_frames=bool(stream.frames))


def check_clip_limits(clip: ClipInfo, out_width: int, out_height: int, settings: Settings) -> None:
    """The clip limits, all from the header: refused before any frame is decoded."""
    if clip.frames > settings.max_clip_frames:
        raise ClipTooLong(f"the clip has {clip.frames:,} frames, over the limit of {settings.max_clip_frames:,}")
    if clip.duration > settings.max_clip_seconds:
        raise ClipTooLong(f"the clip lasts {clip.duration:,.1f} s, over the limit of {settings.max_clip_seconds:g} s")
    if clip.pixels > settings.max_frame_input_pixels:
        raise LimitExceeded(f"frames are {clip.width}x{clip.height} ({clip.pixels:,} pixels), over the input "
                            f"limit of {settings.max_frame_input_pixels:,} pixels per frame")
    out = out_width * out_height
    if out > settings.max_frame_output_pixels:
        raise LimitExceeded(f"output frames would be {out_width}x{out_height} ({out:,} pixels), over the limit of "
                            f"{settings.max_frame_output_pixels:,} pixels per frame")
    if out * clip.frames > settings.max_clip_output_pixels:
        raise ClipTooLong(f"the output would total {out * clip.frames:,} pixels ({clip.frames:,} frames), over the "
                          f"limit of {settings.max_clip_output_pixels:,}")


def clip_output_format(name: str | None, clip: ClipInfo) -> str:
    """The output container: ``name`` (an animation may become a video or another animation; a video
    stays a video, its audio and timing have no place in an animation), else the input's own."""
    if not name:
        return clip.format
    key = name.lower().lstrip(".")
    key = {"apng": "png", "m4v": "mp4"}.get(key, key)
    allowed = VIDEO_FORMATS if clip.kind == "video" else {**ANIMATION_FORMATS, **VIDEO_FORMATS}
    if key not in allowed:
        raise InvalidOption(f"a {clip.kind} can be written as {', '.join(allowed)}, not {name!r}")
    if clip.audio_codec and clip.audio_codec not in _AUDIO.get(key, {clip.audio_codec}):
        raise InvalidOption(f"the clip's {clip.audio_codec} audio cannot go into {key.upper()} (audio is copied, "
                            f"not re-encoded); choose mkv{' or mp4' if clip.audio_codec in _AUDIO['mp4'] else ''}")
    return key


def is_video_format(fmt: str) -> bool:
    return fmt in VIDEO_FORMATS


def even_size(width: int, height: int) -> tuple[int, int]:
    """H.264/VP9 in 4:2:0 need even sides: an odd one grows by a pixel."""
    return width + width % 2, height + height % 2


# --- reading -----------------------------------------------------------------------------------------

class ClipReader:
    """Frames of a clip in display order, with what the output keeps (``meta``, set once the first frame
    is read)."""

    def __init__(self, data: bytes, clip: ClipInfo):
        self.data, self.clip = data, clip
        self.meta: ClipMeta | None = None

    def frames(self) -> Iterator[Frame]:
        source = self._video() if self.clip.kind == "video" else self._animation()
        try:
            yield from source
        except ImageError:
            raise
        except Exception as exc:  # FFmpeg's and Pillow's errors on damaged data
            raise ImageError(f"corrupt {self.clip.format.upper()} clip: {type(exc).__name__}: {exc}") from None

    def audio_packets(self) -> Iterator:
        """The input's first audio stream, packet by packet (for ``join_parts``)."""
        with _open_video(self.data, self.clip.format) as container:
            if container.streams.audio:
                yield from container.demux(container.streams.audio[0])

    def _animation(self) -> Iterator[Frame]:
        img = Image.open(io.BytesIO(self.data))
        self.meta = ClipMeta(ANIMATION_TIME_BASE, loop=img.info.get("loop"))
        mode = "RGBA" if self.clip.has_alpha else "RGB"
        pts = 0
        for index in range(self.clip.frames):
            img.seek(index)
            pixels = np.asarray(img.convert(mode))
            duration = int(img.info.get("duration") or 0)  # after the load: WebP sets it there
            yield Frame(index, pixels, pts, duration)
            pts += duration

    def _video(self) -> Iterator[Frame]:
        with _open_video(self.data, self.clip.format) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            index = 0
            for frame in container.decode(stream):
                if self.meta is None:
                    self.meta = ClipMeta(stream.time_base, rate=stream.average_rate, rotation=int(frame.rotation or 0),
                                         sample_aspect=stream.sample_aspect_ratio, color=_color_of(frame))
                # At the header's size: a stream that changes size mid-way is scaled back to it
                pixels = frame.to_ndarray(format="rgb24", width=self.clip.width, height=self.clip.height,
                                          src_colorspace=_sws_colorspace(frame.colorspace),
                                          src_color_range=frame.color_range)
                pts = frame.pts if frame.pts is not None else index
                yield Frame(index, pixels, pts, int(frame.duration or 0))
                index += 1
        if self.clip.exact_frames and index < self.clip.frames:
            raise ImageError(f"corrupt or truncated {self.clip.format.upper()} clip: {index} of its "
                             f"{self.clip.frames} frames could be decoded")


def _color_of(frame) -> dict:
    return {"color_range": int(frame.color_range), "colorspace": int(frame.colorspace),
            "color_primaries": int(frame.color_primaries), "color_trc": int(frame.color_trc)}


def _sws_colorspace(av_colorspace: int) -> int:
    """FFmpeg's colour matrix (AVColorSpace) as the scaler names it (SWS_CS_*): 601 when untagged, as FFmpeg."""
    return {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}.get(int(av_colorspace), 5)


# --- writing parts -----------------------------------------------------------------------------------

def encode_part(frames: list[Frame], meta: ClipMeta, fmt: str, quality: int) -> bytes:
    """One chunk's upscaled frames, ready for ``join_parts``."""
    if is_video_format(fmt):
        return _video_part(frames, meta, fmt, quality)
    buf = io.BytesIO()  # animation: the frames themselves, with their timing, losslessly compressed
    np.savez_compressed(buf, index=np.array([f.index for f in frames]), pts=np.array([f.pts for f in frames]),
                        duration=np.array([f.duration for f in frames]),
                        **{f"frame{i}": f.pixels for i, f in enumerate(frames)})
    return buf.getvalue()


def _crf(quality: int) -> int:
    """Quality 1-100 as a constant rate factor: 95 (the default) = CRF 18 (visually lossless for x264)."""
    return max(4, min(51, round(18 + (95 - quality) * 0.5)))


def _video_part(frames: list[Frame], meta: ClipMeta, fmt: str, quality: int) -> bytes:
    import av

    height, width = frames[0].pixels.shape[:2]
    buf = io.BytesIO()
    with av.open(buf, "w", format=PART_MUXER) as out:
        codec = _CODECS[fmt]
        # x264 without B-frames: decode order is display order, so the parts' packets join in sequence
        options = ({"crf": str(_crf(quality)), "preset": "medium", "bf": "0"} if codec == "libx264"
                   else {"crf": str(min(63, _crf(quality) + 12)), "b": "0", "row-mt": "1", "deadline": "good",
                         "cpu-used": "4"})
        stream = out.add_stream(codec, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = meta.time_base
        stream.codec_context.time_base = meta.time_base
        if meta.rate:
            stream.codec_context.framerate = meta.rate
        if meta.sample_aspect:
            stream.codec_context.sample_aspect_ratio = meta.sample_aspect
        for name, value in meta.color.items():
            setattr(stream.codec_context, name, value)
        for f in frames:
            rgb = f.pixels[..., :3] if f.pixels.shape[2] == 4 else f.pixels
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace=_sws_colorspace(meta.color.get("colorspace", 2)),
                                   dst_color_range=meta.color.get("color_range", 0) or None)
            frame.pts, frame.time_base = f.pts, meta.time_base
            for name, value in meta.color.items():
                setattr(frame, name, value)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return buf.getvalue()


# --- joining -----------------------------------------------------------------------------------------

def join_parts(parts: Iterable[bytes], reader: ClipReader, fmt: str, quality: int) -> bytes:
    """The output file from the parts in order (and the input's audio, for a video)."""
    if is_video_format(fmt):
        return _join_video(parts, reader, fmt)
    frames: list[Frame] = []
    for part in parts:
        with np.load(io.BytesIO(part), allow_pickle=False) as z:
            frames += [Frame(int(i), z[f"frame{k}"], int(p), int(d))
                       for k, (i, p, d) in enumerate(zip(z["index"], z["pts"], z["duration"]))]
    return _animation(frames, reader.meta, fmt, quality)


def _animation(frames: list[Frame], meta: ClipMeta, fmt: str, quality: int) -> bytes:
    images = [Image.fromarray(f.pixels) for f in frames]
    options: dict = {"save_all": True, "append_images": images[1:], "duration": [f.duration for f in frames]}
    if meta.loop is not None:
        options["loop"] = meta.loop
    if fmt == "gif":
        # Each frame is whole (Pillow composited the input's); disposal 2 clears it, so transparent
        # pixels of one frame never show the previous one through.
        options.update(disposal=2, optimize=False)
    elif fmt == "png":
        options.update(disposal=0, blend=0, compress_level=3)
    else:
        options.update(quality=quality, method=4, lossless=quality >= 100)
    buf = io.BytesIO()
    images[0].save(buf, {"gif": "GIF", "png": "PNG", "webp": "WEBP"}[fmt], **options)
    return buf.getvalue()


def _join_video(parts: Iterable[bytes], reader: ClipReader, fmt: str) -> bytes:
    import av

    buf = io.BytesIO()
    containers = [av.open(io.BytesIO(p), "r", format=PART_MUXER) for p in parts]
    try:
        with av.open(buf, "w", format=_MUXERS[fmt]) as out:
            video = out.add_stream_from_template(containers[0].streams.video[0])
            video.time_base = reader.meta.time_base
            if reader.meta.rotation:
                video.set_display_rotation(reader.meta.rotation)
            video_packets = (p for c in containers for p in _packets(c.demux(c.streams.video[0]), video))
            audio_packets: Iterator = iter(())
            if reader.clip.has_audio:
                with _open_video(reader.data, reader.clip.format) as source:
                    audio = out.add_stream_from_template(source.streams.audio[0])
                    audio.time_base = source.streams.audio[0].time_base
                audio_packets = _packets(reader.audio_packets(), audio)
            for packet in heapq.merge(video_packets, audio_packets, key=_packet_time):  # interleaved by time
                out.mux(packet)
    except (av.FFmpegError, ValueError) as exc:
        raise UnsupportedFormat(f"cannot write this clip's streams as {fmt.upper()}: {exc}") from None
    finally:
        for c in containers:
            c.close()
    return buf.getvalue()


def _packets(packets: Iterable, target) -> Iterator:
    """Demuxed packets with data, addressed to ``target`` (a stream of the output)."""
    for packet in packets:
        if packet.size:
            packet.stream = target
            yield packet


def _packet_time(packet) -> float:
    t = packet.dts if packet.dts is not None else packet.pts
    return float(t * packet.time_base) if t is not None else 0.0
