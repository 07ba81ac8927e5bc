"""Faults done for real to a running service: Redis restarted, the API restarted, storage unwritable or
full, a worker stopped gracefully. Each time the jobs in flight end succeeded or failed with a reason;
none is stuck or lost, and the service keeps answering.

(A worker SIGKILLed mid-job, a job that kills its worker every time and the time limit are in
tests/test_service.py.)
"""
from __future__ import annotations

import signal
import shutil
import time

import pytest

from bench.harness import ServiceStack, png_bytes, wait_until

LIMITS = dict(max_upload_bytes=2_000_000, max_input_pixels=1_000_000, max_output_pixels=16_000_000)
# Short limits so a job whose worker vanished comes back within seconds (visibility = hard limit + 1).
TIMING = dict(job_time_limit=60, job_kill_grace=2, broker_visibility_timeout=1, broker_restore_interval=1,
              worker_heartbeat_seconds=1, job_max_attempts=3, redis_timeout=1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, models_dir):
    with ServiceStack(tmp_path_factory.mktemp("faults"), models_dir, **LIMITS, **TIMING) as s:
        s.start_redis(appendonly=True)  # persistence on, as in docker-compose.yml
        s.start_api()
        s.start_worker("w1")
        yield s


def slow_job(stack, seed: int) -> dict:
    return stack.submit(png_bytes(448, 448, seed=seed), tile=32)  # 196 tiles: ~2 s on OpenVINO, more on TF


def wait_running(stack, job_id: str, tiles: int = 2) -> None:
    wait_until(lambda: int(stack.record(job_id).get("done") or 0) >= tiles, 60, "the job did not start running")


def assert_all_succeed(stack, ids, timeout: float = 120) -> list[dict]:
    done = [stack.wait_for(i, timeout=timeout) for i in ids]
    assert [j["status"] for j in done] == ["succeeded"] * len(ids), done
    return done


def test_redis_restart_keeps_queued_and_running_jobs(stack):
    running = slow_job(stack, seed=1)
    queued = [stack.submit(png_bytes(48, 48, seed=s)) for s in (2, 3)]
    wait_running(stack, running["id"])
    assert stack.record(queued[0]["id"])["status"] == "queued"

    stack.stop_redis()  # SIGTERM: redis-server writes its append-only file and exits
    with stack.client() as c:
        t = time.monotonic()
        r = c.post("/v1/jobs", files={"image": ("x.png", png_bytes(32, 32))})
        assert r.status_code == 503 and r.json()["error"]["code"] == "redis_unavailable", r.text
        assert "Redis" in r.json()["error"]["message"] and r.headers["retry-after"]
        r = c.get(f"/v1/jobs/{running['id']}")
        assert r.status_code == 503 and r.json()["error"]["code"] == "redis_unavailable", r.text
        assert time.monotonic() - t < 5  # an answer, not a hang
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 503
    time.sleep(2)  # down long enough for the worker to notice

    stack.start_redis(appendonly=True)  # same port, same data folder
    assert_all_succeed(stack, [running["id"], *(j["id"] for j in queued)])
    # API and worker reconnected by themselves: a new job goes through, readiness is back.
    assert_all_succeed(stack, [stack.submit(png_bytes(32, 32, seed=4))["id"]])
    wait_until(lambda: stack.http.get("/readyz").status_code == 200, 20, "not ready after the restart")


def test_api_restart_loses_nothing(stack):
    running = slow_job(stack, seed=5)
    queued = stack.submit(png_bytes(48, 48, seed=6))
    wait_running(stack, running["id"])
    stack.stop_api()
    stack.start_api()
    done = assert_all_succeed(stack, [running["id"], queued["id"]])
    assert stack.http.get(done[0]["output"]["url"]).status_code == 200


def test_unwritable_storage_fails_the_job_clearly_and_the_service_stays_up(stack):
    generated = stack.data_dir / "generated"
    shutil.rmtree(generated)
    generated.write_bytes(b"a file where the output folder should be")
    try:
        failed = stack.wait_for(stack.submit(png_bytes(32, 32, seed=7))["id"])
        assert failed["status"] == "failed" and failed["error"]["code"] == "storage_error", failed
        assert "cannot read or write" in failed["error"]["message"]
        ready = stack.http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["storage"]["ok"] is False

        uploads = stack.data_dir / "uploads"
        uploads.rename(stack.data_dir / "uploads.away")
        uploads.write_bytes(b"")
        r = stack.http.post("/v1/jobs", files={"image": ("x.png", png_bytes(32, 32))})
        assert r.status_code == 503 and r.json()["error"]["code"] == "storage_unavailable", r.text
        assert stack.http.get("/healthz").status_code == 200
    finally:
        for name in ("generated", "uploads"):
            path = stack.data_dir / name
            if path.is_file():
                path.unlink()
        if (stack.data_dir / "uploads.away").exists():
            (stack.data_dir / "uploads.away").rename(stack.data_dir / "uploads")
        generated.mkdir(exist_ok=True)
    assert_all_succeed(stack, [stack.submit(png_bytes(32, 32, seed=8))["id"]])


def test_sigterm_lets_the_running_job_finish_and_keeps_the_queued_one(stack):
    """SIGTERM to the worker's main process only, as `docker stop` does."""
    running = slow_job(stack, seed=11)
    queued = stack.submit(png_bytes(48, 48, seed=12))
    wait_running(stack, running["id"])
    worker = stack.workers["w1"]
    worker.signal(signal.SIGTERM, group=False)
    worker.popen.wait(120)  # warm shutdown: waits for the running job
    assert stack.job(running["id"])["status"] == "succeeded", stack.job(running["id"])
    assert stack.job(queued["id"])["status"] == "queued"  # still in Redis, not taken by the leaving worker
    stack.workers.pop("w1").stop()
    stack.start_worker("w2")
    assert_all_succeed(stack, [queued["id"]])


def test_full_disk_fails_the_job_clearly(stack):
    """Runs last. A worker under RLIMIT_FSIZE: writes past the limit fail with EFBIG, as on a full disk.
    The limit sits above what its own log file needs and below the output's size."""
    for name in list(stack.workers):
        stack.stop_worker(name)
    stack.start_worker("full", prefix=("prlimit", "--fsize=1000000"))
    job = stack.submit(png_bytes(200, 200, seed=9), format="png")  # 800x800 noise: a ~1.9 MB PNG out
    failed = stack.wait_for(job["id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "storage_error", failed
    assert "too large" in failed["error"]["message"].lower()
    assert not list((stack.data_dir / "generated").glob(f"*{job['id']}*"))  # no half-written file left
    assert_all_succeed(stack, [stack.submit(png_bytes(32, 32, seed=10))["id"]])  # small outputs still fit
