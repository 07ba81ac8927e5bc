"""Response shapes, for the OpenAPI document at /docs (and contract tests against it).

``JobOut.of(job)`` is the one place a job's public shape is built: the API answers it and the worker's
webhooks send it (this module needs only pydantic and the job records, not FastAPI).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from jobs.records import SUCCEEDED, Job, seconds_between
from model.options import JobOptions

JOBS_PATH = "/v1/jobs"


def job_url(job_id: str) -> str:
    return f"{JOBS_PATH}/{job_id}"


class ErrorInfo(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorInfo


class Progress(BaseModel):
    done: int
    total: int
    fraction: float


# What a clip's input record has beyond an image's (api/service.py input_record)
CLIP_INPUT = ("kind", "frames", "duration", "fps", "audio")


class InputInfo(BaseModel):
    name: str
    width: int  # a video's stored frame size (its rotation is metadata)
    height: int
    format: str
    bytes: int
    url: str
    kind: Literal["video", "animation"] | None = None  # videos and animations only, from here down
    frames: int | None = None  # from the header (an estimate for WebM/MKV)
    duration: float | None = None  # seconds
    fps: float | None = None
    audio: bool | None = None


class OutputInfo(BaseModel):
    width: int
    height: int
    format: str
    bytes: int
    url: str
    frames: int | None = None  # videos and animations only
    resumed_at_frame: int | None = None  # the first frame the last attempt upscaled (> 0: it resumed)


class WebhookInfo(BaseModel):
    status: Literal["retrying", "delivered", "failed"]
    attempts: int
    status_code: int | None  # the receiver's last answer
    error: str | None
    at: str  # time of the last attempt


class JobOut(BaseModel):
    id: str
    status: Literal["queued", "running", "succeeded", "failed", "canceled"]
    model: str
    progress: Progress
    created_at: str
    started_at: str | None
    finished_at: str | None
    queue_seconds: float | None
    processing_seconds: float | None
    input: InputInfo
    options: JobOptions
    output: OutputInfo | None
    error: ErrorInfo | None
    precision: str | None = None  # compute type the model ran in (float32, bfloat16, float16), once finished
    webhook: WebhookInfo | None = None  # delivery to the callback_url, once attempted

    @classmethod
    def of(cls, job: Job) -> "JobOut":
        """The job as the API shows it (GET /v1/jobs/{id}) and webhooks send it. Fields that do not apply
        are left unset (a still image's input and output have no frames): answered and sent with
        ``exclude_unset``, as ``public`` does."""
        fraction = 1.0 if job.status == SUCCEEDED else (job.done / job.total if job.total else 0.0)
        url = job_url(job.id)
        return cls(
            id=job.id, status=job.status, model=job.model,
            progress=Progress(done=job.done, total=job.total, fraction=round(fraction, 4)),
            created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
            queue_seconds=seconds_between(job.created_at, job.started_at or job.finished_at),
            processing_seconds=seconds_between(job.started_at, job.finished_at) if job.started_at else None,
            input={**{k: job.input.get(k) for k in ("name", "width", "height", "format", "bytes")},
                   **{k: job.input[k] for k in CLIP_INPUT if k in job.input}, "url": f"{url}/input"},
            options=job.options.model_dump(),  # every option set, so none is left out below
            output={**job.output, "url": f"{url}/result"} if job.output else None,
            error=job.error, precision=job.precision, webhook=job.webhook)

    @classmethod
    def public(cls, job: Job) -> dict:
        """``of(job)`` as JSON, without the fields that do not apply (what a webhook sends)."""
        return cls.of(job).model_dump(mode="json", exclude_unset=True)


class StrengthInfo(BaseModel):
    default: float


class ModelOut(BaseModel):
    name: str
    scale: int
    arch: str
    description: str
    num_params: int | None
    metrics: dict[str, Any]
    default: bool
    strength: StrengthInfo | None
    precision: str  # compute type jobs run in here (the precision setting resolved on this host)
    license: str | None = None
    source: str | None = None


ERRORS = {code: {"model": ErrorBody} for code in (401, 404, 409, 413, 415, 422, 429, 503)}
