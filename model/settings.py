"""One settings object shared by the API, the workers and the CLI.

Environment names are prefixed ``ESRGAN_`` (``ESRGAN_MODELS_DIR``, ``ESRGAN_MAX_INPUT_PIXELS``...),
plus the conventional ``REDIS_URL``. This module must stay free of TensorFlow imports: the API uses it.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SHIPPED_MODELS_DIR = Path(__file__).resolve().parent / "shipped"
# Compute types of the engine and of training (weights stay float32); here so TF-free code can check them
Precision = Literal["float32", "bfloat16", "float16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
# The engine's setting: a precision, or "auto" = the fastest this machine has (model.hardware decides)
PrecisionSetting = Literal["auto", "float32", "bfloat16", "float16"]
PRECISION_SETTINGS: tuple[str, ...] = get_args(PrecisionSetting)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESRGAN_", env_file=".env", extra="ignore")

    # Models
    models_dir: Path = Field(SHIPPED_MODELS_DIR, description="Folder of model artifacts (manifest.json + weights)")
    default_model_x2: str | None = Field(None, description="Model used for scale 2 when none is named")
    default_model_x4: str | None = Field(None, description="Model used for scale 4 when none is named")

    # Inference engine
    tile: int | None = Field(None, ge=0, description="LR tile size; 0 = one pass, unset = automatic from tile_memory_mb")
    tile_pad: int = Field(16, ge=0, description="Overlap margin (LR pixels) around each tile so tiles join without seams")
    tile_memory_mb: int = Field(1536, ge=64, description="Activation memory budget that sizes automatic tiles")
    precision: PrecisionSetting = Field(
        "auto", description="Compute type: auto = bfloat16 on CPUs with AMX/AVX512-BF16 (~2x, -0.02 dB), "
        "float16 on GPUs, else float32")

    # Image limits (checked from the header, before any full decode)
    max_input_pixels: int = Field(16_000_000, ge=1, description="Largest accepted input, width*height")
    max_output_pixels: int = Field(128_000_000, ge=1, description="Largest output, width*height")
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1, description="Largest accepted upload")

    # HTTP requests (slow or oversized clients hold no connection or memory for long)
    max_request_header_bytes: int = Field(64 * 1024, ge=1024, description="Largest request line + headers (431)")
    request_read_timeout: float = Field(30, gt=0, description="Seconds the API waits for the next piece of a "
                                        "request's headers or body before answering 408 and closing")
    upload_timeout: float = Field(600, gt=0, description="Seconds a whole request body may take to arrive (408)")

    # Service
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL", "ESRGAN_REDIS_URL"))
    data_dir: Path = Field(Path("data"), description="Storage for job inputs and outputs (shared by API and workers)")
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
    queue_retry_after: int = Field(10, ge=1, description="Retry-After seconds sent with 429 when the queue is full")

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
