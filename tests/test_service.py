"""The job service end to end: real Redis, real Celery workers, the API under uvicorn, real HTTP.

One stack (Redis + API + one worker) serves the whole module; tests that need other settings start
their own API process next to it (cheap: no TensorFlow in the API).
"""
from __future__ import annotations

import io
import os
import signal
import socket
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from bench.harness import ServiceStack, png_bytes, send_chunk, start_chunked_upload, wait_until
from model import imageio
from model.hardware import resolve_precision
from tests.helpers import assert_error
from tests.imagefactory import mpo_bytes, pattern, png_rows, tiff_bytes

LIMITS = dict(max_upload_bytes=400_000, max_input_pixels=1_000_000, max_output_pixels=4_000_000)
# Short limits so a job whose worker vanished comes back within seconds (visibility = hard limit + 1).
TIMING = dict(job_time_limit=12, job_kill_grace=2, broker_visibility_timeout=1, broker_restore_interval=1,
              worker_heartbeat_seconds=1, job_max_attempts=2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, models_dir):
    with ServiceStack.running(tmp_path_factory.mktemp("service"), models_dir, **LIMITS, **TIMING) as s:
        yield s


@pytest.fixture()
def client(stack):
    with stack.client() as c:
        yield c


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


# --- the happy path --------------------------------------------------------------------------------

