"""Video benchmark: a short clip as one job against the same frames as separate image jobs, and flicker.

1. Throughput, frames per second, on the same model and frames:
   - in this process: the chunked frame runner (decode, upscale, encode parts, join, audio copied) against
     the worker's image path per frame (PNG decode, upscale, PNG encode);
   - through the real service (redis-server, the API, one Celery worker): one clip job against one image
     job per frame, from the first upload to the last result seen by a polling client.
2. Whether batching frames would pay: the network on a batch of 4 frames against 4 calls of one (the
   runner takes NHWC batches; the engine sends one frame at a time where a batch is not faster).
3. Flicker on a static scene (one photo held for every frame of an H.264 clip): the mean absolute
   difference between consecutive frames (0-255 levels) of the output, of the model's frames before
   encoding, and of the input frames upscaled by bicubic.

    python bench/bench_video.py [--model esrgan-real-x2] [--frames 24] [--size 96x64] [--no-service]
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from model import imageio, video  # noqa: E402
from model.engine import load_upscaler  # noqa: E402
from model.frames import MemoryParts, upscale_clip  # noqa: E402
from model.options import JobOptions, resolve_clip_options, resolve_model  # noqa: E402
from model.settings import SHIPPED_MODELS_DIR, Settings  # noqa: E402
from bench.clipfactory import video_bytes, video_frames  # noqa: E402
from bench.harness import ServiceStack  # noqa: E402


def static_clip(frames: int, width: int, height: int) -> bytes:
    """One photo (scikit-image's cat) held still: any change between output frames is flicker."""
    import av
    from skimage import data

    photo = cv2.resize(data.chelsea(), (width, height), interpolation=cv2.INTER_AREA)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=24, options={"crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(frames):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(photo, format="rgb24")))
        out.mux(stream.encode())
    return buf.getvalue()


def flicker(frames: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(b.astype(np.float32) - a.astype(np.float32)).mean()
                          for a, b in zip(frames, frames[1:])]))


def in_process(engine, settings: Settings, clip_bytes: bytes, repeat: int) -> tuple[float, float]:
    clip = video.probe_clip(clip_bytes)
    options = resolve_clip_options(JobOptions(), engine.manifest, clip, settings)
    frames = video_frames(clip_bytes)["pixels"]
    pngs = [imageio.encode(f, "png") for f in frames]
    upscale_clip(clip_bytes, clip, engine, options, MemoryParts(), chunk_frames=settings.clip_chunk_frames)  # warm
    clip_times, image_times = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        upscale_clip(clip_bytes, clip, engine, options, MemoryParts(), chunk_frames=settings.clip_chunk_frames)
        clip_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        for png in pngs:  # the worker's image path, frame by frame
            decoded = imageio.decode(png)
            imageio.encode(engine.run(decoded.pixels, options), "png")
        image_times.append(time.perf_counter() - t)
    return len(frames) / min(clip_times), len(frames) / min(image_times)


def batch_gain(engine, width: int, height: int, repeat: int) -> tuple[float, float]:
    """Milliseconds per frame through the network alone: one at a time, and 4 in one batch."""
    pad = 2 * engine.edge_pad
    x = np.random.default_rng(0).random((4, height + pad, width + pad, 3), dtype=np.float32)
    engine.runner(x[:1]), engine.runner(x)  # plan both shapes
    single, batch = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        for i in range(4):
            engine.runner(x[i:i + 1])
        single.append(time.perf_counter() - t)
        t = time.perf_counter()
        engine.runner(x)
        batch.append(time.perf_counter() - t)
    return min(single) * 250, min(batch) * 250


def through_service(models_dir: Path, model: str, clip_bytes: bytes) -> tuple[float, float]:
    frames = video_frames(clip_bytes)["pixels"]
    pngs = [imageio.encode(f, "png") for f in frames]
    with tempfile.TemporaryDirectory() as tmp, ServiceStack(Path(tmp), models_dir, single_thread=False) as stack:
        stack.start_redis()
        stack.start_api()
        stack.start_worker("bench", wait=False)
        stack.wait_worker("bench", timeout=400)
        stack.wait_for(stack.submit(pngs[0], model=model)["id"])  # warm: the model's first run

        t = time.perf_counter()
        job = stack.wait_for(stack.submit(clip_bytes, filename="clip.mp4", model=model)["id"], timeout=1800)
        clip_seconds = time.perf_counter() - t
        assert job["status"] == "succeeded", job

        t = time.perf_counter()
        ids = [stack.submit(png, model=model)["id"] for png in pngs]
        done = [stack.wait_for(i, timeout=1800) for i in ids]
        image_seconds = time.perf_counter() - t
        assert all(j["status"] == "succeeded" for j in done), done
    return len(frames) / clip_seconds, len(frames) / image_seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=SHIPPED_MODELS_DIR)
    parser.add_argument("--model", help="default: the default x2 model")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="96x64", help="frame size WxH")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement; the fastest counts")
    parser.add_argument("--no-service", action="store_true", help="skip the measurement through the service")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    settings = Settings(models_dir=args.models_dir)
    _, manifest = resolve_model(settings, args.model, None if args.model else 2)
    engine = load_upscaler(manifest.name, settings=settings)
    print(f"model {manifest.name} (x{manifest.scale}) on {engine.backend}, {engine.precision}; "
          f"{args.frames} frames of {width}x{height}, chunks of {settings.clip_chunk_frames}")

    moving = video_bytes(args.frames, width, height, rate=24, audio=True)
    clip_fps, image_fps = in_process(engine, settings, moving, args.repeat)
    print(f"in process: clip {clip_fps:6.2f} fps, separate images {image_fps:6.2f} fps "
          f"(clip / images {clip_fps / image_fps:.2f}x)")
    single_ms, batch_ms = batch_gain(engine, width, height, args.repeat)
    print(f"network per frame: one at a time {single_ms:.1f} ms, in a batch of 4 {batch_ms:.1f} ms "
          f"({single_ms / batch_ms:.2f}x)")
    if not args.no_service:
        clip_fps, image_fps = through_service(args.models_dir, manifest.name, moving)
        print(f"service:    clip job {clip_fps:6.2f} fps, one job per frame {image_fps:6.2f} fps "
              f"(clip / images {clip_fps / image_fps:.2f}x)")

    still = static_clip(args.frames, width, height)
    clip = video.probe_clip(still)
    options = resolve_clip_options(JobOptions(), engine.manifest, clip, settings)
    inputs = video_frames(still)["pixels"]
    output = video_frames(upscale_clip(still, clip, engine, options, MemoryParts(),
                                       chunk_frames=settings.clip_chunk_frames).data)["pixels"]
    model_frames = [engine.run(f, options) for f in inputs]
    bicubic = [cv2.resize(f, (options.width, options.height), interpolation=cv2.INTER_CUBIC) for f in inputs]
    print(f"flicker on a static scene (mean |frame t+1 - frame t|, levels): output video {flicker(output):.3f}, "
          f"model frames before encoding {flicker(model_frames):.3f}, input by bicubic {flicker(bicubic):.3f} "
          f"(input frames {flicker(inputs):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
