"""Python client of the ESRGAN job service (httpx): submit an image, follow the job, download the result.

    from esrgan.client import Client

    with Client("http://127.0.0.1:8000") as client:
        job = client.submit("photo.jpg", scale=4)
        job.wait(progress=lambda job: print(f"{job.fraction:.0%}"))
        job.download("photo_x4.png")

``AsyncClient`` is the same with ``await``. Errors the service answers come back typed
(``NotFound``, ``InvalidRequest``, ``RateLimited``...; all ``ServiceError``). ``429``/``503`` answers are
waited out as their ``Retry-After`` says; idempotent calls (reads, cancel, delete, and submissions, which
always carry an ``Idempotency-Key``) are also retried after connection errors and ``502``-``504``.
Needs only the base install (no TensorFlow).
"""
from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import httpx

from model.options import JobOptions

TERMINAL = ("succeeded", "failed", "canceled")
# Form fields POST /v1/jobs takes besides the image (README, "HTTP API")
OPTIONS = JobOptions.names()
RETRY_STATUSES = (429, 502, 503, 504)


# --- errors ------------------------------------------------------------------------------------------

class ServiceError(Exception):
    """An error answer of the service: HTTP ``status`` and the envelope's ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None):
        super().__init__(f"{message} ({status} {code})")
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


class Unauthorized(ServiceError):
    """401: the service needs an API key (``Client(api_key=...)``)."""


class NotFound(ServiceError):
    """404: unknown, expired or deleted job."""


class Conflict(ServiceError):
    """409: e.g. the result of a job that has not succeeded."""


class TooLarge(ServiceError):
    """413: the upload is over the service's limit."""


class UnsupportedImage(ServiceError):
    """415: not an image the service reads."""


class InvalidRequest(ServiceError):
    """422: bad options, or pixel limits."""


class RateLimited(ServiceError):
    """429 after the retries: queue full or too many jobs in flight."""


class Unavailable(ServiceError):
    """5xx after the retries, or the service could not be reached (``status`` 0)."""


class JobFailed(Exception):
    """``Job.wait``: the job ended failed or canceled; ``job`` holds its record and ``error``."""

    def __init__(self, job: "Job | AsyncJob"):
        error = job.error or {}
        super().__init__(f"job {job.id} {job.status}: {error.get('message', 'no reason given')}")
        self.job, self.code = job, error.get("code", job.status)


_ERRORS = {401: Unauthorized, 404: NotFound, 409: Conflict, 413: TooLarge, 415: UnsupportedImage,
           422: InvalidRequest, 429: RateLimited}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if re.fullmatch(r"\d+(\.\d+)?", value.strip()) else None


def error_from(response: httpx.Response) -> ServiceError:
    """The typed error for an error answer, from the service's ``{"error": {"code", "message"}}``."""
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", response.text[:200] or response.reason_phrase
    cls = _ERRORS.get(response.status_code, Unavailable if response.status_code >= 500 else ServiceError)
    return cls(response.status_code, code, message, _retry_after(response))


# --- what the sync and async clients share: requests, retry rule, answers ------------------------

