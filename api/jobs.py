"""/v1/jobs: submit an image, follow the job, download the result, cancel or delete it."""
from __future__ import annotations

import hashlib
import json
import re
from contextlib import contextmanager
from pathlib import PurePosixPath

from fastapi import APIRouter, Depends, File, Form, Header, Response, UploadFile
from fastapi.responses import FileResponse

from model.errors import LimitExceeded, ESRGANError
from model.imageio import ImageInfo, probe
from worker.celery_app import enqueue
from worker.jobs import SUCCEEDED, IdempotencyKeyReused, Job, new_job_id, seconds_between
from worker.storage import GENERATED, MEDIA_TYPES, UPLOADS, EXTENSIONS

from .deps import Context, context, owner
from .errors import APIError
from .files import FileDownload
from .forms import single_valued
from .options import Requested, check
from .schemas import ERRORS, JobOut

router = APIRouter(prefix="/v1", tags=["jobs"])
PUBLIC_OPTIONS = ("scale", "outscale", "width", "height", "tile", "strength", "ensemble", "format", "quality")


def job_form(
    model: str | None = Form(None, max_length=64, description="Model name (GET /v1/models); default: the scale's default"),
    scale: int | None = Form(None, description="2 or 4: picks the default model of that scale"),
    outscale: float | None = Form(None, gt=0, le=16, description="Output scale (native pass, then resize)"),
    width: int | None = Form(None, ge=1, description="Exact output width (height follows the aspect if not given)"),
    height: int | None = Form(None, ge=1, description="Exact output height"),
    tile: int | None = Form(None, ge=0, le=4096, description="Tile size in input pixels; 0 = one pass"),
    strength: float | None = Form(None, ge=0, le=1, description="Smooth (0) to sharp (1), for interpolated models"),
    ensemble: bool = Form(False, description="Self-ensemble: average the results for the 8 flips/rotations "
                                             "of the input (a little more faithful, 8x the time)"),
    format: str | None = Form(None, max_length=8, description="png, jpg, webp or tiff; default: the input's"),
    quality: int | None = Form(None, ge=1, le=100, description="JPEG/WebP quality"),
) -> Requested:
    return Requested(model=model, scale=scale, outscale=outscale, width=width, height=height, tile=tile,
                     strength=strength, ensemble=ensemble, format=format, quality=quality)


