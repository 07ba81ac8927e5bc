"""/v1/archives: the results of many jobs as one zip, streamed as it is written ("download all").

Bounded in count (``max_archive_jobs``) and total bytes (``max_archive_bytes``), both checked before the
first byte is sent. Entries are stored, not deflated: the images are compressed already.
"""
from __future__ import annotations

import io
import zipfile
from contextlib import ExitStack
from pathlib import PurePosixPath
from typing import Iterator

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from jobs.records import SUCCEEDED
from jobs.storage import GENERATED, Download

from .deps import Context, context, owner
from .errors import APIError
from .schemas import ERRORS
from .service import download_name, find_job

router = APIRouter(prefix="/v1", tags=["jobs"])


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


def zip_stream(entries: list[tuple[str, Download]], files: ExitStack) -> Iterator[bytes]:
    """Zip the opened files, yielding the archive piece by piece; closes ``files`` at the end."""
    sink = _Sink()
    try:
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
            for name, download in entries:
                with archive.open(name, "w", force_zip64=download.size >= zipfile.ZIP64_LIMIT) as dst:
                    for chunk in download.chunks:
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
    total = sum(job.output["bytes"] for job in jobs)
    if total > settings.max_archive_bytes:
        raise APIError(422, "limit_exceeded", f"the results total {total:,} bytes; one archive takes "
                       f"at most {settings.max_archive_bytes:,}")
    with ExitStack() as opened:
        entries = []
        for name, job in zip(unique_names([download_name(job) for job in jobs]), jobs):
            # Opened now (FileMissing: 404 before any byte): a job deleted while the zip streams cannot cut it short.
            download = ctx.storage.open(GENERATED, job.id, job.output["format"])
            opened.callback(download.chunks.close)
            entries.append((name, download))
        stream = zip_stream(entries, opened.pop_all())
    return StreamingResponse(stream, media_type="application/zip",
                             headers={"Content-Disposition": 'attachment; filename="esrgan-results.zip"'})
