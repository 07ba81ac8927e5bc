"""The Python client, `esrgan upscale --server` and POST /v1/archives against the real service: Redis, a
Celery worker running tiny TensorFlow models and the API under uvicorn (bench/harness.py)."""
from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import threading
import time
import zipfile

import pytest
from PIL import Image

from bench.harness import REPO, ServiceStack, full_stack, png_bytes
from esrgan.client import (AsyncClient, Client, Conflict, InvalidRequest, JobFailed, NotFound, Unauthorized,
                           Unavailable, UnsupportedImage)
from tests.helpers import clean_env

# Archives of at most 4 results and 300 kB: room for three small results, not for two 256x256 noise PNGs.
ARCHIVE_LIMITS = dict(max_archive_jobs=4, max_archive_bytes=300_000)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, models_dir):
    with full_stack(tmp_path_factory.mktemp("client"), models_dir, "c1", **ARCHIVE_LIMITS) as s:
        yield s


@pytest.fixture()
def client(stack):
    with Client(stack.base_url) as c:
        yield c


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size


# --- the client ---------------------------------------------------------------------------------------

def test_submit_wait_download_cancel_delete(stack, client, tmp_path):
    names = {m["name"]: m for m in client.models()}
    assert {"tiny-x2", "tiny-x4"} <= set(names)

    src = tmp_path / "cat.png"
    src.write_bytes(png_bytes(40, 24, seed=3))
    job = client.submit(src, scale=2, tile=8, format="webp")  # several tiles: progress moves
    seen = []
    assert job.wait(progress=lambda j: seen.append((j.status, j.fraction))) is job
    assert job.status == "succeeded" and seen[-1] == ("succeeded", 1.0)
    assert any(status in ("queued", "running") for status, _ in seen)  # called on every poll, not only the end
    assert job.output["width"] == 80 and job.data["model"] == "tiny-x2" and job.data["input"]["name"] == "cat.png"

    saved = job.download(tmp_path)  # a folder: the service's file name
    assert saved == tmp_path / "cat_x2.webp" and size_of(saved.read_bytes()) == (80, 48)
    assert job.download(tmp_path / "named.webp").read_bytes() == saved.read_bytes() == job.result()
    assert not list(tmp_path.glob(".*part"))  # written under a temporary name, then renamed

    # A queued or running job canceled; deleted jobs are gone for the API.
    long = client.submit(png_bytes(160, 120, seed=4), tile=8)
    assert long.cancel().status in ("canceled", "running")
    with pytest.raises(JobFailed) as failed:
        long.wait(timeout=60)
    assert failed.value.job.status == "canceled" and failed.value.code == "canceled"
    long.delete()
    long.delete()  # again: already gone is fine
    with pytest.raises(NotFound) as gone:
        client.job(long.id)
    assert gone.value.status == 404 and gone.value.code == "job_not_found"


def test_errors_are_typed_from_the_envelope(client):
    with pytest.raises(UnsupportedImage) as bad:
        client.submit(b"not a picture at all", filename="notes.png")
    assert bad.value.status == 415 and "notes" not in bad.value.code and bad.value.message
    with pytest.raises(InvalidRequest) as invalid:
        client.submit(png_bytes(8, 8), scale=5)
    assert invalid.value.code == "invalid_option" and "scale must be one of 2, 3, 4" in invalid.value.message
    with pytest.raises(InvalidRequest):
        client.submit(png_bytes(8, 8), model="no-such-model")
    job = client.submit(png_bytes(160, 120), tile=8)
    with pytest.raises(Conflict):  # no result before it succeeds
        job.result()
    job.delete()
    with pytest.raises(TypeError, match="unknown job option"):
        client.submit(png_bytes(8, 8), scael=2)
    # Nothing listening: one error after the retries, not a hang.
    with Client("http://127.0.0.1:9", retries=2, backoff=0.01) as nowhere:
        with pytest.raises(Unavailable) as down:
            nowhere.models()
    assert down.value.status == 0


def test_async_client(stack, tmp_path):
    async def main():
        async with AsyncClient(stack.base_url) as client:
            jobs = await asyncio.gather(*(client.submit(png_bytes(20, 16, seed=i), scale=4) for i in range(3)))
            assert len({j.id for j in jobs}) == 3
            done = await asyncio.gather(*(j.wait(interval=0.2) for j in jobs))
            paths = [await j.download(tmp_path / f"{i}.png") for i, j in enumerate(done)]
            for j in done:
                await j.delete()
            with pytest.raises(NotFound):
                await client.job(done[0].id)
            return paths

    for path in asyncio.run(main()):
        assert size_of(path.read_bytes()) == (80, 64)


