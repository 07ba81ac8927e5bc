"""The job task: read the job record and input, run the model, store the output, finish the record.

TensorFlow is imported only inside the worker's child processes (after fork: it is not fork-safe), where
each process keeps the models it has loaded for every later job.
"""
from __future__ import annotations

import os
import socket
import threading
import time

import redis
from celery import Task, signals
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.utils.log import get_logger

from api.schemas import JobOut
from jobs.queue import TASK_NAME, WEBHOOK_TASK, make_celery
from jobs import webhooks
from jobs.records import CANCELED, FAILED, RUNNING, SUCCEEDED, JobGone, JobStore, TransitionRefused, now_iso
from jobs.settings import get_settings
from jobs.backends import open_storage
from jobs.storage import GENERATED, UPLOADS, FileMissing, JobParts, Storage, StorageError
from model.errors import Canceled, ESRGANError, ImageError
from model.hardware import resolve_precision

log = get_logger("esrgan.worker")
settings = get_settings()
app = make_celery(settings)
_state: dict = {}  # per process: the store (Redis connection) and storage, made after fork


def store() -> JobStore:
    if "store" not in _state:  # waits out a Redis restart rather than losing a job's outcome
        _state["store"] = JobStore(settings, wait=settings.worker_redis_wait)
    return _state["store"]


def storage() -> Storage:
    if "storage" not in _state:
        _state["storage"] = open_storage(settings)
    return _state["storage"]


def upscaler(name: str, strength: float | None):
    """The engine keeps each loaded model for the life of the process."""
    from model.engine import load_upscaler

    return load_upscaler(name, strength=strength, settings=settings)


@signals.worker_process_init.connect
def _after_fork(**_):
    """Fresh Redis connections in the child, then the default models so the first job is not slow."""
    _state.clear()
    from model.artifacts import list_models

    loaded = []
    for manifest in list_models(settings.model_dirs):
        if manifest.default:
            try:
                loaded.append(f"{manifest.name} on {upscaler(manifest.name, None).backend}")
            except ESRGANError as exc:  # a broken artifact fails its jobs, not the worker
                log.error("cannot preload model %s: %s", manifest.name, exc)
    from model.engine import precision_line

    log.warning("job process %d ready (preloaded: %s; precision %s)", os.getpid(), ", ".join(loaded) or "none",
                precision_line(settings.precision, settings.backend))


class JobTask(Task):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Runs in the parent process when the hard time limit killed the job's process.
        if isinstance(exc, TimeLimitExceeded) and args:
            _fail(args[0], None, "time_limit",
                  f"the job ran over the hard time limit ({settings.hard_time_limit} s) and was stopped")
            _drop_parts(args[0])  # a clip's kept chunks: the job has ended
            _notify(args[0])


def _fail(job_id: str, attempt: int | None, code: str, message: str) -> None:
    try:
        store().finish(job_id, FAILED, attempt, error={"code": code, "message": message})
    except (JobGone, TransitionRefused):
        pass


@app.task(name=TASK_NAME, bind=True, base=JobTask)
def run_job(self, job_id: str) -> str:
    outcome = process(job_id, worker=self.request.hostname or socket.gethostname())
    _notify(job_id)  # also for "done": a job canceled while queued is finished when its message comes
    return outcome


# --- webhooks: the finished job's JSON to its callback_url, signed, retried with backoff ------------

def _notify(job_id: str) -> None:
    """Start the webhook of a finished job that asked for one and has none under way or delivered."""
    try:
        job = store().get(job_id)
        if job is not None and job.finished and job.options.callback_url and job.webhook is None:
            deliver_webhook.apply_async((job_id, 1), queue=settings.queue, routing_key=settings.queue)
    except redis.RedisError as exc:
        log.warning("job %s: webhook not started: %s", job_id, exc)


@app.task(name=WEBHOOK_TASK)
def deliver_webhook(job_id: str, attempt: int) -> str:
    """One attempt; the next is a new task ``webhook_backoff * 2**(attempt-1)`` s later, so a slow
    receiver never holds a job process between attempts."""
    jobs = store()
    job = jobs.get(job_id)
    if job is None or not job.options.callback_url:
        return "gone"
    payload = JobOut.public(job)  # the job as GET /v1/jobs/{id} shows it
    result = webhooks.deliver(job.options.callback_url, payload, settings.webhook_secret or "",
                              timeout=settings.webhook_timeout, allow_private=settings.webhook_allow_private)
    last = attempt >= settings.webhook_attempts
    status = "delivered" if result["ok"] else "failed" if last else "retrying"
    jobs.record_webhook(job, {"status": status, "attempts": attempt, "status_code": result["status_code"],
                              "error": result["error"], "at": now_iso()})
    if status == "retrying":
        deliver_webhook.apply_async((job_id, attempt + 1), countdown=settings.webhook_backoff * 2 ** (attempt - 1),
                                    queue=settings.queue, routing_key=settings.queue)
    elif status == "failed":
        log.warning("job %s: webhook to %s failed after %d attempts: %s", job_id, job.options.callback_url,
                    attempt, result["error"])
    return status


