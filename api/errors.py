"""Every error answers ``{"error": {"code": ..., "message": ...}}`` with a 4xx/5xx status.

The one place where the errors of the library (``model.errors``) and of the job domain (``jobs``:
storage, Redis, the queue) become HTTP statuses."""
from __future__ import annotations

import logging

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from starlette.exceptions import HTTPException

from jobs.storage import GENERATED, FileMissing, StorageUnavailable
from model.errors import ESRGANError, ImageError
from model.video import ClipTooLong

log = logging.getLogger("esrgan.api")

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 408: "request_timeout", 409: "conflict", 413: "upload_too_large",
              415: "unsupported_media_type", 416: "range_not_satisfiable", 422: "invalid_request",
              429: "too_many_requests", 431: "headers_too_large", 503: "unavailable"}


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header"))
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error_response(exc.status_code, HTTP_CODES.get(exc.status_code, "error"), message,
                              getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return error_response(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(ESRGANError)
    async def _library_error(request: Request, exc: ESRGANError):
        # Unreadable or unsupported images: 415; clips over the frames/duration/total limits: 413;
        # options, pixel limits, models that do not fit: 422.
        status = 415 if isinstance(exc, ImageError) else 413 if isinstance(exc, ClipTooLong) else 422
        return error_response(status, exc.code, str(exc))

    @app.exception_handler(FileMissing)
    async def _file_missing(request: Request, exc: FileMissing):
        return error_response(404, f"{'result' if exc.kind == GENERATED else 'input'}_missing", str(exc))

    @app.exception_handler(StorageUnavailable)
    async def _storage_down(request: Request, exc: StorageUnavailable):
        log.warning("storage unavailable: %s", exc)
        return error_response(503, "storage_unavailable", f"job file storage is not available: {exc}",
                              {"Retry-After": "5"})

    @app.exception_handler(redis.ConnectionError)
    @app.exception_handler(redis.TimeoutError)
    @app.exception_handler(OperationalError)
    async def _redis_down(request: Request, exc: Exception):
        log.warning("Redis unavailable: %s", exc)
        return error_response(503, "redis_unavailable",
                              "the job queue (Redis) is not reachable; try again shortly",
                              {"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"internal error ({type(exc).__name__})")
