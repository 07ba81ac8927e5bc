"""The library side of videos and animations: probe, the chunked frame runner with a real (tiny) model,
what the output keeps (timing, loop, alpha, rotation, colour range, audio), resume, cancel, damage, limits."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from model import video
from model.engine import Upscaler
from model.errors import Canceled, ImageError, InvalidOption, LimitExceeded
from model.frames import MemoryParts, upscale_clip
from model.options import JobOptions, resolve_clip_options
from model.settings import Settings
from model.artifacts import read_manifest
from bench.clipfactory import animation_bytes, animation_frames, audio_packets, video_bytes, video_frames


@pytest.fixture(scope="module")
def engine(models_dir):
    return Upscaler.from_artifact(models_dir / "tiny-x2", backend="openvino", precision="float32")


class Counting:
    """The engine, counting the frames it is given."""

    def __init__(self, engine, stop_after: int | None = None, cancel: threading.Event | None = None):
        self.engine, self.frames, self.stop_after, self.cancel = engine, 0, stop_after, cancel

    def run(self, pixels, options, **kwargs):
        self.frames += 1
        if self.stop_after is not None and self.frames > self.stop_after:
            self.cancel.set()  # as a cancel request arriving mid-frame
        return self.engine.run(pixels, options, **kwargs)


def resolved(data: bytes, models_dir, **options) -> tuple[video.ClipInfo, JobOptions]:
    clip = video.probe_clip(data)
    manifest = read_manifest(models_dir / "tiny-x2")
    return clip, resolve_clip_options(JobOptions(**options), manifest, clip, Settings(_env_file=None))


def test_probe_reads_the_header():
    mp4 = video.probe_clip(video_bytes(12, 32, 24, rate=12, audio=True))
    assert (mp4.kind, mp4.format, mp4.width, mp4.height, mp4.frames, mp4.fps) == ("video", "mp4", 32, 24, 12, 12.0)
    assert mp4.duration == pytest.approx(1.0, abs=0.01) and mp4.has_audio and mp4.exact_frames
    webm = video.probe_clip(video_bytes(8, 32, 24, rate=8, fmt="webm", audio=False))
    assert webm.format == "webm" and webm.frames == 8 and not webm.has_audio
    for fmt, key in (("GIF", "gif"), ("PNG", "png"), ("WEBP", "webp")):
        clip = video.probe_clip(animation_bytes(4, 20, 16, fmt=fmt, durations=[100, 200, 100, 100]))
        assert (clip.kind, clip.format, clip.frames, clip.width, clip.height) == ("animation", key, 4, 20, 16)
        assert clip.duration == pytest.approx(0.5)
    assert video.probe_clip(animation_bytes(4, fmt="PNG", alpha=True)).has_alpha
    from bench.harness import png_bytes

    assert video.probe_clip(png_bytes(8, 8)) is None  # a still image is not a clip
    with pytest.raises(ImageError, match="MP4"):
        video.probe_clip(video_bytes(12)[:300])


def test_video_keeps_timing_rotation_range_and_audio(engine, models_dir):
    clip_bytes = video_bytes(10, 32, 24, rate=10, audio=True, rotation=270, full_range=True)
    clip, options = resolved(clip_bytes, models_dir)
    result = upscale_clip(clip_bytes, clip, engine, options, MemoryParts(), chunk_frames=4)
    src, out = video_frames(clip_bytes), video_frames(result.data)
    assert result.frames == out["count"] == 10 and out["sizes"] == {(64, 48)}
    assert out["times"] == src["times"] and out["rate"] == src["rate"] and out["codec"] == "h264"
    assert out["rotation"] == src["rotation"] and out["rotation"] % 360 == 270
    assert out["color_range"] == src["color_range"] == 2  # full range stays full range
    assert audio_packets(result.data) == audio_packets(clip_bytes)
    # Each frame is the engine's upscale of the decoded input frame, within the codec's loss.
    for before, after in zip(src["pixels"], out["pixels"]):
        expected = engine.run(before, options).astype(int)
        assert np.abs(after.astype(int) - expected).mean() < 4


def test_animation_keeps_durations_loop_and_transparency(engine, models_dir):
    gif = animation_bytes(5, 24, 24, fmt="GIF", durations=[30, 60, 90, 120, 150], loop=None, alpha=True)
    clip, options = resolved(gif, models_dir)
    out = animation_frames(upscale_clip(gif, clip, engine, options, MemoryParts(), chunk_frames=2).data)
    assert out["count"] == 5 and out["size"] == (48, 48) and out["durations"] == [30, 60, 90, 120, 150]
    assert out["loop"] is None  # plays once, as the input
    for frame in out["frames"]:
        assert frame[18:30, 18:30, 3].max() == 0 and frame[:6, :6, 3].min() == 255


def test_odd_sizes_grow_to_even_for_video_codecs(models_dir):
    _, options = resolved(video_bytes(4, 32, 24, audio=False), models_dir, width=51)
    assert (options.width, options.height) == (52, 38)  # 51 x 38 (aspect kept) -> even sides
    _, gif = resolved(animation_bytes(3, 20, 16), models_dir, width=51)
    assert (gif.width, gif.height) == (51, 41)  # an animation keeps the size asked for


def test_resume_upscales_only_the_unfinished_chunks(engine, models_dir):
    clip_bytes = video_bytes(11, 32, 24, rate=11, audio=True)
    clip, options = resolved(clip_bytes, models_dir)
    first, parts = Counting(engine, stop_after=6, cancel=threading.Event()), MemoryParts()
    with pytest.raises(Canceled):
        upscale_clip(clip_bytes, clip, first, options, parts, chunk_frames=3, cancel=first.cancel)
    assert parts.done() == {0, 1}  # frames 0-5 kept; frame 6 was under way when the run stopped

    second, seen = Counting(engine), []
    result = upscale_clip(clip_bytes, clip, second, options, parts, chunk_frames=3,
                          progress=lambda done, total: seen.append((done, total)))
    assert second.frames == 5 and result.resumed_at == 6 and result.upscaled == 5
    assert seen[0] == (7, 11) and seen[-1] == (11, 11)  # progress counts the kept frames as done
    whole = upscale_clip(clip_bytes, clip, engine, options, MemoryParts(), chunk_frames=3)
    resumed, fresh = video_frames(result.data), video_frames(whole.data)
    assert resumed["count"] == 11 and resumed["times"] == fresh["times"]
    assert all(np.abs(a.astype(int) - b.astype(int)).mean() < 1 for a, b in zip(resumed["pixels"], fresh["pixels"]))
    assert audio_packets(result.data) == audio_packets(clip_bytes)


def test_damaged_frames_are_an_error_not_a_short_clip(engine, models_dir):
    clip_bytes = video_bytes(12, 32, 24, audio=False)
    clip, options = resolved(clip_bytes, models_dir)
    damaged = bytearray(clip_bytes)
    start = damaged.find(b"mdat") + 8
    damaged[start:start + len(damaged) // 2] = bytes(len(damaged) // 2)
    with pytest.raises(ImageError, match="corrupt"):
        upscale_clip(bytes(damaged), clip, engine, options, MemoryParts(), chunk_frames=4)
    gif = animation_bytes(6, 20, 16)
    with pytest.raises(ImageError):
        clip = video.probe_clip(gif[: len(gif) // 2])
        upscale_clip(gif[: len(gif) // 2], clip, engine, options.model_copy(update={"format": "gif"}),
                     MemoryParts(), chunk_frames=4)


@pytest.mark.parametrize("limit, value, error", [
    ("max_clip_frames", 9, video.ClipTooLong),
    ("max_clip_seconds", 0.5, video.ClipTooLong),
    ("max_frame_input_pixels", 32 * 24 - 1, LimitExceeded),
    ("max_frame_output_pixels", 64 * 48 - 1, LimitExceeded),
    ("max_clip_output_pixels", 10 * 64 * 48 - 1, video.ClipTooLong),
])
def test_each_limit_is_checked_from_the_header(limit, value, error):
    clip = video.probe_clip(video_bytes(10, 32, 24, rate=10, audio=False))
    video.check_clip_limits(clip, 64, 48, Settings(_env_file=None, **{limit: value + 1}))  # at the limit: fine
    with pytest.raises(error):
        video.check_clip_limits(clip, 64, 48, Settings(_env_file=None, **{limit: value}))


def test_output_formats_that_make_sense(models_dir):
    gif = animation_bytes(3)
    for fmt in ("gif", "webp", "png", "apng", "mp4", "webm"):
        resolved(gif, models_dir, format=fmt)
    with pytest.raises(InvalidOption, match="a video can be written as mp4, mov, mkv, webm"):
        resolved(video_bytes(4, audio=False), models_dir, format="gif")
    with pytest.raises(InvalidOption):
        resolved(gif, models_dir, format="jpg")


SEEDS = {"mp4": video_bytes(6, 16, 16, audio=True), "webm": video_bytes(4, 16, 16, fmt="webm", audio=False),
         "mkv": video_bytes(4, 16, 16, fmt="mkv", audio=True), "gif": animation_bytes(4, 12, 10),
         "apng": animation_bytes(4, 12, 10, fmt="PNG", alpha=True), "webp": animation_bytes(4, 12, 10, fmt="WEBP")}


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_cut_and_damaged_clips_are_read_or_refused_cleanly(kind):
    """Truncated at 12 points and byte-flipped at 12 places: probe and frames either work or raise our
    ImageError; nothing else escapes (FFmpeg's and Pillow's own errors are translated)."""
    data, rng = SEEDS[kind], np.random.default_rng(len(kind))
    damaged = [data[:int(len(data) * cut)] for cut in np.linspace(0.02, 0.98, 12)]
    for at in rng.integers(0, len(data), 12):
        flipped = bytearray(data)
        flipped[at:at + 8] = rng.integers(0, 256, len(flipped[at:at + 8]), dtype=np.uint8).tobytes()
        damaged.append(bytes(flipped))
    for sample in damaged:
        try:
            clip = video.probe_clip(sample)
            if clip is not None:
                for frame in video.ClipReader(sample, clip).frames():
                    assert frame.pixels.shape[:2] == (clip.height, clip.width)
        except ImageError:
            pass