def display_name(filename: str | None) -> str:
    """The upload's own name, reduced to a harmless base name (shown and used for the download name)."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    name = re.sub(r"[\x00-\x1f\x7f\"]", "", name).strip()[:200]
    return name or "image"


def submit(ctx: Context, who: str, upload: UploadFile, req: Requested, idempotency_key: str | None) -> Job:
    """Validate, store and enqueue an upload; the one path behind /v1/jobs, /upload and /enhance."""
    settings, store = ctx.settings, ctx.store
    data = upload.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise APIError(413, "upload_too_large", f"the upload is over the limit of {settings.max_upload_bytes:,} bytes")
    fingerprint = request_fingerprint(data, upload.filename, req)
    if idempotency_key:
        with idempotency_checked():
            previous = store.find_idempotent(who, idempotency_key, fingerprint)
        if previous is not None:
            return previous
    try:
        info = probe(data, max_pixels=settings.max_input_pixels)
    except LimitExceeded as exc:
        raise APIError(422, exc.code, str(exc)) from None
    except ESRGANError as exc:
        raise APIError(415, exc.code, str(exc)) from None
    manifest, options = check(settings, info, req)

    retry_after = {"Retry-After": str(settings.queue_retry_after)}
    if ctx.api_keys and store.in_flight(who) >= settings.max_jobs_in_flight_per_key:
        raise APIError(429, "too_many_jobs", f"this API key already has {settings.max_jobs_in_flight_per_key} "
                       "jobs queued or running; wait for one to finish", retry_after)
    if not store.admit(settings.queue, settings.max_queue_depth):
        raise APIError(429, "queue_full", "the job queue is full; try again later", retry_after)
    try:
        return _store_and_enqueue(ctx, who, upload, data, info, manifest, options, idempotency_key, fingerprint)
    finally:
        store.admitted(settings.queue)


def request_fingerprint(data: bytes, filename: str | None, req: Requested) -> str:
    """What a retry under the same Idempotency-Key must repeat: the image, its name and the options."""
    options = json.dumps(vars(req), sort_keys=True, default=str)
    return hashlib.sha256(hashlib.sha256(data).digest() + f"{filename}\0{options}".encode()).hexdigest()


@contextmanager
def idempotency_checked():
    try:
        yield
    except IdempotencyKeyReused:
        # As the IETF Idempotency-Key draft and Stripe answer a key reused with another request
        raise APIError(422, "idempotency_key_reused", "this Idempotency-Key was already used for a request "
                       "with a different image, name or options; use a new key for a new request") from None


def _store_and_enqueue(ctx: Context, who: str, upload: UploadFile, data: bytes, info: ImageInfo, manifest,
                       options: dict, idempotency_key: str | None, fingerprint: str) -> Job:
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
        try:
            ctx.storage.write(UPLOADS, job_id, info.format.lower(), data)
        except OSError as exc:
            raise APIError(503, "storage_unavailable", f"cannot store the upload: {exc.strerror or exc}") from None
        job = store.create(job_id, owner=who, model=manifest.name, options=options, input={
            "name": display_name(upload.filename), "width": info.width, "height": info.height,
            "format": info.format.lower(), "bytes": len(data)}, idempotency_key=idempotency_key)
        enqueue(ctx.celery, job_id, settings.queue)
    except Exception:
        _undo(ctx, who, job_id, idempotency_key)
        raise
    return job


def _undo(ctx: Context, who: str, job_id: str, idempotency_key: str | None) -> None:
    """Best effort: a job that could not be queued leaves no record, file or key behind."""
    for step in (lambda: ctx.store.delete(job_id), lambda: ctx.storage.remove_job(job_id),
                 lambda: idempotency_key and ctx.store.release_idempotency_key(who, idempotency_key)):
        try:
            step()
        except Exception:
            pass


def job_json(job: Job) -> dict:
    fraction = 1.0 if job.status == SUCCEEDED else (job.done / job.total if job.total else 0.0)
    url = f"/v1/jobs/{job.id}"
    return {
        "id": job.id, "status": job.status, "model": job.model,
        "progress": {"done": job.done, "total": job.total, "fraction": round(fraction, 4)},
        "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
        "queue_seconds": seconds_between(job.created_at, job.started_at or job.finished_at),
        "processing_seconds": seconds_between(job.started_at, job.finished_at) if job.started_at else None,
        "input": {**{k: job.input.get(k) for k in ("name", "width", "height", "format", "bytes")},
                  "url": f"{url}/input"},
        "options": {k: job.options.get(k) for k in PUBLIC_OPTIONS},
        "output": {**job.output, "url": f"{url}/result"} if job.output else None,
        "error": job.error,
        "precision": job.precision,
    }


def find_job(ctx: Context, who: str, job_id: str) -> Job:
    """The caller's job; 404 for unknown ids and for other keys' jobs alike."""
    job = ctx.store.get(job_id)
    if job is None or job.owner != who:
        raise APIError(404, "job_not_found", f"no job {job_id[:64]!r} (unknown, expired or deleted)")
    return job


def download_name(job: Job) -> str:
    stem = PurePosixPath(job.input.get("name") or "image").stem or "image"
    opts = job.options
    if opts.get("width"):
        suffix = f"{opts['width']}x{opts['height']}"
    else:
        suffix = f"x{opts['outscale'] if opts.get('outscale') is not None else opts['scale']:g}"
    return f"{stem}_{suffix}.{EXTENSIONS[opts['format']]}"


def result_file(ctx: Context, job: Job, inline: bool = False) -> FileDownload:
    if job.status != SUCCEEDED or not job.output:
        raise APIError(409, "result_not_ready", f"the job is {job.status}; the result exists once it has succeeded")
    path = ctx.storage.path(GENERATED, job.id, job.output["format"])
    if not path.is_file():
        raise APIError(404, "result_missing", "the result file no longer exists")
    return FileDownload(path, media_type=MEDIA_TYPES[EXTENSIONS[job.output["format"]]], filename=download_name(job),
                        content_disposition_type="inline" if inline else "attachment")


def input_file(ctx: Context, job: Job) -> FileDownload:
    fmt = EXTENSIONS[job.input["format"]]
    path = ctx.storage.path(UPLOADS, job.id, fmt)
    if not path.is_file():
        raise APIError(404, "input_missing", "the input file no longer exists")
    return FileDownload(path, media_type=MEDIA_TYPES[fmt], filename=job.input.get("name") or f"input.{fmt}",
                        content_disposition_type="inline")


@router.post("/jobs", status_code=202, response_model=JobOut, responses=ERRORS,
             summary="Submit an image to enhance", dependencies=[Depends(single_valued)])
def create_job(response: Response, image: UploadFile = File(..., description="The image (PNG, JPEG, WebP, TIFF, BMP)"),
               req: Requested = Depends(job_form),
               idempotency_key: str | None = Header(None, max_length=200,
                                                    description="Retries with the same key and the same request "
                                                                "return the same job; another request: 422"),
               ctx: Context = Depends(context), who: str = Depends(owner)):
    job = submit(ctx, who, image, req, idempotency_key)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job_json(job)


@router.get("/jobs/{job_id}", response_model=JobOut, responses=ERRORS, summary="A job's status")
def get_job(job_id: str, ctx: Context = Depends(context), who: str = Depends(owner)):
    return job_json(find_job(ctx, who, job_id))


@router.get("/jobs/{job_id}/result", responses={**ERRORS, 200: {"content": {"image/png": {}}}},
            response_class=FileResponse, summary="Download the enhanced image")
def get_result(job_id: str, ctx: Context = Depends(context), who: str = Depends(owner)):
    return result_file(ctx, find_job(ctx, who, job_id))


@router.get("/jobs/{job_id}/input", responses={**ERRORS, 200: {"content": {"image/png": {}}}},
            response_class=FileResponse, summary="The uploaded image")
def get_input(job_id: str, ctx: Context = Depends(context), who: str = Depends(owner)):
    return input_file(ctx, find_job(ctx, who, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses=ERRORS, summary="Cancel a job")
def cancel_job(job_id: str, ctx: Context = Depends(context), who: str = Depends(owner)):
    find_job(ctx, who, job_id)
    ctx.store.request_cancel(job_id)
    return job_json(find_job(ctx, who, job_id))


@router.delete("/jobs/{job_id}", status_code=204, responses=ERRORS, summary="Delete a job and its files")
def delete_job(job_id: str, ctx: Context = Depends(context), who: str = Depends(owner)):
    job = find_job(ctx, who, job_id)
    if not job.finished:
        ctx.store.request_cancel(job_id)
    ctx.store.delete(job_id)
    ctx.storage.remove_job(job_id)
    return Response(status_code=204)