def test_429_retry_after_is_waited_out_with_the_same_idempotency_key(stack):
    """A second API on the same Redis with keys on, one job in flight per key, and a queue nobody consumes."""
    keyed = ServiceStack(stack.root / "keyed", stack.env["ESRGAN_MODELS_DIR"], queue="nobody", api_keys="k1",
                         max_jobs_in_flight_per_key=1, queue_retry_after=1)
    keyed.redis_port, keyed.env["REDIS_URL"] = stack.redis_port, stack.redis_url
    keyed.start_api()
    try:
        with pytest.raises(Unauthorized):
            Client(keyed.base_url).models()
        with Client(keyed.base_url, api_key="k1") as client:
            first = client.submit(png_bytes(16, 16))
            # The key is at its limit: the next submission is answered 429 until the first job is canceled.
            threading.Timer(2.5, first.cancel).start()
            started = time.monotonic()
            second = client.submit(png_bytes(16, 16, seed=1), idempotency_key="retry-me")
            assert time.monotonic() - started >= 2.5
            assert second.status == "queued" and second.id != first.id
            assert client.submit(png_bytes(16, 16, seed=1), idempotency_key="retry-me").id == second.id
            second.delete()
            first.delete()
    finally:
        keyed.stop_api()
        stack.redis.delete("nobody")


def test_idempotent_calls_survive_an_api_restart(stack, client):
    job = client.submit(png_bytes(16, 12))
    stack.stop_api()
    threading.Timer(1.0, stack.start_api).start()  # back on the same port a moment later
    with Client(stack.base_url, backoff=0.5, retries=8) as patient:
        assert patient.job(job.id).wait(timeout=60).status == "succeeded"


# --- POST /v1/archives ----------------------------------------------------------------------------------

def test_archive_of_results_and_its_limits(stack, client, tmp_path):
    jobs = [client.submit(png_bytes(12, 10, seed=i), filename=name, scale=2)
            for i, name in enumerate(["a.png", "b.png", "a.png"])]
    for job in jobs:
        job.wait(interval=0.2)
    path = client.archive([j.id for j in jobs] + [jobs[0].id], tmp_path / "all.zip")  # a repeat is one entry
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["a_x2.png", "b_x2.png", "a_x2 (2).png"]
        assert archive.testzip() is None
        for name, job in zip(archive.namelist(), jobs):
            assert archive.read(name) == job.result()
            assert archive.getinfo(name).compress_type == zipfile.ZIP_STORED

    with stack.client() as http:
        def error(body) -> dict:
            r = http.post("/v1/archives", json=body)
            assert r.status_code >= 400 and r.headers["content-type"] == "application/json", r.text
            return {"status": r.status_code, **r.json()["error"]}

        assert error({"job_ids": []})["status"] == 422
        assert error({"job_ids": ["0" * 32]})["code"] == "job_not_found"
        assert error({"job_ids": [f"{i:032x}" for i in range(5)]})["code"] == "limit_exceeded"  # count first
        running = client.submit(png_bytes(160, 120), tile=8)
        assert error({"job_ids": [jobs[0].id, running.id]}) | {"message": ""} == {
            "status": 409, "code": "result_not_ready", "message": ""}
        running.delete()
        big = [client.submit(png_bytes(64, 64, seed=10 + i)) for i in range(2)]  # 256x256 noise: ~200 kB each
        for job in big:
            job.wait(interval=0.2)
        over = error({"job_ids": [j.id for j in big]})
        assert over["status"] == 422 and over["code"] == "limit_exceeded" and "300,000" in over["message"]


# --- esrgan upscale --server ------------------------------------------------------------------------

# Runs the command with TensorFlow, Keras and OpenCV unimportable: what a base install (no [ml]) has.
WITHOUT_ML = ("import sys\nfor name in ('tensorflow', 'keras', 'cv2'): sys.modules[name] = None\n"
              "from esrgan.main import main\nsys.exit(main(sys.argv[1:]))")


def esrgan_base(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_ML, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**clean_env(), **(env or {})})


