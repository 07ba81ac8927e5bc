"""Response shapes, for the OpenAPI document at /docs (and contract tests against it)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from model.options import JobOptions


class ErrorInfo(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorInfo


class Progress(BaseModel):
    done: int
    total: int
    fraction: float


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
