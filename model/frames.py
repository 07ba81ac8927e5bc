"""The chunked frame runner: a clip's frames through the engine, chunk by chunk.

Frames ``[k*n, (k+1)*n)`` make chunk ``k``; once its frames are upscaled the chunk is encoded as a part
(``model.video.encode_part``) and handed to ``parts`` to keep. A run that stops half-way (a killed worker)
leaves its finished parts behind, and the next run decodes past their frames without upscaling them,
starting the work at the first unfinished chunk. When every chunk is done, the parts are joined once.

``parts`` is where they are kept: job storage for the service (``jobs.storage.JobParts``), memory for the
command line (``MemoryParts``).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from .errors import Canceled, ImageError
from .options import JobOptions
from .video import ClipInfo, ClipReader, Frame, encode_part, join_parts


class Parts(Protocol):
    def done(self) -> set[int]: ...

    def write(self, index: int, data: bytes) -> None: ...

    def read(self, index: int) -> bytes: ...


class MemoryParts:
    def __init__(self):
        self.parts: dict[int, bytes] = {}

    def done(self) -> set[int]:
        return set(self.parts)

    def write(self, index: int, data: bytes) -> None:
        self.parts[index] = data

    def read(self, index: int) -> bytes:
        return self.parts[index]


@dataclass
class ClipResult:
    data: bytes  # the output file
    frames: int
    width: int  # output frame size
    height: int
    resumed_at: int  # the first frame this run upscaled (0 = from the start; frames = nothing left to do)
    upscaled: int  # frames this run upscaled


def upscale_clip(data: bytes, clip: ClipInfo, upscaler, options: JobOptions, parts: Parts, *, chunk_frames: int,
                 progress: Callable[[int, int], None] | None = None,
                 cancel: Callable[[], bool] | threading.Event | None = None) -> ClipResult:
    """Upscale every frame of ``clip`` with the job's resolved ``options`` (size, strength, format...)."""
    reader = ClipReader(data, clip)
    finished = parts.done()
    fmt, quality = options.format, options.quality
    chunk: list[Frame] = []
    total, done, upscaled, resumed_at, count = clip.frames, 0, 0, None, 0
    size = (0, 0)
    for frame in reader.frames():
        count = frame.index + 1
        index = frame.index // chunk_frames
        done += 1
        total = max(total, done)
        if index in finished:
            continue
        if resumed_at is None:
            resumed_at = frame.index
        if cancel is not None and (cancel.is_set() if isinstance(cancel, threading.Event) else cancel()):
            raise Canceled("canceled")
        pixels = upscaler.run(frame.pixels, options, cancel=cancel)
        size = pixels.shape[1], pixels.shape[0]
        chunk.append(replace(frame, pixels=pixels))
        upscaled += 1
        if progress:
            progress(done, total)
        if count % chunk_frames == 0:
            parts.write(index, encode_part(chunk, reader.meta, fmt, quality))
            chunk = []
    if count == 0:
        raise ImageError(f"the {clip.format.upper()} clip has no frames that could be decoded")
    if chunk:
        parts.write((count - 1) // chunk_frames, encode_part(chunk, reader.meta, fmt, quality))
    if progress:
        progress(count, count)
    chunks = -(-count // chunk_frames)
    output = join_parts((parts.read(k) for k in range(chunks)), reader, fmt, quality)
    if not upscaled:  # every chunk was done before: the output size is the options'
        size = (options.width, options.height)
    return ClipResult(output, count, size[0], size[1], count if resumed_at is None else resumed_at, upscaled)