def test_job_goes_from_upload_to_download(stack, client):
    upload = png_bytes(64, 48, seed=1)
    r = client.post("/v1/jobs", files={"image": ("photo.png", upload)}, data={"tile": "32"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] in ("queued", "running") and job["model"] == "tiny-x4"
    assert job["input"] == {"name": "photo.png", "width": 64, "height": 48, "format": "png", "bytes": len(upload),
                            "url": f"/v1/jobs/{job['id']}/input"}

    done = stack.wait_for(job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"]["done"] == done["progress"]["total"] == 4 and done["progress"]["fraction"] == 1.0
    assert done["output"]["width"] == 256 and done["output"]["height"] == 192 and done["output"]["format"] == "png"
    assert done["started_at"] and done["finished_at"] and done["processing_seconds"] > 0
    assert done["queue_seconds"] >= 0 and done["error"] is None
    assert done["precision"] == resolve_precision("auto")  # the default setting, resolved by the worker

    r = client.get(done["output"]["url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert 'filename="photo_x4.png"' in r.headers["content-disposition"]
    assert len(r.content) == done["output"]["bytes"] and decode(r.content).size == (256, 192)
    assert client.get(f"/v1/jobs/{job['id']}/input").content == upload

    # The seed routes serve the same job's files and page.
    assert client.get(f"/uploads/{job['id']}.png").content == upload
    assert client.get(f"/generated/{job['id']}.png").content == r.content
    page = client.get(f"/result/{job['id']}")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]


@pytest.mark.parametrize("options, size, fmt, name", [
    ({"outscale": "2"}, (128, 96), "png", "photo_x2.png"),
    ({"width": "100"}, (100, 75), "png", "photo_100x75.png"),
    ({"scale": "2", "format": "jpg", "quality": "80"}, (128, 96), "jpeg", "photo_x2.jpg"),
    ({"model": "tiny-x2", "format": "webp"}, (128, 96), "webp", "photo_x2.webp"),
])
def test_options_shape_the_output(stack, client, options, size, fmt, name):
    job = stack.submit(png_bytes(64, 48, seed=2), **options)
    done = stack.wait_for(job["id"])
    assert done["status"] == "succeeded", done
    r = client.get(done["output"]["url"])
    image = decode(r.content)
    assert image.size == size and image.format.lower() == fmt
    assert f'filename="{name}"' in r.headers["content-disposition"]


def test_ensemble_option_runs_the_eight_passes(stack, client):
    upload = png_bytes(64, 48, seed=6)
    plain, best = (stack.wait_for(stack.submit(upload, tile=32, **extra)["id"]) for extra in ({}, {"ensemble": "true"}))
    assert plain["status"] == best["status"] == "succeeded", (plain, best)
    assert plain["options"]["ensemble"] is False and best["options"]["ensemble"] is True
    assert best["progress"]["total"] == 8 * plain["progress"]["total"] == 32  # 4 tiles x 8 flips/rotations
    a, b = (np.asarray(decode(client.get(j["output"]["url"]).content)).astype(int) for j in (plain, best))
    assert a.shape == b.shape and 0 < np.abs(a - b).mean() < 20  # the same picture, not the same pixels


def test_form_upload_redirects_to_the_result_page(stack, client):
    for route in ("/upload", "/enhance"):
        r = client.post(route, files={"image": ("a.png", png_bytes(32, 32))}, data={"scale": "2"})
        assert r.status_code == 303, r.text
        job_id = r.headers["location"].removeprefix("/result/")
        assert stack.wait_for(job_id)["status"] == "succeeded"
    assert client.get("/").status_code == 200
    assert client.get("/docs").status_code == 200
    assert "/v1/jobs" in client.get("/openapi.json").json()["paths"]


def test_progress_moves(stack, client):
    job = stack.submit(png_bytes(256, 256, seed=3), tile=32, format="jpg")  # 64 tiles
    seen = set()
    while (j := stack.job(job["id"]))["status"] in ("queued", "running"):
        if j["status"] == "running" and j["progress"]["total"]:
            seen.add(j["progress"]["done"])
        time.sleep(0.02)
    assert j["status"] == "succeeded", j
    partial = {d for d in seen if 0 < d < 64}
    assert len(partial) >= 2, f"progress seen: {sorted(seen)}"
    assert j["progress"] == {"done": 64, "total": 64, "fraction": 1.0}


def test_cancel_queued_and_running_jobs(stack, client):
    running = stack.submit(png_bytes(360, 360, seed=4), tile=32)  # 144 tiles: ~2 s on OpenVINO
    queued = stack.submit(png_bytes(32, 32, seed=5))
    stack.wait_for(running["id"], ("running",))

    r = client.post(f"/v1/jobs/{queued['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "canceled"
    wait_until(lambda: stack.job(running["id"])["progress"]["done"] > 0, 60, "the running job made no progress")
    assert client.post(f"/v1/jobs/{running['id']}/cancel").status_code == 200

    stopped = stack.wait_for(running["id"])
    assert stopped["status"] == "canceled" and stopped["error"]["code"] == "canceled"
    assert stopped["progress"]["done"] < stopped["progress"]["total"], "the job ran to the end"
    assert_error(client.get(f"/v1/jobs/{running['id']}/result"), 409, "result_not_ready")

    # The worker moves on; the canceled queued job is skipped, never run.
    after = stack.submit(png_bytes(32, 32, seed=6))
    assert stack.wait_for(after["id"])["status"] == "succeeded"
    never = stack.job(queued["id"])
    assert never["status"] == "canceled" and never["started_at"] is None
    assert stack.record(queued["id"])["attempts"] == "0"


def test_delete_removes_the_job_and_its_files(stack, client):
    job = stack.wait_for(stack.submit(png_bytes(32, 32))["id"])
    files = [stack.data_dir / "uploads" / f"{job['id']}.png", stack.data_dir / "generated" / f"{job['id']}.png"]
    assert all(f.is_file() for f in files)
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert not any(f.exists() for f in files)
    for method, path in [("GET", ""), ("GET", "/result"), ("GET", "/input"), ("POST", "/cancel"), ("DELETE", "")]:
        assert_error(client.request(method, f"/v1/jobs/{job['id']}{path}"), 404, "job_not_found")


def test_idempotency_key_returns_the_same_job(stack, client):
    image = png_bytes(32, 32, seed=7)
    first = stack.submit(image, headers={"Idempotency-Key": "abc-1"})
    again = stack.submit(image, headers={"Idempotency-Key": "abc-1"})
    other = stack.submit(image, headers={"Idempotency-Key": "abc-2"})
    assert first["id"] == again["id"] != other["id"]


def test_models_health_and_metrics(stack, client):
    models = {m["name"]: m for m in client.get("/v1/models").json()}
    assert set(models) == {"tiny-x2", "tiny-x4"}
    assert models["tiny-x4"]["scale"] == 4 and models["tiny-x4"]["default"] is True
    assert models["tiny-x4"]["num_params"] > 0 and models["tiny-x4"]["strength"] is None
    assert models["tiny-x4"]["precision"] == resolve_precision("auto")
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["workers"]["count"] >= 1
    stack.wait_for(stack.submit(png_bytes(32, 32))["id"])
    text = client.get("/metrics").text
    assert 'esrgan_http_requests_total{method="POST",route="/v1/jobs",status="202"}' in text
    assert 'esrgan_jobs_total{status="succeeded"}' in text and "esrgan_queue_depth" in text
    assert "esrgan_redis_up 1.0" in text and "esrgan_workers 1.0" in text
    ran = [line for line in text.splitlines() if line.startswith("esrgan_jobs_by_precision_total{")]
    assert ran and f'precision="{resolve_precision("auto")}"' in ran[0] and float(ran[0].split()[-1]) >= 1
    count = [line for line in text.splitlines() if line.startswith("esrgan_job_processing_seconds_count")]
    assert count and float(count[0].split()[-1]) >= 1


def test_job_over_its_time_limit_is_stopped_and_reported(stack):
    gradient = Image.linear_gradient("L").resize((1000, 1000)).convert("RGB")  # compresses well: under the upload limit
    buf = io.BytesIO()
    gradient.save(buf, "PNG")
    # ~1000 tiles, 8 times over (self-ensemble): far over 12 s even on OpenVINO (~1000 plain tiles took ~10 s)
    job = stack.submit(buf.getvalue(), model="tiny-x2", outscale=1, tile=32, ensemble="true")
    done = stack.wait_for(job["id"], timeout=60)
    assert done["status"] == "failed" and done["error"]["code"] == "time_limit", done
    assert "time limit" in done["error"]["message"]
    assert TIMING["job_time_limit"] - 1 < done["processing_seconds"] < TIMING["job_time_limit"] + 10
    assert 0 < done["progress"]["done"] < done["progress"]["total"]


def test_files_of_expired_jobs_are_swept(stack):
    from jobs.records import JobStore
    from jobs.settings import Settings
    from jobs.backends import open_storage

    kept = stack.wait_for(stack.submit(png_bytes(32, 32))["id"])
    expired = stack.wait_for(stack.submit(png_bytes(32, 32))["id"])
    stack.redis.delete(f"esrgan:job:{expired['id']}")  # what the retention TTL does
    settings = Settings(data_dir=stack.data_dir, redis_url=stack.redis_url)
    removed = open_storage(settings).sweep(JobStore(settings).exists, min_age=0)
    assert removed >= 2
    assert not list(stack.data_dir.glob(f"*/{expired['id']}.*"))
    assert len(list(stack.data_dir.glob(f"*/{kept['id']}.*"))) == 2


# --- bad input ------------------------------------------------------------------------------------

def _big_png(width, height) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height)).save(buf, "PNG")  # flat: tiny file, many pixels
    return buf.getvalue()


def _heif() -> bytes:
    return b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 40


@pytest.mark.parametrize("data, status, code", [
    (b"this is not an image", 415, "unsupported_format"),
    (b"", 415, "bad_image"),
    (png_bytes(32, 32)[:20], 415, None),  # truncated header
    (b"GIF89a" + b"\x00" * 20, 415, None),
    (_heif(), 415, "unsupported_format"),  # (GIFs are animations now: tests/test_video_service.py)
    (_big_png(1100, 1000), 422, "limit_exceeded"),  # input pixels
])
def test_bad_images_are_refused(client, data, status, code):
    assert_error(client.post("/v1/jobs", files={"image": ("x.png", data)}), status, code)


def _gray16_with_colour_key() -> tuple[bytes, int]:
    gray = pattern(16, 20, channels=1, dtype=np.uint16)
    gray[4:12, 6:14] = 12345  # a transparent block, big enough to stay transparent when upscaled
    return png_rows(gray, trns=(12345).to_bytes(2, "big")), 12345


@pytest.mark.parametrize("name, data, size, channels, dtype", [
    ("orient6.tiff", tiff_bytes(pattern(12, 20), orientation=6), (12, 20), 3, np.uint8),
    ("orient8-16.tiff", tiff_bytes(pattern(12, 20, dtype=np.uint16), orientation=8), (12, 20), 3, np.uint16),
    ("pair.mpo", mpo_bytes(pattern(12, 20), pattern(12, 20, seed=1)), (20, 12), 3, np.uint8),
    ("key.png", _gray16_with_colour_key()[0], (20, 16), 4, np.uint16),
    ("dot.png", png_rows(np.array([[[250, 10, 120]]], np.uint8)), (1, 1), 3, np.uint8),
])
def test_unusual_images_come_out_the_right_size_depth_and_channels(stack, client, name, data, size, channels, dtype):
    job = stack.wait_for(stack.submit(data, filename=name)["id"])
    assert job["status"] == "succeeded", job
    assert (job["input"]["width"], job["input"]["height"]) == size
    out = imageio.decode(client.get(f"/v1/jobs/{job['id']}/result").content)
    assert out.pixels.shape[:2] == (size[1] * 4, size[0] * 4)
    assert (out.pixels.shape[2] if out.pixels.ndim == 3 else 1) == channels and out.pixels.dtype == dtype
    if name == "key.png":
        assert out.pixels[22:42, 30:50, 3].max() == 0 and out.pixels[:8, :8, 3].min() == 65535  # (edges blur)


def test_truncated_png_fails_its_job_instead_of_coming_out_black(stack):
    """IHDR says 40 rows, the image data holds 4: the job fails (it used to succeed with black rows)."""
    job = stack.wait_for(stack.submit(png_rows(pattern(40, 30), rows=4))["id"])
    assert job["status"] == "failed" and job["error"]["code"] == "bad_image", job
    assert "truncated PNG" in job["error"]["message"]


@pytest.mark.parametrize("options, code", [
    ({"model": "no-such-model"}, "unknown_model"),
    ({"model": "../tiny-x4"}, "unknown_model"),
    ({"model": "tiny-x4", "scale": "2"}, "unknown_model"),
    ({"scale": "5"}, "invalid_option"),
    ({"scale": "3"}, "unknown_model"),  # x3 is allowed; the tiny models have no x3 default
    ({"outscale": "-1"}, "invalid_request"),
    ({"outscale": "abc"}, "invalid_request"),
    ({"outscale": "2", "width": "100"}, "invalid_option"),
    ({"tile": "-1"}, "invalid_request"),
    ({"ensemble": "maybe"}, "invalid_request"),
    ({"strength": "0.5"}, "invalid_option"),  # the tiny models have no interpolation
    ({"strength": "2"}, "invalid_request"),
    ({"format": "gif"}, "invalid_option"),
    ({"quality": "0"}, "invalid_request"),
    ({"width": "3000", "height": "3000"}, "limit_exceeded"),  # output pixels
])
def test_bad_options_are_refused(client, options, code):
    r = client.post("/v1/jobs", files={"image": ("x.png", png_bytes(32, 32))}, data=options)
    assert_error(r, 422, code)


def test_output_pixel_limit_uses_the_model_scale(client):
    r = client.post("/v1/jobs", files={"image": ("x.png", _big_png(600, 600))})  # x4 = 5.76 MP > 4 MP
    assert "limit" in assert_error(r, 422, "limit_exceeded")["message"]


def test_missing_image_field(client):
    assert_error(client.post("/v1/jobs", data={"scale": "4"}), 422, "invalid_request")


def test_upload_over_the_limit_is_cut_off_while_receiving(stack, client):
    too_big = b"\x89PNG\r\n\x1a\n" + b"\x00" * 600_000
    # Declared length over the limit: refused before the body is read.
    assert_error(client.post("/v1/jobs", files={"image": ("x.png", too_big)}), 413, "upload_too_large")

    # Streamed without a length (chunked): we send 1 MB of a body that never ends, then wait. A server that
    # buffered the whole body first would wait with us; the limit answers 413 (or, when the server closes
    # while our unread bytes are still in its socket, the kernel resets the connection) mid-stream.
    answer = b""
    with socket.create_connection(("127.0.0.1", stack.api_port), timeout=10) as sock:
        try:
            start_chunked_upload(sock)
            for _ in range(10):
                send_chunk(sock, b"\0" * 100_000)
            while b"upload_too_large" not in answer and (data := sock.recv(65536)):
                answer += data
        except (ConnectionResetError, BrokenPipeError):
            pass
    # socket.timeout (the server waiting for the rest of the body) would have failed the test above.
    if answer:
        assert answer.startswith(b"HTTP/1.1 413") and b'"upload_too_large"' in answer, answer[:300]
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("path", [
    "/uploads/..%2F..%2Fetc%2Fpasswd", "/generated/../../etc/passwd", "/uploads/%2e%2e%2fredis%2fappendonly.aof",
    "/generated/notanid.png", "/uploads/0123456789abcdef0123456789abcdef.png",
    "/v1/jobs/..%2F..%2Fetc%2Fpasswd", "/v1/jobs/0123456789abcdef0123456789abcdef/result",
    "/result/0123456789abcdef0123456789abcdef", "/static/..%2F..%2Fmodel%2Fsettings.py",
])
def test_names_outside_storage_do_not_resolve(client, path):
    r = client.get(path)
    assert r.status_code == 404, r.text
    assert "root:" not in r.text and "BaseSettings" not in r.text


def test_result_page_of_an_unknown_job_is_a_page(client):
    r = client.get("/result/0123456789abcdef0123456789abcdef")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "Job not found" in r.text and 'href="/"' in r.text


def test_stored_name_must_match_the_job(stack, client):
    job = stack.wait_for(stack.submit(png_bytes(32, 32))["id"])
    assert client.get(f"/uploads/{job['id']}.png").status_code == 200
    assert client.get(f"/uploads/{job['id']}.jpg").status_code == 404


def test_queue_limit_and_api_keys(stack):
    """A second API on the same Redis, with keys on, a queue nobody consumes and a small depth."""
    other = ServiceStack(stack.root / "keys", stack.env["ESRGAN_MODELS_DIR"], **LIMITS, queue="nobody",
                         max_queue_depth=3, api_keys="alpha,beta", max_jobs_in_flight_per_key=2)
    other.redis_port = stack.redis_port
    other.env["REDIS_URL"] = stack.redis_url
    other.start_api()
    try:
        image = {"image": ("x.png", png_bytes(32, 32))}
        with other.client() as c:
            assert_error(c.post("/v1/jobs", files=image), 401, "unauthorized")
            assert_error(c.get("/v1/models", headers={"X-API-Key": "wrong"}), 401)
            alpha, beta = {"X-API-Key": "alpha"}, {"X-API-Key": "beta"}
            ids = [c.post("/v1/jobs", files=image, headers=alpha).json()["id"] for _ in range(2)]
            r = c.post("/v1/jobs", files=image, headers=alpha)
            assert_error(r, 429, "too_many_jobs")
            assert int(r.headers["retry-after"]) > 0
            # One key cannot see, fetch, cancel or delete another's jobs.
            for method, suffix in [("GET", ""), ("GET", "/input"), ("POST", "/cancel"), ("DELETE", "")]:
                assert_error(c.request(method, f"/v1/jobs/{ids[0]}{suffix}", headers=beta), 404)
            assert c.get(f"/v1/jobs/{ids[0]}", headers=alpha).json()["status"] == "queued"
            assert c.post("/v1/jobs", files=image, headers=beta).status_code == 202  # queue: 3
            r = c.post("/v1/jobs", files=image, headers=beta)
            assert_error(r, 429, "queue_full")
            assert "retry-after" in r.headers
    finally:
        other.stop_api()
        stack.redis.delete("nobody")


def test_redis_down_answers_503_quickly(stack):
    down = ServiceStack(stack.root / "down", stack.env["ESRGAN_MODELS_DIR"], redis_timeout=1)
    down.start_api()  # its Redis port has nothing listening
    try:
        with down.client() as c:
            t = time.monotonic()
            assert_error(c.post("/v1/jobs", files={"image": ("x.png", png_bytes(32, 32))}), 503, "redis_unavailable")
            assert_error(c.get("/v1/jobs/0123456789abcdef0123456789abcdef"), 503, "redis_unavailable")
            assert time.monotonic() - t < 10
            assert c.get("/healthz").status_code == 200
            ready = c.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["redis"]["ok"] is False
    finally:
        down.stop_api()


# --- workers dying --------------------------------------------------------------------------------

def test_job_that_kills_its_process_every_time_is_failed_after_the_attempt_limit(stack):
    """Each delivery's job process is SIGKILLed mid-job (as a poison input would do it); the worker
    redelivers it until the attempt limit, then the job fails with a clear error and the queue moves on."""
    job = stack.submit(png_bytes(360, 360, seed=9), tile=32)  # 144 tiles: ~2 s on OpenVINO
    for attempt in range(1, TIMING["job_max_attempts"] + 1):
        def running_attempt():
            record = stack.record(job["id"])
            return record.get("attempts") == str(attempt) and int(record.get("done") or 0) > 0

        wait_until(running_attempt, 120, f"attempt {attempt} did not start")
        os.kill(int(stack.record(job["id"])["worker"].rsplit(":", 1)[1]), signal.SIGKILL)

    failed = stack.wait_for(job["id"], timeout=120)
    assert failed["status"] == "failed" and failed["error"]["code"] == "worker_lost", failed
    assert f"died {TIMING['job_max_attempts']} times" in failed["error"]["message"]
    assert stack.wait_for(stack.submit(png_bytes(32, 32))["id"])["status"] == "succeeded"


def test_worker_killed_mid_job_finishes_on_another_worker(stack):
    """Runs last: it leaves the stack with whichever worker survived."""
    stack.start_worker("w2")
    job = stack.submit(png_bytes(360, 360, seed=8), tile=32)  # 144 tiles: ~2 s on OpenVINO
    wait_until(lambda: int(stack.record(job["id"]).get("done") or 0) > 3, 60, "the job did not start")
    victim = stack.record(job["id"])["worker"].split("@")[0]
    stack.kill_worker(victim)

    done = stack.wait_for(job["id"], timeout=90)
    assert done["status"] == "succeeded", done
    record = stack.record(job["id"])
    assert record["attempts"] == "2" and not record["worker"].startswith(victim + "@")
    assert decode(httpx.get(stack.base_url + done["output"]["url"]).content).size == (1440, 1440)