class _Policy:
    """When to try a request again and how long to wait first."""

    def __init__(self, retries: int, backoff: float, max_wait: float):
        self.retries, self.backoff, self.max_wait = retries, backoff, max_wait

    def delay(self, attempt: int, idempotent: bool, response: httpx.Response | None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up. ``response`` None means
        the request did not get an answer (connection refused, reset, timed out)."""
        if attempt >= self.retries:
            return None
        if response is None:
            retry = idempotent
        else:  # 429 means the request was not taken: safe to repeat even when not idempotent
            retry = response.status_code == 429 or (idempotent and response.status_code in RETRY_STATUSES)
        if not retry:
            return None
        hinted = _retry_after(response) if response is not None else None
        return min(self.max_wait, hinted if hinted is not None else self.backoff * 2 ** attempt)


def _headers(api_key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "esrgan-client"}
    if api_key:
        headers["X-API-Key"] = api_key
    return headers


def _form(options: dict[str, Any]) -> dict[str, str]:
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TypeError(f"unknown job option(s): {', '.join(sorted(unknown))}; known: {', '.join(OPTIONS)}")
    return {k: ("true" if v else "false") if isinstance(v, bool) else str(v)
            for k, v in options.items() if v is not None}


def _image(image: str | os.PathLike | bytes, filename: str | None) -> tuple[str, bytes]:
    if isinstance(image, (bytes, bytearray, memoryview)):
        return filename or "image", bytes(image)
    path = Path(image)
    return filename or path.name, path.read_bytes()


def _download_target(path: str | os.PathLike, response: httpx.Response, job_id: str) -> Path:
    """``path`` itself, or inside a folder the name the service suggests (its Content-Disposition)."""
    target = Path(path)
    if target.is_dir():
        m = re.search(r'filename="?([^";]+)"?', response.headers.get("content-disposition", ""))
        target = target / Path(m.group(1) if m else f"{job_id}").name
    return target


class _JobData:
    """The job record as the service last answered it (GET /v1/jobs/{id})."""

    data: dict[str, Any]

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def status(self) -> str:
        return self.data["status"]

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def fraction(self) -> float:
        """0..1: tiles done while running, 1 once succeeded."""
        return float((self.data.get("progress") or {}).get("fraction") or 0.0)

    @property
    def output(self) -> dict | None:
        return self.data.get("output")

    @property
    def error(self) -> dict | None:
        return self.data.get("error")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.status} {self.fraction:.0%}>"

    def _poll_done(self, progress, deadline: float | None, timeout: float | None) -> bool:
        """One step of ``wait`` (sync and async alike): report progress; finished yet, or out of time?"""
        if progress:
            progress(self)
        if self.finished:
            return True
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {self.id} still {self.status} after {timeout} s")
        return False

    def _succeeded(self):
        if self.status != "succeeded":
            raise JobFailed(self)
        return self


# --- sync ----------------------------------------------------------------------------------------

class Client:
    """``Client(url, api_key=None)``; use as a context manager or call ``close()``. Thread-safe."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 60.0, retries: int = 5,
                 backoff: float = 0.5, max_wait: float = 60.0, transport: httpx.BaseTransport | None = None):
        self.policy = _Policy(retries, backoff, max_wait)
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=_headers(api_key), timeout=timeout,
                                 transport=transport, follow_redirects=False)

    def request(self, method: str, path: str, *, idempotent: bool = True, **kwargs) -> httpx.Response:
        """One call with the retry policy; a ``ServiceError`` for any error answer."""
        attempt = 0
        while True:
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                wait = self.policy.delay(attempt, idempotent, None)
                if wait is None:
                    raise Unavailable(0, "unreachable", f"{self.http.base_url}: {exc}") from exc
            else:
                if response.is_success:
                    return response
                wait = self.policy.delay(attempt, idempotent, response)
                if wait is None:
                    raise error_from(response)
            time.sleep(wait)
            attempt += 1

    def submit(self, image: str | os.PathLike | bytes, *, filename: str | None = None,
               idempotency_key: str | None = None, **options) -> "Job":
        """Upload an image (a path or its bytes) with job options (``scale=2``, ``format="webp"``...)."""
        name, data = _image(image, filename)
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}  # makes the retry safe
        r = self.request("POST", "/v1/jobs", files={"image": (name, data)}, data=_form(options), headers=headers)
        return Job(self, r.json())

    def job(self, job_id: str) -> "Job":
        return Job(self, self.request("GET", f"/v1/jobs/{job_id}").json())

    def models(self) -> list[dict]:
        return self.request("GET", "/v1/models").json()

    def archive(self, job_ids: list[str], path: str | os.PathLike) -> Path:
        """The results of succeeded jobs as one zip file (POST /v1/archives)."""
        with self.http.stream("POST", "/v1/archives", json={"job_ids": list(job_ids)}) as r:
            if not r.is_success:
                r.read()
                raise error_from(r)
            return _save_stream(r.iter_bytes(), Path(path))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _save_stream(chunks, target: Path) -> Path:
    """Write to a temporary name beside ``target``, renamed when complete: no half files."""
    tmp = target.with_name(f".{target.name}.part")
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


