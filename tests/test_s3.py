"""S3 storage against a real S3-speaking server (moto's standalone server, tests/s3_server.py): the API,
Redis and Celery workers as separate processes, each with its own local data folder and no shared one."""
from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from bench.harness import ServiceStack, png_bytes, wait_until
from tests.helpers import assert_error
from tests.s3_server import S3Server

BUCKET, PREFIX = "esrgan-jobs", "jobs"
STORAGE_URL = f"s3://{BUCKET}/{PREFIX}"
# Short S3 timeouts so an outage is reported in seconds, not minutes.
S3_SETTINGS = dict(s3_timeout=2, s3_max_attempts=2, max_input_pixels=1_000_000, max_output_pixels=4_000_000,
                   worker_heartbeat_seconds=1)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with S3Server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory, models_dir, s3):
    root = tmp_path_factory.mktemp("s3-service")
    with ServiceStack(root, models_dir, **S3_SETTINGS) as s:
        s.env.update(s3.env(STORAGE_URL))
        s.start_redis()
        s.start_api(data_dir=root / "api-data")
        s.start_worker("w1", data_dir=root / "w1-data")
        yield s


def local_image_files(stack) -> list:
    return [p for p in stack.root.rglob("*") if p.is_file() and p.suffix in (".png", ".jpg", ".webp", ".tiff")]


