"""/v1/archives: the results of many jobs as one zip, streamed as it is written ("download all").

Bounded in count (``max_archive_jobs``) and total bytes (``max_archive_bytes``), both checked before the
first byte is sent. Entries are stored, not deflated: the images are compressed already.
"""
from __future__ import annotations

import io
import os
import zipfile
from contextlib import ExitStack
from pathlib import PurePosixPath
from typing import BinaryIO, Iterator

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from worker.jobs import SUCCEEDED
from worker.storage import GENERATED

from .deps import Context, context, owner
from .errors import APIError
from .jobs import download_name, find_job
from .schemas import ERRORS

router = APIRouter(prefix="/v1", tags=["jobs"])
CHUNK = 1 << 20


class ArchiveIn(BaseModel):
    job_ids: list[str] = Field(min_length=1, description="Succeeded jobs whose results go into the zip")


class _Sink(io.RawIOBase):
    """Where zipfile writes; the response drains it after every chunk. Not seekable, so zipfile
    streams (sizes in data descriptors after each entry)."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


def zip_stream(entries: list[tuple[str, BinaryIO, int]], files: ExitStack) -> Iterator[bytes]:
    """Zip the open files ``(name, file, size)``, yielding the archive piece by piece; closes ``files``."""
    sink = _Sink()
    try:
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
            for name, src, size in entries:
                with archive.open(name, "w", force_zip64=size >= zipfile.ZIP64_LIMIT) as dst:
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)
                        yield sink.take()
        yield sink.take()
    finally:
        files.close()


def unique_names(names: list[str]) -> list[str]:
    """``cat_x4.png`` twice becomes ``cat_x4.png``, ``cat_x4 (2).png``."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            path = PurePosixPath(name)
            candidate = f"{path.stem} ({n}){path.suffix}"
        seen.add(candidate)
        out.append(candidate)
    return out


@router.post("/archives", responses={**ERRORS, 200: {"content": {"application/zip": {}}}},
             response_class=StreamingResponse, summary="Download the results of several jobs as one zip")
def create_archive(body: ArchiveIn, ctx: Context = Depends(context), who: str = Depends(owner)):
    settings = ctx.settings
    job_ids = list(dict.fromkeys(body.job_ids))  # the same job twice is one entry
    if len(job_ids) > settings.max_archive_jobs:
        raise APIError(422, "limit_exceeded", f"{len(job_ids)} jobs; one archive takes at most "
                       f"{settings.max_archive_jobs}")
    jobs = [find_job(ctx, who, job_id) for job_id in job_ids]
    not_ready = [job.id for job in jobs if job.status != SUCCEEDED or not job.output]
    if not_ready:
        raise APIError(409, "result_not_ready", f"{len(not_ready)} of the jobs have no result yet (not succeeded): "
                       + ", ".join(not_ready[:5]))
    paths = [ctx.storage.path(GENERATED, job.id, job.output["format"]) for job in jobs]
    with ExitStack() as opened:
        try:  # opened now: a job deleted while the zip streams cannot cut it short
            files = [opened.enter_context(open(path, "rb")) for path in paths]
        except FileNotFoundError:
            raise APIError(404, "result_missing", "a result file no longer exists") from None
        sizes = [os.fstat(f.fileno()).st_size for f in files]
        if sum(sizes) > settings.max_archive_bytes:
            raise APIError(422, "limit_exceeded", f"the results total {sum(sizes):,} bytes; one archive takes "
                           f"at most {settings.max_archive_bytes:,}")
        names = unique_names([download_name(job) for job in jobs])
        stream = zip_stream(list(zip(names, files, sizes)), opened.pop_all())
    return StreamingResponse(stream, media_type="application/zip",
                             headers={"Content-Disposition": 'attachment; filename="esrgan-results.zip"'})
