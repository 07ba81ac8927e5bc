"""Small videos and animations made for the tests and benchmarks (PyAV writes the videos, Pillow the
animations), and readers that report what a player would see: frame sizes and times, rotation, the audio
packets."""
from __future__ import annotations

import io

import av
import numpy as np
from PIL import Image


def moving_frames(count: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    """A textured picture sliding right by a pixel per frame: smooth enough for a codec, never flat."""
    rng = np.random.default_rng(seed)
    base = (rng.integers(0, 256, (height, width + count, 3)).astype(np.float32) * 0.5
            + np.linspace(0, 120, width + count)[None, :, None]).astype(np.uint8)
    return [base[:, i:i + width] for i in range(count)]


def video_bytes(count: int = 12, width: int = 32, height: int = 24, *, rate: int = 12, fmt: str = "mp4",
                audio: bool = True, rotation: int = 0, full_range: bool = False, seed: int = 0) -> bytes:
    """H.264 (MP4/MOV/MKV) or VP9 (WebM) video with a mono AAC/Opus tone of the same length."""
    buf = io.BytesIO()
    muxer = {"mkv": "matroska"}.get(fmt, fmt)
    with av.open(buf, "w", format=muxer) as out:
        stream = out.add_stream("libvpx-vp9" if fmt == "webm" else "libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if full_range:
            stream.codec_context.color_range = 2
        if rotation:
            stream.set_display_rotation(rotation)
        sound = None
        if audio:
            sound = out.add_stream("libopus" if fmt == "webm" else "aac", rate=48000 if fmt == "webm" else 16000)
            sound.layout = "mono"
        for pixels in moving_frames(count, width, height, seed):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if full_range:
                frame = frame.reformat(format="yuv420p", dst_color_range=2)
                frame.color_range = 2
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        if sound is not None:
            rate_hz, size = sound.codec_context.sample_rate, sound.codec_context.frame_size or 1024
            t = np.arange(int(rate_hz * count / rate)) / rate_hz
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, len(tone) - size + 1, size):
                chunk = av.AudioFrame.from_ndarray(tone[None, start:start + size], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = rate_hz, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode())
    return buf.getvalue()


def animation_bytes(count: int = 6, width: int = 20, height: int = 16, *, fmt: str = "GIF",
                    durations: list[int] | None = None, loop: int | None = 0, alpha: bool = False) -> bytes:
    """An animated GIF, APNG ("PNG") or WebP; with ``alpha``, a transparent hole in the middle of each frame."""
    durations = durations or [40 + 20 * i for i in range(count)]
    frames = []
    for pixels in moving_frames(count, width, height):
        if alpha:
            a = np.full((height, width, 1), 255, np.uint8)
            a[height // 4:3 * height // 4, width // 4:3 * width // 4] = 0
            frames.append(Image.fromarray(np.dstack([pixels, a]), "RGBA"))
        else:
            frames.append(Image.fromarray(pixels))
    options = {"save_all": True, "append_images": frames[1:], "duration": durations}
    if loop is not None:
        options["loop"] = loop
    if fmt == "WEBP":
        options["lossless"] = True
    buf = io.BytesIO()
    frames[0].save(buf, fmt, **options)
    return buf.getvalue()


# --- what a player sees ----------------------------------------------------------------------------

def video_frames(data: bytes) -> dict:
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.video[0]
        decoded = list(c.decode(stream))
        return {"sizes": {(f.width, f.height) for f in decoded}, "times": [round(float(f.time), 4) for f in decoded],
                "rotation": decoded[0].rotation, "rate": stream.average_rate, "codec": stream.codec_context.name,
                "color_range": int(decoded[0].color_range), "count": len(decoded),
                "pixels": [f.to_ndarray(format="rgb24") for f in decoded]}


def audio_packets(data: bytes) -> list[bytes]:
    with av.open(io.BytesIO(data)) as c:
        if not c.streams.audio:
            return []
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def animation_frames(data: bytes) -> dict:
    img = Image.open(io.BytesIO(data))
    durations, frames = [], []
    for i in range(img.n_frames):
        img.seek(i)
        frames.append(np.asarray(img.convert("RGBA")))
        durations.append(img.info.get("duration"))  # WebP: known once the frame is loaded
    return {"format": img.format, "count": img.n_frames, "size": img.size, "durations": durations,
            "loop": img.info.get("loop"), "frames": frames}