def test_upscale_server_mirrors_a_folder_without_tensorflow(stack, tmp_path):
    src, out = tmp_path / "photos", tmp_path / "out"
    (src / "trip" / "day2").mkdir(parents=True)
    (src / "a.png").write_bytes(png_bytes(12, 10, seed=1))
    (src / "trip" / "b.jpg").write_bytes(png_bytes(9, 7, seed=2, fmt="JPEG"))
    (src / "trip" / "day2" / "c.webp").write_bytes(png_bytes(8, 8, seed=3, fmt="WEBP"))
    (src / "trip" / "broken.png").write_bytes(png_bytes(8, 8)[:40])

    run = esrgan_base("upscale", src, "-o", out, "--jobs", "2", "--tile", "4", env={"ESRGAN_SERVER": stack.base_url})

    assert run.returncode == 1, run.stderr  # one input is broken
    assert "Traceback" not in run.stderr
    assert f"upscaled 3 of 4 image(s) with tiny-x4 (x4) on {stack.base_url}" in run.stdout and "1 failed" in run.stdout
    assert f"failed: {src / 'trip' / 'broken.png'}:" in run.stderr
    written = {p.relative_to(out).as_posix(): size_of(p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    assert written == {"a.png": (48, 40), "trip/b.jpg": (36, 28), "trip/day2/c.webp": (32, 32)}
    with Image.open(out / "trip" / "b.jpg") as im:
        assert im.format == "JPEG"  # the input's format, as in local mode
    # Each job is deleted once its result is here.
    assert not [k for k in stack.redis.scan_iter("esrgan:job:*")
                if stack.redis.hget(k, "input") and "c.webp" in stack.redis.hget(k, "input")]


def test_upscale_server_options_and_errors(stack, tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(png_bytes(10, 6))
    run = esrgan_base("upscale", src, "-o", tmp_path / "out.jpg", "--server", stack.base_url, "--scale", "2",
                      "--width", "30")
    assert run.returncode == 0, run.stderr
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.format == "JPEG" and im.size == (30, 18)

    refused = esrgan_base("upscale", src, "-o", tmp_path / "x.png", "--server", stack.base_url,
                          "--model", "tiny-x4", "--strength", "0.5")
    assert refused.returncode == 1 and "has no strength setting" in refused.stderr

    nowhere = esrgan_base("upscale", src, "-o", tmp_path / "y.png", "--server", "http://127.0.0.1:9")
    assert nowhere.returncode == 1 and "Traceback" not in nowhere.stderr
    assert nowhere.stderr.startswith("esrgan: error: cannot use the service at http://127.0.0.1:9")

    precision = esrgan_base("upscale", src, "-o", tmp_path / "z.png", "--server", stack.base_url,
                            "--precision", "bfloat16")
    assert precision.returncode == 1 and "do not apply with --server" in precision.stderr


def test_local_upscale_without_tensorflow_says_what_to_install(tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(png_bytes(10, 6))
    run = esrgan_base("upscale", src, "-o", tmp_path / "out.png")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "esrgan: error: upscaling on this machine needs TensorFlow: pip install 'esrgan-service[ml]' "
        "(or use a service: --server URL / ESRGAN_SERVER)"]


def test_upscale_server_takes_videos_and_animations_with_images(stack, tmp_path):
    from bench.clipfactory import animation_bytes, animation_frames, audio_packets, video_bytes, video_frames

    src, out = tmp_path / "mixed", tmp_path / "out"
    (src / "clips").mkdir(parents=True)
    clip = video_bytes(6, 16, 12, rate=6, audio=True)
    (src / "clips" / "clip.mp4").write_bytes(clip)
    (src / "anim.gif").write_bytes(animation_bytes(3, 10, 8, durations=[70, 80, 90]))
    (src / "a.png").write_bytes(png_bytes(8, 8, seed=4))

    run = esrgan_base("upscale", src, "-o", out, "--server", stack.base_url, "--scale", "2")

    assert run.returncode == 0, run.stderr
    assert f"upscaled 3 of 3 image(s) with tiny-x2 (x2) on {stack.base_url}" in run.stdout
    seen = video_frames((out / "clips" / "clip.mp4").read_bytes())
    assert seen["count"] == 6 and seen["sizes"] == {(32, 24)} and seen["times"] == video_frames(clip)["times"]
    assert audio_packets((out / "clips" / "clip.mp4").read_bytes()) == audio_packets(clip)
    anim = animation_frames((out / "anim.gif").read_bytes())
    assert anim["size"] == (20, 16) and anim["durations"] == [70, 80, 90]
    assert size_of((out / "a.png").read_bytes()) == (16, 16)
