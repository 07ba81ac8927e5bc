"""Service settings: the engine's settings (``model.settings``) plus Redis, storage, queues, keys and limits.

One object for the API, the workers and ``esrgan serve``/``esrgan worker``. Environment names are
prefixed ``ESRGAN_`` (``ESRGAN_STORAGE_URL``, ``ESRGAN_QUEUE``...), plus the conventional ``REDIS_URL``
and, for S3 storage, the standard AWS variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_DEFAULT_REGION``), which boto3 reads itself.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator

from model.settings import Settings as EngineSettings
from model.settings import get_settings as get_engine_settings


class Settings(EngineSettings):
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1, description="Largest accepted upload")

    # HTTP requests (slow or oversized clients hold no connection or memory for long)
    max_request_header_bytes: int = Field(64 * 1024, ge=1024, description="Largest request line + headers (431)")
    request_read_timeout: float = Field(30, gt=0, description="Seconds the API waits for the next piece of a "
                                        "request's headers or body before answering 408 and closing")
    upload_timeout: float = Field(600, gt=0, description="Seconds a whole request body may take to arrive (408)")

    # Where things are
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL", "ESRGAN_REDIS_URL"))
    data_dir: Path = Field(Path("data"), description="Local folder: job files with file:// storage (the default), "
                           "and the embedded Redis of `esrgan serve`")
    storage_url: str | None = Field(
        None, description="Where job files live: file:///abs/path (default: data_dir) or s3://bucket/prefix")
    s3_endpoint_url: str | None = Field(
        None, description="S3 API endpoint for non-AWS servers (MinIO, Ceph RGW), e.g. http://minio:9000")
    s3_presign: bool = Field(False, description="Downloads redirect to a presigned S3 URL instead of streaming "
                             "through the API (clients must reach the S3 endpoint)")
    s3_presign_seconds: int = Field(300, ge=1, le=7 * 24 * 3600, description="Lifetime of a presigned URL")
    s3_timeout: float = Field(5.0, gt=0, description="S3 connect/read timeout, seconds")
    s3_max_attempts: int = Field(3, ge=1, description="Tries of one S3 call before it is reported as failed")

    # Jobs
    job_ttl_seconds: int = Field(24 * 3600, ge=60, description="How long job records and files are kept")
    job_time_limit: int = Field(900, ge=1, description="Time limit of one job, seconds: it is stopped and failed "
                                "(soft limit), its process killed job_kill_grace seconds later (hard limit)")
    job_max_attempts: int = Field(3, ge=1, description="Deliveries before a job that kills its worker is failed")
    max_queue_depth: int = Field(1000, ge=1, description="Queued jobs over which new uploads get 429")
    api_keys: str | None = Field(None, description="Comma-separated API keys; unset = no authentication")
    max_jobs_in_flight_per_key: int = Field(20, ge=1)
    queue: str = Field("default", description="Celery queue this worker consumes / jobs go to (e.g. gpu)")
    job_kill_grace: int = Field(30, ge=1, description="Seconds after job_time_limit (soft) before the job's process is killed")
    broker_visibility_timeout: int | None = Field(
        None, ge=1, description="Seconds before an unacknowledged job is redelivered; unset = hard time limit + 60")
    broker_restore_interval: int = Field(10, ge=1, description="Seconds between sweeps that redeliver jobs of dead workers")
    redis_timeout: float = Field(3.0, gt=0, description="Redis connect/read timeout, seconds (the API answers 503 after it)")
    worker_redis_wait: float = Field(120, ge=0, description="Seconds a worker keeps retrying Redis (restarting) "
                                     "to record a job's progress and outcome")
    worker_concurrency: int = Field(1, ge=1, description="Job processes per worker")
    worker_start_timeout: float = Field(300, gt=0, description="Seconds a new job process may take to import "
                                        "TensorFlow and load the default models before the worker replaces it")
    worker_heartbeat_seconds: float = Field(5.0, gt=0, description="How often a worker announces itself in Redis")
    cleanup_interval_seconds: int = Field(600, ge=1, description="How often expired jobs' files are removed")
    max_archive_jobs: int = Field(100, ge=1, description="Most results in one zip (POST /v1/archives)")
    max_archive_bytes: int = Field(2 * 1024**3, ge=1, description="Largest total of results in one zip")
    webhook_secret: str | None = Field(None, description="Key of the webhooks' HMAC-SHA256 signature; unset = "
                                       "callback_url is refused")
    webhook_allow_private: bool = Field(False, description="Allow callback URLs on loopback/private/link-local "
                                        "addresses (off: SSRF)")
    webhook_timeout: float = Field(5.0, gt=0, description="Seconds one webhook attempt may take")
    webhook_attempts: int = Field(5, ge=1, description="Webhook attempts before giving up")
    webhook_backoff: float = Field(2.0, gt=0, description="Seconds before the 2nd attempt; doubles after each")
    queue_retry_after: int = Field(10, ge=1, description="Retry-After seconds sent with 429 when the queue is full")

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, url: str | None) -> str | None:
        if not url:
            return None
        parts = urlsplit(url)
        if not ((parts.scheme == "file" and parts.path.startswith("/") and not parts.netloc)
                or (parts.scheme == "s3" and parts.netloc)):
            raise ValueError(f"must be file:///absolute/path or s3://bucket/prefix, not {url!r}")
        return url

    @property
    def hard_time_limit(self) -> int:
        return self.job_time_limit + self.job_kill_grace

    @property
    def visibility_timeout(self) -> int:
        # Must exceed the hard limit, or a job still running would be delivered a second time.
        if self.broker_visibility_timeout is None:
            return self.hard_time_limit + 60
        return max(self.broker_visibility_timeout, self.hard_time_limit + 1)


@lru_cache
def get_settings() -> Settings:
    return Settings()


def apply_overrides(**env: object) -> None:
    """Command-line values become ESRGAN_ settings for this process and the processes it starts."""
    for name, value in env.items():
        if value is not None:
            os.environ[f"ESRGAN_{name.upper()}"] = str(value)
    clear_cache()


def clear_cache() -> None:
    """Forget the cached settings (after the process changed its environment), engine's included."""
    get_settings.cache_clear()
    get_engine_settings.cache_clear()
