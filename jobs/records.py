"""Job records in Redis: the single source of truth for a job's status, progress, timestamps and errors.

One hash per job (``esrgan:job:{id}``) with a retention TTL. Every status change goes through one Lua
script, so a change is atomic and only allowed from the statuses it names (a canceled job cannot be
marked running by a late delivery; a worker whose attempt was superseded cannot overwrite the job).
The same script keeps the counters that /metrics reports. API and workers both use this module; it
imports neither TensorFlow nor FastAPI. A job's options are stored as the JSON of its resolved
``model.options.JobOptions`` and read back typed (``Job.options``).
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from model.options import JobOptions

from .settings import Settings

PREFIX = "esrgan:"
JOB_ID = re.compile(r"^[0-9a-f]{32}$")  # 128 random bits, hex: unguessable, safe in file names
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED = "queued", "running", "succeeded", "failed", "canceled"
TERMINAL = (SUCCEEDED, FAILED, CANCELED)
STATUSES = (QUEUED, RUNNING) + TERMINAL
PROCESSING_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)

# KEYS[1] job hash, KEYS[2] stats hash. ARGV: allowed statuses (comma list), new status, attempt fence
# ('' = none), then field/value pairs to set. Returns the old status, or an error string.
_TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {err='gone'} end
local allowed = ',' .. ARGV[1] .. ','
if not string.find(allowed, ',' .. cur .. ',', 1, true) then return {err='status:' .. cur} end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[3] then return {err='superseded'} end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[2] ~= cur then
  redis.call('HSET', KEYS[1], 'status', ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'now:' .. cur, -1)
  redis.call('HINCRBY', KEYS[2], 'now:' .. ARGV[2], 1)
  redis.call('HINCRBY', KEYS[2], 'total:' .. ARGV[2], 1)
end
return cur
"""

# Start of one delivery: count the attempt, refuse finished jobs, fail a job over its attempt limit.
# ARGV: max attempts, worker name, now (ISO). Returns {verdict, attempts}.
_BEGIN = """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {'gone', 0} end
if cur ~= 'queued' and cur ~= 'running' then return {'done', 0} end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if n > tonumber(ARGV[1]) then return {'exhausted', n} end
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[2], 'started_at', ARGV[3], 'done', 0, 'total', 0)
if cur ~= 'running' then
  redis.call('HINCRBY', KEYS[2], 'now:' .. cur, -1)
  redis.call('HINCRBY', KEYS[2], 'now:running', 1)
  redis.call('HINCRBY', KEYS[2], 'total:running', 1)
end
return {'run', n}
"""


# Admission under back-pressure, atomic so a burst of uploads cannot overshoot the depth: waiting
# messages plus uploads admitted but not yet enqueued. KEYS[1] queue list, KEYS[2] admitting counter.
# ARGV: depth, counter TTL (a crashed API's admissions expire). Returns 1 admitted, 0 full.
_ADMIT = """
local n = redis.call('LLEN', KEYS[1]) + math.max(0, tonumber(redis.call('GET', KEYS[2]) or '0'))
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""

class JobGone(Exception):
    """The job record no longer exists (deleted, or expired)."""


class TransitionRefused(Exception):
    """The job is not in a status that allows the change (or another attempt owns it)."""


class IdempotencyKeyReused(Exception):
    """An Idempotency-Key already bound to a request with a different body."""


def new_job_id() -> str:
    return secrets.token_hex(16)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def owner_of(api_key: str | None) -> str:
    """A stable, non-secret tag for an API key ('' when keys are off)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else ""


def connect(settings: Settings, wait: float = 0) -> redis.Redis:
    """``wait``: seconds to keep retrying while Redis is away (workers, so a job's outcome survives a
    Redis restart); 0 retries once at once (a pooled connection that went stale reconnects), then fails:
    the API answers 503 instead of hanging."""
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), max(1, int(wait))) if wait else Retry(NoBackoff(), 1)
    return redis.Redis.from_url(
        redis_url(settings), decode_responses=True, socket_connect_timeout=settings.redis_timeout,
        socket_timeout=settings.redis_timeout, health_check_interval=30, retry=retry)


def redis_url(settings: Settings) -> str:
    return settings.redis_url or "redis://127.0.0.1:6379/0"


@dataclass
class Job:
    """A job record as stored (strings decoded to their types)."""

    id: str
    status: str
    owner: str
    model: str
    options: JobOptions
    input: dict[str, Any]
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    done: int = 0
    total: int = 0
    attempts: int = 0
    worker: str | None = None
    output: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    cancel_requested: bool = False
    precision: str | None = None  # the compute type the model ran in (set when the job finishes)
    webhook: dict[str, Any] | None = None  # delivery of the callback_url: status, attempts, last answer

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> "Job":
        def loads(key):
            return json.loads(h[key]) if h.get(key) else None

        return cls(
            id=h["id"], status=h["status"], owner=h.get("owner", ""), model=h.get("model", ""),
            options=JobOptions.model_validate(loads("options") or {}), input=loads("input") or {}, created_at=h["created_at"],
            started_at=h.get("started_at") or None, finished_at=h.get("finished_at") or None,
            done=int(h.get("done") or 0), total=int(h.get("total") or 0), attempts=int(h.get("attempts") or 0),
            worker=h.get("worker") or None, output=loads("output"), error=loads("error"),
            cancel_requested=h.get("cancel") == "1", precision=h.get("precision") or None,
            webhook=loads("webhook"),
        )

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