def test_a_job_end_to_end_keeps_its_files_in_the_bucket(stack, s3):
    upload = png_bytes(40, 30, seed=1)
    job = stack.wait_for(stack.submit(upload, format="webp")["id"])
    assert job["status"] == "succeeded", job
    r = stack.http.get(job["output"]["url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    assert int(r.headers["content-length"]) == len(r.content) == job["output"]["bytes"]
    assert Image.open(io.BytesIO(r.content)).size == (160, 120)
    assert 'filename="photo_x4.webp"' in r.headers["content-disposition"]
    assert stack.http.get(f"/v1/jobs/{job['id']}/input").content == upload
    # The job's input and output are objects in the bucket, and no image file was written locally.
    keys = s3.keys(BUCKET)
    assert f"{PREFIX}/uploads/{job['id']}.png" in keys and f"{PREFIX}/generated/{job['id']}.webp" in keys
    assert local_image_files(stack) == []
    ready = stack.http.get("/readyz").json()
    assert ready["checks"]["storage"] == {"ok": True, "url": STORAGE_URL}


def test_delete_removes_the_objects(stack, s3):
    job = stack.wait_for(stack.submit(png_bytes(16, 16, seed=2))["id"])
    assert stack.http.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert not [k for k in s3.keys(BUCKET) if job["id"] in k]


def test_sweep_removes_objects_of_expired_jobs(stack, s3, monkeypatch):
    from jobs.records import JobStore
    from jobs.settings import Settings
    from jobs.backends import open_storage

    kept, expired = (stack.wait_for(stack.submit(png_bytes(16, 16, seed=s))["id"]) for s in (3, 4))
    stack.redis.delete(f"esrgan:job:{expired['id']}")  # what the retention TTL does
    for name, value in s3.env(STORAGE_URL).items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None, redis_url=stack.redis_url)
    assert open_storage(settings).sweep(JobStore(settings).exists, min_age=0) == 2
    keys = s3.keys(BUCKET)
    assert not [k for k in keys if expired["id"] in k] and len([k for k in keys if kept["id"] in k]) == 2


def test_clip_parts_are_objects_kept_until_the_clip_is_joined(stack, s3, monkeypatch):
    from jobs.records import JobStore
    from jobs.settings import Settings
    from jobs.backends import open_storage
    from jobs.storage import JobParts
    from bench.clipfactory import audio_packets, video_bytes, video_frames

    for name, value in s3.env(STORAGE_URL).items():
        monkeypatch.setenv(name, value)
    storage = open_storage(Settings(_env_file=None, redis_url=stack.redis_url))
    parts = JobParts(storage, "ab" * 16)
    for index in (0, 1, 12):
        parts.write(index, f"part {index}".encode())
    assert parts.done() == {0, 1, 12} and parts.read(12) == b"part 12"
    assert f"{PREFIX}/parts/{'ab' * 16}.12.part" in s3.keys(BUCKET)
    # A job record that is gone (expired) takes its parts with it at the next sweep.
    assert storage.sweep(JobStore(Settings(_env_file=None, redis_url=stack.redis_url)).exists, min_age=0) >= 3
    assert parts.done() == set()

    clip = video_bytes(10, 32, 24, audio=True)
    job = stack.wait_for(stack.submit(clip, filename="c.mp4", scale=2)["id"])
    assert job["status"] == "succeeded", job
    data = stack.http.get(job["output"]["url"]).content
    assert video_frames(data)["count"] == 10 and audio_packets(data) == audio_packets(clip)
    keys = s3.keys(BUCKET)
    assert f"{PREFIX}/generated/{job['id']}.mp4" in keys and not [k for k in keys if "/parts/" in k]


def test_presigned_downloads_redirect_to_the_bucket(stack, s3, monkeypatch):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from jobs.settings import Settings

    job = stack.wait_for(stack.submit(png_bytes(24, 20, seed=5), filename="cat.png")["id"])
    for name, value in s3.env(STORAGE_URL).items():
        monkeypatch.setenv(name, value)
    app = create_app(Settings(_env_file=None, redis_url=stack.redis_url, s3_presign=True))
    with TestClient(app) as client:
        r = client.get(f"/v1/jobs/{job['id']}/result", follow_redirects=False)
        assert r.status_code == 307, r.text
        url = r.headers["location"]
        assert url.startswith(f"{s3.endpoint_url}/{BUCKET}/{PREFIX}/generated/{job['id']}.png?")
        direct = httpx.get(url, timeout=10)
        assert direct.status_code == 200 and direct.headers["content-type"] == "image/png"
        assert direct.headers["content-disposition"] == "attachment; filename*=utf-8''cat_x4.png"
        assert direct.content == stack.http.get(job["output"]["url"]).content
        stack.redis.hset(f"esrgan:job:{job['id']}", "input", '{"format": "jpeg", "width": 24, "height": 20}')
        assert_error(client.get(f"/v1/jobs/{job['id']}/input", follow_redirects=False), 404, "input_missing")


def test_a_second_worker_with_its_own_empty_data_folder_finishes_jobs(stack, s3):
    w2_data = stack.root / "w2-data"
    stack.start_worker("w2", data_dir=w2_data)
    stack.stop_worker("w1")  # only w2 is left to take jobs
    jobs = [stack.submit(png_bytes(32, 24, seed=10 + i), scale=2) for i in range(2)]
    for job in jobs:
        done = stack.wait_for(job["id"])
        assert done["status"] == "succeeded", done
        assert stack.record(job["id"])["worker"].startswith("w2@")
        assert Image.open(io.BytesIO(stack.http.get(done["output"]["url"]).content)).size == (64, 48)
    assert not w2_data.exists() or not any(w2_data.rglob("*"))
    assert local_image_files(stack) == []


def test_s3_stopped_mid_run_and_restarted(stack, s3):
    """Runs last (module order). S3 goes away while a job runs: uploads answer 503 with the error envelope,
    /readyz says storage is down, the running job ends failed with a clear error and no result object;
    after S3 is back nothing stored before is lost and new jobs succeed."""
    before = stack.wait_for(stack.submit(png_bytes(20, 20, seed=20))["id"])
    before_bytes = stack.http.get(before["output"]["url"]).content
    running = stack.submit(png_bytes(560, 560, seed=21), scale=2, tile=32)  # 306 tiles: a few seconds
    wait_until(lambda: int(stack.record(running["id"]).get("done") or 0) >= 2, 120, "the job did not start")
    s3.stop()
    try:
        r = stack.http.post("/v1/jobs", files={"image": ("x.png", png_bytes(16, 16))})
        error = assert_error(r, 503, "storage_unavailable")
        assert STORAGE_URL in error["message"] and r.headers["retry-after"]
        ready = stack.http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["storage"]["ok"] is False
        failed = stack.wait_for(running["id"], timeout=180)
        assert failed["status"] == "failed" and failed["error"]["code"] == "storage_error", failed
        assert "S3" in failed["error"]["message"] and STORAGE_URL in failed["error"]["message"]
    finally:
        s3.start()
    # Nothing half-written: the failed job has its input and no result; what was stored before is intact.
    keys = s3.keys(BUCKET)
    assert f"{PREFIX}/uploads/{running['id']}.png" in keys
    assert not [k for k in keys if k.startswith(f"{PREFIX}/generated/{running['id']}")]
    assert_error(stack.http.get(f"/v1/jobs/{running['id']}/result"), 409, "result_not_ready")
    assert stack.http.get(before["output"]["url"]).content == before_bytes
    after = stack.wait_for(stack.submit(png_bytes(16, 16, seed=22))["id"])
    assert after["status"] == "succeeded", after
    assert stack.http.get("/readyz").json()["checks"]["storage"]["ok"] is True


def test_storage_url_is_checked():
    from pydantic import ValidationError

    from jobs.settings import Settings

    for bad in ("s3:///no-bucket", "file://relative/path", "ftp://host/x"):
        with pytest.raises(ValidationError, match="file:///absolute/path or s3://bucket/prefix"):
            Settings(_env_file=None, storage_url=bad)
