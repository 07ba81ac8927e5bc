"""The job service behind the routes: submit an upload (size limit, idempotency, image or clip limits,
admission, store and enqueue, undone if any step fails), find, cancel and delete a caller's job, and stream
its files.

``api/jobs.py`` (/v1/jobs), ``api/pages.py`` (the browser's form upload and stored names) and
``api/archives.py`` (zips of results) call it; each route only maps HTTP to one of these calls.
"""
from __future__ import annotations

import hashlib
import re
from contextlib import contextmanager
from pathlib import PurePosixPath
from urllib.parse import quote

from fastapi import Response, UploadFile
from fastapi.responses import RedirectResponse

from jobs import webhooks
from jobs.queue import enqueue
from jobs.records import SUCCEEDED, IdempotencyKeyReused, Job, new_job_id
from jobs.storage import EXTENSIONS, GENERATED, MEDIA_TYPES, UPLOADS
from model.imageio import ImageInfo, probe
from model.options import JobOptions, resolve_clip_options, resolve_model, resolve_options
from model.video import ClipInfo, probe_clip

from .deps import Context
from .errors import APIError
from .files import StoredFile


def display_name(filename: str | None) -> str:
    """The upload's own name, reduced to a harmless base name (shown and used for the download name)."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    name = re.sub(r"[\x00-\x1f\x7f\"]", "", name).strip()[:200]
    return name or "image"


def submit(ctx: Context, who: str, upload: UploadFile, options: JobOptions, idempotency_key: str | None) -> Job:
    """Validate, store and enqueue an upload; the one path behind /v1/jobs, /upload and /enhance."""
    settings, store = ctx.settings, ctx.store
    data = upload.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise APIError(413, "upload_too_large", f"the upload is over the limit of {settings.max_upload_bytes:,} bytes")
    fingerprint = request_fingerprint(data, upload.filename, options)
    if idempotency_key:
        with idempotency_checked():
            previous = store.find_idempotent(who, idempotency_key, fingerprint)
        if previous is not None:
            return previous
    # Header only, errors 413 / 415 / 422 (api/errors.py): a video or animation, else a still image
    info: ImageInfo | ClipInfo | None = probe_clip(data, max_frames=settings.max_clip_frames)
    if info is None:
        info = probe(data, max_pixels=settings.max_input_pixels)
    _, manifest = resolve_model(settings, options.model, options.scale)
    if isinstance(info, ClipInfo):
        options = resolve_clip_options(options, manifest, info, settings)
    else:
        options = resolve_options(options, manifest, info, settings.max_output_pixels)
    if options.callback_url:
        check_callback(settings, options.callback_url)

    retry_after = {"Retry-After": str(settings.queue_retry_after)}
    if ctx.api_keys and store.in_flight(who) >= settings.max_jobs_in_flight_per_key:
        raise APIError(429, "too_many_jobs", f"this API key already has {settings.max_jobs_in_flight_per_key} "
                       "jobs queued or running; wait for one to finish", retry_after)
    if not store.admit(settings.queue, settings.max_queue_depth):
        raise APIError(429, "queue_full", "the job queue is full; try again later", retry_after)
    try:
        return _store_and_enqueue(ctx, who, upload, data, info, options, idempotency_key, fingerprint)
    finally:
        store.admitted(settings.queue)


def check_callback(settings, url: str) -> None:
    if not settings.webhook_secret:
        raise APIError(422, "webhooks_disabled", "this service sends no webhooks (ESRGAN_WEBHOOK_SECRET is not set)")
    try:
        webhooks.check_target(url, settings.webhook_allow_private)
    except webhooks.TargetRefused as exc:
        raise APIError(422, "invalid_callback_url", str(exc)) from None


def request_fingerprint(data: bytes, filename: str | None, options: JobOptions) -> str:
    """What a retry under the same Idempotency-Key must repeat: the image, its name and the options as sent."""
    sent = f"{filename}\0{options.model_dump_json()}".encode()
    return hashlib.sha256(hashlib.sha256(data).digest() + sent).hexdigest()


@contextmanager
def idempotency_checked():
    try:
        yield
    except IdempotencyKeyReused:
        # As the IETF Idempotency-Key draft and Stripe answer a key reused for another request
        raise APIError(422, "idempotency_key_reused", "this Idempotency-Key was already used for a request "
                       "with a different image, name or options; use a new key for a new request") from None


def input_record(name: str | None, info: ImageInfo | ClipInfo, size: int) -> dict:
    """What the job record keeps of its input; a clip's also says what it is (the worker's cue)."""
    record = {"name": display_name(name), "width": info.width, "height": info.height,
              "format": info.format.lower(), "bytes": size}
    if isinstance(info, ClipInfo):
        record.update(kind=info.kind, frames=info.frames, duration=round(info.duration, 3), fps=round(info.fps, 3),
                      audio=info.has_audio)
    return record


def _store_and_enqueue(ctx: Context, who: str, upload: UploadFile, data: bytes, info: ImageInfo | ClipInfo,
                       options: JobOptions, idempotency_key: str | None, fingerprint: str) -> Job:
    settings, store = ctx.settings, ctx.store
    job_id = new_job_id()
    if idempotency_key:
        with idempotency_checked():
            winner = store.claim_idempotency_key(who, idempotency_key, job_id, fingerprint)
        if winner is not None:  # a concurrent retry got there first
            job = store.get(winner)
            if job is None:
                raise APIError(409, "conflict", "a request with this Idempotency-Key is still being processed")
            return job
    try:
        ctx.storage.write(UPLOADS, job_id, info.format.lower(), data)  # StorageUnavailable: 503
        job = store.create(job_id, owner=who, options=options, input=input_record(upload.filename, info, len(data)),
                           idempotency_key=idempotency_key)
        enqueue(ctx.celery, job_id, settings.queue)
    except Exception:
        _undo(ctx, who, job_id, idempotency_key)
        raise
    return job


def _undo(ctx: Context, who: str, job_id: str, idempotency_key: str | None) -> None:
    """Best effort: a job that could not be queued leaves no record, file or key behind."""
    for step in (lambda: ctx.store.delete(job_id), lambda: ctx.storage.delete_job(job_id),
                 lambda: idempotency_key and ctx.store.release_idempotency_key(who, idempotency_key)):
        try:
            step()
        except Exception:
            pass


def find_job(ctx: Context, who: str, job_id: str) -> Job:
    """The caller's job; 404 for unknown ids and for other keys' jobs alike."""
    job = ctx.store.get(job_id)
    if job is None or job.owner != who:
        raise APIError(404, "job_not_found", f"no job {job_id[:64]!r} (unknown, expired or deleted)")
    return job


def download_name(job: Job) -> str:
    """``photo_x4.png``, ``photo_x1.5.png``, or ``photo_100x75.png`` for a size that no scale gives."""
    stem = PurePosixPath(job.input.get("name") or "image").stem or "image"
    opts = job.options
    native = (job.input["width"] * opts.scale, job.input["height"] * opts.scale)
    if opts.outscale is not None:
        suffix = f"x{opts.outscale:g}"
    elif opts.width and (opts.width, opts.height) != native:
        suffix = f"{opts.width}x{opts.height}"
    else:
        suffix = f"x{opts.scale}"
    return f"{stem}_{suffix}.{EXTENSIONS[opts.format]}"


def content_disposition(filename: str, inline: bool) -> str:
    kind = "inline" if inline else "attachment"
    quoted = quote(filename)
    return f"{kind}; filename*=utf-8''{quoted}" if quoted != filename else f'{kind}; filename="{filename}"'


def file_response(ctx: Context, kind: str, job: Job, fmt: str, filename: str, inline: bool) -> Response:
    """The file streamed through the API, or a redirect to a presigned URL where storage offers one."""
    url = ctx.storage.presigned_url(kind, job.id, fmt, filename=filename, inline=inline)
    if url:
        return RedirectResponse(url, status_code=307)
    download = ctx.storage.open(kind, job.id, fmt)  # FileMissing: 404 before any byte is sent
    return StoredFile(download.chunks, download.size, media_type=MEDIA_TYPES[EXTENSIONS[fmt]],
                      headers={"Content-Disposition": content_disposition(filename, inline)})


def result_file(ctx: Context, job: Job, inline: bool = False) -> Response:
    if job.status != SUCCEEDED or not job.output:
        raise APIError(409, "result_not_ready", f"the job is {job.status}; the result exists once it has succeeded")
    return file_response(ctx, GENERATED, job, job.output["format"], download_name(job), inline)


def input_file(ctx: Context, job: Job) -> Response:
    fmt = job.input["format"]
    return file_response(ctx, UPLOADS, job, fmt, job.input.get("name") or f"input.{EXTENSIONS[fmt]}", inline=True)


def cancel(ctx: Context, who: str, job_id: str) -> Job:
    """Ask the caller's job to stop (a queued job never runs, a running one stops at its next tile)."""
    find_job(ctx, who, job_id)
    ctx.store.request_cancel(job_id)
    return find_job(ctx, who, job_id)


def delete(ctx: Context, who: str, job_id: str) -> None:
    """The caller's job, its record and files gone (a job still running is canceled first)."""
    job = find_job(ctx, who, job_id)
    if not job.finished:
        ctx.store.request_cancel(job_id)
    ctx.store.delete(job_id)
    ctx.storage.delete_job(job_id)