def process(job_id: str, worker: str) -> str:
    jobs, files = store(), storage()
    verdict, attempt = jobs.begin(job_id, f"{worker}:{os.getpid()}")
    if verdict in ("gone", "done"):
        return verdict  # deleted, canceled while queued, or a duplicate delivery of a finished job
    if verdict == "exhausted":
        _fail(job_id, None, "worker_lost",
              f"the job's worker died {attempt - 1} times while running it (the input may crash the model); "
              "it will not be retried")
        return FAILED
    job = jobs.get(job_id)
    started = time.monotonic()
    lost = threading.Event()  # set when this attempt no longer owns the job (canceled, deleted, superseded)

    def progress(done: int, total: int) -> None:
        try:
            jobs.progress(job_id, attempt, done, total)
        except (JobGone, TransitionRefused):
            lost.set()
        except redis.RedisError as exc:  # Redis away for a moment: progress is not worth failing the job
            log.warning("job %s: progress not recorded: %s", job_id, exc)

    def cancel() -> bool:
        try:
            return lost.is_set() or jobs.cancel_requested(job_id)
        except redis.RedisError:
            return False

    clip = bool(job.input.get("kind"))  # a video or animation
    try:
        opts = job.options
        data = files.read(UPLOADS, job_id, job.input["format"])
        if clip:
            encoded, output = _upscale_clip(job, data, progress, cancel)
        else:
            encoded, output = _upscale_image(job, data, progress, cancel)
        files.write(GENERATED, job_id, opts.format, encoded)
        try:
            jobs.finish(job_id, SUCCEEDED, attempt, output=output, processing_seconds=time.monotonic() - started,
                        precision=upscaler(job.model, opts.strength).precision)
        except (JobGone, TransitionRefused):
            files.delete(GENERATED, job_id, opts.format)  # deleted or canceled meanwhile: keep no orphan
            return CANCELED
        return SUCCEEDED
    except Canceled:
        try:
            jobs.finish(job_id, CANCELED, attempt, error={"code": "canceled", "message": "canceled by request"},
                        allowed=(RUNNING,))
        except (JobGone, TransitionRefused):
            pass
        return CANCELED
    except SoftTimeLimitExceeded:
        _fail(job_id, attempt, "time_limit", f"the job ran over its time limit ({settings.job_time_limit} s)")
    except ESRGANError as exc:
        _fail(job_id, attempt, exc.code, str(exc))
    except FileMissing as exc:
        _fail(job_id, attempt, "input_missing", str(exc))
    except StorageError as exc:  # the result is written whole or not at all: nothing half-written is served
        _fail(job_id, attempt, "storage_error", f"cannot read or write the job's files: {exc}")
    except OSError as exc:
        _fail(job_id, attempt, "storage_error", f"cannot read or write the job's files: {exc.strerror or exc}")
    except MemoryError:
        _fail(job_id, attempt, "out_of_memory", "the image needs more memory than this worker has")
    except Exception as exc:  # a bug: report it on the job, keep the worker serving
        log.exception("job %s failed", job_id)
        _fail(job_id, attempt, "internal_error", f"{type(exc).__name__}: {exc}")
    finally:
        if clip:
            _drop_parts(job_id)
    return FAILED


def _upscale_image(job, data: bytes, progress, cancel) -> tuple[bytes, dict]:
    from model import imageio

    opts = job.options
    decoded = imageio.decode(data, max_pixels=settings.max_input_pixels)
    result = upscaler(job.model, opts.strength).run(decoded.pixels, opts, progress=progress, cancel=cancel)
    encoded = imageio.encode(result, opts.format, quality=opts.quality or imageio.DEFAULT_QUALITY,
                             icc_profile=decoded.icc_profile)
    height, width = result.shape[:2]
    return encoded, {"width": width, "height": height, "format": opts.format, "bytes": len(encoded)}


def _upscale_clip(job, data: bytes, progress, cancel) -> tuple[bytes, dict]:
    """Frames in chunks, each chunk's result kept in job storage: a retry resumes after the finished ones."""
    from model import frames, video

    clip = video.probe_clip(data)
    if clip is None:
        raise ImageError("the stored input is not a readable video or animation")
    result = frames.upscale_clip(data, clip, upscaler(job.model, job.options.strength), job.options,
                                 JobParts(storage(), job.id), chunk_frames=settings.clip_chunk_frames,
                                 progress=progress, cancel=cancel)
    if result.resumed_at:
        log.warning("job %s resumed at frame %d of %d", job.id, result.resumed_at, result.frames)
    return result.data, {"width": result.width, "height": result.height, "format": job.options.format,
                         "bytes": len(result.data), "frames": result.frames, "resumed_at_frame": result.resumed_at}


def _drop_parts(job_id: str) -> None:
    """A clip's parts go once its job has ended (succeeded, failed, canceled, deleted); while another
    attempt owns it, or after a worker died mid-clip, they stay for the retry."""
    try:
        job = store().get(job_id)
        if job is None or job.finished:
            JobParts(storage(), job_id).clear()
    except (redis.RedisError, StorageError) as exc:
        log.warning("job %s: parts not removed (the file sweep will): %s", job_id, exc)


# --- heartbeat: lets /readyz know a worker is alive -----------------------------------------------

@signals.worker_ready.connect
def _start_heartbeat(sender=None, **_):
    name = getattr(sender, "hostname", None) or socket.gethostname()
    stop = _state["heartbeat_stop"] = threading.Event()
    beat_store = JobStore(settings)

    def beat():
        while not stop.is_set():
            try:
                beat_store.heartbeat(name, {"pid": os.getpid(), "queue": settings.queue,
                                            "concurrency": settings.worker_concurrency,
                                            "precision": resolve_precision(settings.precision)})
            except Exception as exc:  # Redis away: try again next beat
                log.warning("heartbeat failed: %s", exc)
            stop.wait(settings.worker_heartbeat_seconds)
        try:
            beat_store.forget_worker(name)
        except Exception:
            pass

    threading.Thread(target=beat, name="esrgan-heartbeat", daemon=True).start()


@signals.worker_shutdown.connect
def _stop_heartbeat(**_):
    if "heartbeat_stop" in _state:
        _state["heartbeat_stop"].set()
