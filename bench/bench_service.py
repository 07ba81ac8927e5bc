"""Service benchmark on loopback: the real stack (redis-server, the API under uvicorn, Celery workers).

1. API latency (p50/p99) of job creation and of status polls under concurrent clients (no worker
   running, so the API is measured, not the model competing for the CPU);
2. end-to-end time of one small-image job (upload -> result seen by a polling client) against the
   model's own time on the same image in this process (the service overhead);
3. jobs per minute with one and with two worker processes.

    python bench/bench_service.py [--models-dir DIR --model NAME] [--clients 16 --requests 400 --jobs 24]

Models: the shipped ones by default (else a random-weight RRDBNet of the same size, 6 blocks x 32 features).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from model.artifacts import find_model, list_models  # noqa: E402
from model.settings import SHIPPED_MODELS_DIR  # noqa: E402
from bench.harness import ServiceStack, png_bytes  # noqa: E402


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"p50 {np.percentile(ms, 50):6.1f} ms  p99 {np.percentile(ms, 99):6.1f} ms  (n={len(ms)})"


async def hammer(base: str, clients: int, requests: int, make_request) -> tuple[list[float], int]:
    """``requests`` calls spread over ``clients`` concurrent connections; latencies and non-2xx count."""
    latencies: list[float] = []
    errors = 0
    per_client = requests // clients

    async def one_client(i: int):
        nonlocal errors
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            for j in range(per_client):
                t = time.perf_counter()
                r = await make_request(c, i * per_client + j)
                latencies.append(time.perf_counter() - t)
                errors += r.status_code >= 300

    await asyncio.gather(*(one_client(i) for i in range(clients)))
    return latencies, errors


def api_latency(stack: ServiceStack, clients: int, requests: int) -> list[str]:
    image = png_bytes(64, 64)
    ids: list[str] = []

    async def create(c, i):
        r = await c.post("/v1/jobs", files={"image": ("b.png", image)})
        if r.status_code == 202:
            ids.append(r.json()["id"])
        return r

    async def poll(c, i):
        return await c.get(f"/v1/jobs/{ids[i % len(ids)]}")

    created, e1 = asyncio.run(hammer(stack.base_url, clients, requests, create))
    polled, e2 = asyncio.run(hammer(stack.base_url, clients, requests * 2, poll))
    # Leave no backlog for the throughput runs.
    for job_id in ids:
        httpx.delete(f"{stack.base_url}/v1/jobs/{job_id}")
    stack.redis.delete("default")
    return [f"POST /v1/jobs     {clients} clients: {percentiles(created)}  errors {e1}  "
            f"({len(created) / sum(created) * clients:.0f} req/s)",
            f"GET  /v1/jobs/id  {clients} clients: {percentiles(polled)}  errors {e2}  "
            f"({len(polled) / sum(polled) * clients:.0f} req/s)"]


def run_job(stack: ServiceStack, image: bytes, **options) -> tuple[float, dict]:
    t = time.perf_counter()
    job = stack.submit(image, **options)
    while (job := stack.job(job["id"]))["status"] in ("queued", "running"):
        time.sleep(0.01)
    assert job["status"] == "succeeded", job
    return time.perf_counter() - t, job


def end_to_end(stack: ServiceStack, models_dir: Path, model: str, size: int, repeats: int) -> list[str]:
    from model.engine import load_upscaler
    from model.settings import Settings

    image = png_bytes(size, size, seed=1)
    run_job(stack, image, model=model)  # warm the worker
    runs = [run_job(stack, image, model=model) for _ in range(repeats)]
    e2e = [t for t, _ in runs]
    worker_side = [j["processing_seconds"] for _, j in runs]
    queued = statistics.median(j["queue_seconds"] for _, j in runs)

    upscaler = load_upscaler(model, settings=Settings(models_dir=models_dir))
    pixels = np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8)
    upscaler.upscale(pixels)
    own = []
    for _ in range(repeats):
        t = time.perf_counter()
        upscaler.upscale(pixels)
        own.append(time.perf_counter() - t)
    e, w, m = statistics.median(e2e), statistics.median(worker_side), statistics.median(own)
    return [f"{size}x{size} job, median of {repeats}: end to end {e * 1000:.0f} ms = upload + queue wait "
            f"{queued * 1000:.0f} ms + worker processing {w * 1000:.0f} ms (decode + model + encode + records) "
            f"+ result seen by the poller",
            f"model alone {m * 1000:.0f} ms -> service overhead {(e - m) * 1000:.0f} ms"]


def throughput(stack: ServiceStack, model: str, jobs: int, size: int) -> float:
    image = png_bytes(size, size, seed=2)
    run_job(stack, image, model=model)
    t = time.perf_counter()
    ids = [stack.submit(image, model=model)["id"] for _ in range(jobs)]
    for job_id in ids:
        assert stack.wait_for(job_id, timeout=600)["status"] == "succeeded"
    return jobs / (time.perf_counter() - t) * 60


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, help="default: the shipped models")
    p.add_argument("--model", help="default: the x4 default model")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--jobs", type=int, default=24)
    p.add_argument("--size", type=int, default=64, help="side of the small test image")
    args = p.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench_service_"))
    models_dir = args.models_dir or SHIPPED_MODELS_DIR
    if not list_models(models_dir):
        from bench.harness import make_artifact

        models_dir = root / "models"
        make_artifact(models_dir, "bench-x4", scale=4, params=dict(num_block=6, num_feat=32, num_grow_ch=16),
                      default=True)
    args.model = args.model or find_model(models_dir, None, 4)[1].name
    print(f"cpus: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, model: {args.model}, "
          f"image {args.size}x{args.size}")
    # Workers get every core, like the in-process model measurement they are compared with.
    with ServiceStack(root / "stack", models_dir, single_thread=False, max_queue_depth=100_000) as stack:
        stack.start_redis()
        stack.start_api()
        print("\n## API latency (no worker running)")
        for line in api_latency(stack, args.clients, args.requests):
            print(line)
        stack.start_worker("w1", concurrency=1)
        print("\n## End to end vs the model's own time")
        for line in end_to_end(stack, models_dir, args.model, args.size, repeats=10):
            print(line)
        print("\n## Throughput")
        one = throughput(stack, args.model, args.jobs, args.size)
        print(f"1 worker process : {one:6.1f} jobs/min")
        stack.stop_worker("w1")
        stack.start_worker("w2", concurrency=2)
        two = throughput(stack, args.model, args.jobs, args.size)
        print(f"2 worker processes: {two:6.1f} jobs/min  ({two / one:.2f}x)")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