class Job(_JobData):
    def __init__(self, client: Client, data: dict):
        self.client, self.data = client, data

    def refresh(self) -> "Job":
        self.data = self.client.request("GET", f"/v1/jobs/{self.id}").json()
        return self

    def wait(self, progress: Callable[["Job"], Any] | None = None, *, timeout: float | None = None,
             interval: float = 0.5) -> "Job":
        """Poll until the job finishes; ``progress(job)`` after every poll. Raises ``JobFailed`` if it
        failed or was canceled, ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._poll_done(progress, deadline, timeout):
            time.sleep(interval)
            self.refresh()
        return self._succeeded()

    def result(self) -> bytes:
        return self.client.request("GET", f"/v1/jobs/{self.id}/result").content

    def download(self, path: str | os.PathLike) -> Path:
        """Save the result to ``path`` (a file, or a folder: the service's file name inside it)."""
        with self.client.http.stream("GET", f"/v1/jobs/{self.id}/result") as r:
            if not r.is_success:
                r.read()
                raise error_from(r)
            return _save_stream(r.iter_bytes(), _download_target(path, r, self.id))

    def cancel(self) -> "Job":
        self.data = self.client.request("POST", f"/v1/jobs/{self.id}/cancel").json()
        return self

    def delete(self) -> None:
        try:
            self.client.request("DELETE", f"/v1/jobs/{self.id}")
        except NotFound:  # a retried delete whose first try went through
            pass


# --- async ---------------------------------------------------------------------------------------

class AsyncClient:
    """The same as ``Client``, for asyncio: ``async with AsyncClient(url) as client: ...``."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 60.0, retries: int = 5,
                 backoff: float = 0.5, max_wait: float = 60.0, transport: httpx.AsyncBaseTransport | None = None):
        self.policy = _Policy(retries, backoff, max_wait)
        self.http = httpx.AsyncClient(base_url=url.rstrip("/"), headers=_headers(api_key), timeout=timeout,
                                      transport=transport, follow_redirects=False)

    async def request(self, method: str, path: str, *, idempotent: bool = True, **kwargs) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                wait = self.policy.delay(attempt, idempotent, None)
                if wait is None:
                    raise Unavailable(0, "unreachable", f"{self.http.base_url}: {exc}") from exc
            else:
                if response.is_success:
                    return response
                wait = self.policy.delay(attempt, idempotent, response)
                if wait is None:
                    raise error_from(response)
            await asyncio.sleep(wait)
            attempt += 1

    async def submit(self, image: str | os.PathLike | bytes, *, filename: str | None = None,
                     idempotency_key: str | None = None, **options) -> "AsyncJob":
        name, data = _image(image, filename)
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        r = await self.request("POST", "/v1/jobs", files={"image": (name, data)}, data=_form(options),
                               headers=headers)
        return AsyncJob(self, r.json())

    async def job(self, job_id: str) -> "AsyncJob":
        return AsyncJob(self, (await self.request("GET", f"/v1/jobs/{job_id}")).json())

    async def models(self) -> list[dict]:
        return (await self.request("GET", "/v1/models")).json()

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class AsyncJob(_JobData):
    def __init__(self, client: AsyncClient, data: dict):
        self.client, self.data = client, data

    async def refresh(self) -> "AsyncJob":
        self.data = (await self.client.request("GET", f"/v1/jobs/{self.id}")).json()
        return self

    async def wait(self, progress: Callable[["AsyncJob"], Any] | None = None, *, timeout: float | None = None,
                   interval: float = 0.5) -> "AsyncJob":
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._poll_done(progress, deadline, timeout):
            await asyncio.sleep(interval)
            await self.refresh()
        return self._succeeded()

    async def result(self) -> bytes:
        return (await self.client.request("GET", f"/v1/jobs/{self.id}/result")).content

    async def download(self, path: str | os.PathLike) -> Path:
        # A result is at most one image: read it, then write it atomically off the event loop.
        async with self.client.http.stream("GET", f"/v1/jobs/{self.id}/result") as r:
            await r.aread()
            if not r.is_success:
                raise error_from(r)
            target = _download_target(path, r, self.id)
        return await asyncio.to_thread(_save_stream, [r.content], target)

    async def cancel(self) -> "AsyncJob":
        self.data = (await self.client.request("POST", f"/v1/jobs/{self.id}/cancel")).json()
        return self

    async def delete(self) -> None:
        try:
            await self.client.request("DELETE", f"/v1/jobs/{self.id}")
        except NotFound:
            pass