class JobStore:
    def __init__(self, settings: Settings, client: redis.Redis | None = None, wait: float = 0):
        self.settings = settings
        self.r = client or connect(settings, wait)
        self._transition = self.r.register_script(_TRANSITION)
        self._begin = self.r.register_script(_BEGIN)
        self._admit = self.r.register_script(_ADMIT)

    # --- keys ---------------------------------------------------------------------------------
    @staticmethod
    def key(job_id: str) -> str:
        return f"{PREFIX}job:{job_id}"

    STATS = f"{PREFIX}stats"

    @staticmethod
    def inflight_key(owner: str) -> str:
        return f"{PREFIX}inflight:{owner or '-'}"

    # --- reads --------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        if not JOB_ID.match(job_id or ""):
            return None
        h = self.r.hgetall(self.key(job_id))
        return Job.from_hash(h) if h else None

    def cancel_requested(self, job_id: str) -> bool:
        return self.r.hget(self.key(job_id), "cancel") == "1"

    def admit(self, queue: str, depth: int) -> bool:
        """Take a place in ``queue`` if it holds fewer than ``depth`` jobs; give it back with
        ``admitted`` once the job is enqueued (or was not)."""
        return bool(self._admit(keys=[queue, f"{PREFIX}admitting:{queue}"], args=[depth, 60]))

    def admitted(self, queue: str) -> None:
        self.r.decr(f"{PREFIX}admitting:{queue}")

    def in_flight(self, owner: str) -> int:
        return self.r.scard(self.inflight_key(owner))

    def stats(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.r.hgetall(self.STATS).items()}

    # --- writes -------------------------------------------------------------------------------
    def create(self, job_id: str, *, owner: str, options: JobOptions, input: dict,
               idempotency_key: str | None = None) -> Job:
        ttl = self.settings.job_ttl_seconds
        record = {"id": job_id, "status": QUEUED, "owner": owner, "model": options.model,
                  "options": options.model_dump_json(),
                  "input": json.dumps(input), "created_at": now_iso(), "attempts": 0, "done": 0, "total": 0}
        if idempotency_key:  # released with the job
            record["idem"] = self._idempotency_key(owner, idempotency_key)
        with self.r.pipeline() as p:
            p.hset(self.key(job_id), mapping=record)
            p.expire(self.key(job_id), ttl)
            p.sadd(self.inflight_key(owner), job_id)
            p.expire(self.inflight_key(owner), ttl)
            p.hincrby(self.STATS, f"now:{QUEUED}", 1)
            p.hincrby(self.STATS, f"total:{QUEUED}", 1)
            p.execute()
        return Job.from_hash({k: str(v) for k, v in record.items()})

    def transition(self, job_id: str, allowed: tuple[str, ...], status: str, attempt: int | None = None,
                   **fields: Any) -> str:
        """Atomically move the job to ``status`` if it is in one of ``allowed`` (and, with ``attempt``,
        only if that attempt still owns it). Returns the old status."""
        args = [",".join(allowed), status, "" if attempt is None else str(attempt)]
        for k, v in fields.items():
            args += [k, v if isinstance(v, str) else json.dumps(v)]
        try:
            old = self._transition(keys=[self.key(job_id), self.STATS], args=args)
        except redis.ResponseError as exc:
            if "gone" in str(exc):
                raise JobGone(job_id) from None
            raise TransitionRefused(str(exc)) from None
        if status in TERMINAL:
            self.r.srem(self.inflight_key(self.r.hget(self.key(job_id), "owner") or ""), job_id)
        return old

    def begin(self, job_id: str, worker: str) -> tuple[str, int]:
        """Start one delivery: ('run', attempt), ('done', 0) for a finished job, ('gone', 0) for a
        deleted one, or ('exhausted', n) when the attempt limit is passed."""
        verdict, n = self._begin(keys=[self.key(job_id), self.STATS],
                                 args=[self.settings.job_max_attempts, worker, now_iso()])
        return verdict, int(n)

    def progress(self, job_id: str, attempt: int, done: int, total: int) -> None:
        """Record tiles done; raises (JobGone / TransitionRefused) once this attempt no longer owns the job."""
        self.transition(job_id, (RUNNING,), RUNNING, attempt, done=str(done), total=str(total))

    def finish(self, job_id: str, status: str, attempt: int | None = None, *, output: dict | None = None,
               error: dict | None = None, processing_seconds: float | None = None, precision: str | None = None,
               allowed: tuple[str, ...] = (QUEUED, RUNNING)) -> None:
        fields: dict[str, Any] = {"finished_at": now_iso()}
        if output is not None:
            fields["output"] = output
        if error is not None:
            fields["error"] = error
        if precision is not None:
            fields["precision"] = precision
        self.transition(job_id, allowed, status, attempt, **fields)
        if processing_seconds is not None:
            self.observe_processing(processing_seconds, precision)

    def record_webhook(self, job: Job, delivery: dict) -> None:
        """Note a webhook attempt on the finished job (nothing if it was deleted meanwhile)."""
        try:
            self.transition(job.id, TERMINAL, job.status, webhook=delivery)
        except (JobGone, TransitionRefused):
            pass

    def request_cancel(self, job_id: str) -> str:
        """Cancel: a queued job becomes canceled now (its message is skipped when delivered); a running
        job is flagged and stops between tiles; a finished job is left as it is. Returns its status."""
        try:
            self.finish(job_id, CANCELED, error={"code": "canceled", "message": "canceled by request"},
                        allowed=(QUEUED,))
            return CANCELED
        except TransitionRefused:
            pass
        try:
            self.transition(job_id, (RUNNING,), RUNNING, cancel="1")
        except TransitionRefused:
            pass  # already finished
        return self._status(job_id) or CANCELED

    def _status(self, job_id: str) -> str | None:
        return self.r.hget(self.key(job_id), "status")

    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        if job is None:
            return
        idem = self.r.hget(self.key(job_id), "idem")
        bound_here = idem and (self.r.get(idem) or "").split(" ")[0] == job_id
        with self.r.pipeline() as p:
            p.delete(self.key(job_id))
            if bound_here:  # the key may be used again for a new request
                p.delete(idem)
            p.srem(self.inflight_key(job.owner), job_id)
            if not job.finished:
                p.hincrby(self.STATS, f"now:{job.status}", -1)
            p.execute()

    def observe_processing(self, seconds: float, precision: str | None = None) -> None:
        with self.r.pipeline() as p:
            if precision:  # jobs by the compute type they ran in, for /metrics
                p.hincrby(self.STATS, f"precision:{precision}", 1)
            p.hincrbyfloat(self.STATS, "processing:sum", seconds)
            p.hincrby(self.STATS, "processing:count", 1)
            for bound in PROCESSING_BUCKETS:
                if seconds <= bound:
                    p.hincrby(self.STATS, f"processing:le:{bound}", 1)
            p.execute()

    # --- idempotency --------------------------------------------------------------------------
    @staticmethod
    def _idempotency_key(owner: str, key: str) -> str:
        return f"{PREFIX}idem:{owner or '-'}:{hashlib.sha256(key.encode()).hexdigest()}"

    # A key's value is "<job id> <fingerprint of the request>": a retry must be the same request.
    @staticmethod
    def _bound_job(bound: str, fingerprint: str) -> str:
        job_id, _, bound_fingerprint = bound.partition(" ")
        if bound_fingerprint != fingerprint:
            raise IdempotencyKeyReused(job_id)
        return job_id

    def find_idempotent(self, owner: str, key: str, fingerprint: str) -> Job | None:
        """The job ``key`` is bound to, or None; IdempotencyKeyReused if it was bound for another request."""
        bound = self.r.get(self._idempotency_key(owner, key))
        return self.get(self._bound_job(bound, fingerprint)) if bound else None

    def claim_idempotency_key(self, owner: str, key: str, job_id: str, fingerprint: str) -> str | None:
        """Bind ``key`` to ``job_id``; returns the job id already bound to it (IdempotencyKeyReused if for
        another request), or None if this call won."""
        rkey = self._idempotency_key(owner, key)
        if self.r.set(rkey, f"{job_id} {fingerprint}", nx=True, ex=self.settings.job_ttl_seconds):
            return None
        bound = self.r.get(rkey)
        return self._bound_job(bound, fingerprint) if bound else None

    def release_idempotency_key(self, owner: str, key: str) -> None:
        self.r.delete(self._idempotency_key(owner, key))

    # --- workers ------------------------------------------------------------------------------
    def heartbeat(self, worker: str, info: dict) -> None:
        self.r.set(f"{PREFIX}worker:{worker}", json.dumps(info),
                   ex=max(2, int(self.settings.worker_heartbeat_seconds * 3)))

    def forget_worker(self, worker: str) -> None:
        self.r.delete(f"{PREFIX}worker:{worker}")

    def live_workers(self) -> list[str]:
        return [k[len(PREFIX) + len("worker:"):] for k in self.r.scan_iter(f"{PREFIX}worker:*", count=100)]

    def exists(self, job_id: str) -> bool:
        return bool(JOB_ID.match(job_id)) and bool(self.r.exists(self.key(job_id)))


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from ``start`` to ``end`` (or to now when ``end`` is None)."""
    if not start:
        return None
    t1 = parse_time(end) if end else datetime.now(timezone.utc)
    return round((t1 - parse_time(start)).total_seconds(), 3)
