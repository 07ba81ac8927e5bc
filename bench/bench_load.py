"""Load on loopback against the real stack (redis-server, one API process under uvicorn, Celery workers).

1. Load: ``--jobs`` clients at once (bounded by ``--concurrency``), each uploading a small image and
   polling its status until the job ends. Prints throughput, p50/p99 of uploads and of polls, the 5xx
   count (must be 0), lost jobs (not succeeded by the deadline; must be 0) and the API's RSS before,
   after a warm-up round and after the load (flat = no growth per request).
2. Back-pressure: a second API on the same Redis whose queue nobody consumes, with a small
   ``max_queue_depth``: a burst of uploads gets 202 up to the depth, then 429 with Retry-After, and the
   queue stops growing.

    python bench/bench_load.py [--jobs 300 --concurrency 100 --workers 2 --depth 20]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from model.settings import SHIPPED_MODELS_DIR  # noqa: E402
from bench.harness import TERMINAL, ServiceStack, png_bytes  # noqa: E402


def pct(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"p50 {np.percentile(ms, 50):7.1f} ms  p99 {np.percentile(ms, 99):7.1f} ms  (n={len(ms)})"


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


class Tally:
    def __init__(self):
        self.upload: list[float] = []
        self.poll: list[float] = []
        self.status: dict[int, int] = {}
        self.final: dict[str, int] = {}

    def count(self, r: httpx.Response) -> None:
        self.status[r.status_code] = self.status.get(r.status_code, 0) + 1

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.status.items() if code >= 500)


async def one_job(c: httpx.AsyncClient, image: bytes, tally: Tally, gate: asyncio.Semaphore, deadline: float) -> None:
    async with gate:
        while True:  # back-pressure is an answer too: wait as told, then retry
            t = time.perf_counter()
            r = await c.post("/v1/jobs", files={"image": ("load.png", image)}, data={"scale": "4"})
            tally.upload.append(time.perf_counter() - t)
            tally.count(r)
            if r.status_code != 429 or time.monotonic() > deadline:
                break
            await asyncio.sleep(float(r.headers.get("retry-after", 1)))
        if r.status_code != 202:
            tally.final["refused"] = tally.final.get("refused", 0) + 1
            return
        job_id = r.json()["id"]
    status = "lost"
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        t = time.perf_counter()
        r = await c.get(f"/v1/jobs/{job_id}")
        tally.poll.append(time.perf_counter() - t)
        tally.count(r)
        if r.status_code == 200 and r.json()["status"] in TERMINAL:
            status = r.json()["status"]
            break
    tally.final[status] = tally.final.get(status, 0) + 1


async def load(base: str, jobs: int, concurrency: int, timeout: float) -> tuple[Tally, float]:
    tally, gate = Tally(), asyncio.Semaphore(concurrency)
    deadline = time.monotonic() + timeout
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as c:
        t = time.perf_counter()
        await asyncio.gather(*(one_job(c, png_bytes(32, 32, seed=i), tally, gate, deadline) for i in range(jobs)))
        return tally, time.perf_counter() - t


async def burst(base: str, uploads: int) -> dict[int, int]:
    counts: dict[int, int] = {}
    retry_after_missing = 0
    async with httpx.AsyncClient(base_url=base, timeout=60) as c:
        async def one(i):
            nonlocal retry_after_missing
            r = await c.post("/v1/jobs", files={"image": ("b.png", png_bytes(16, 16, seed=i))})
            counts[r.status_code] = counts.get(r.status_code, 0) + 1
            retry_after_missing += r.status_code == 429 and "retry-after" not in r.headers
        await asyncio.gather(*(one(i) for i in range(uploads)))
    assert retry_after_missing == 0, f"{retry_after_missing} answers 429 without Retry-After"
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=100, help="clients uploading/polling at once")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--depth", type=int, default=20, help="max_queue_depth of the back-pressure API")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--rounds", type=int, default=2, help="load rounds (RSS after each: flat or growing?)")
    ap.add_argument("--models-dir", type=Path, default=SHIPPED_MODELS_DIR)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ServiceStack(Path(tmp), args.models_dir) as stack:
        stack.start_redis(appendonly=True)
        api = stack.start_api()
        for i in range(args.workers):
            stack.start_worker(f"w{i}")
        print(f"stack: 1 API process, {args.workers} worker processes (concurrency 1), redis-server (AOF on)")
        rss_start = rss_mb(api.pid)
        asyncio.run(load(stack.base_url, 20, 20, args.timeout))  # warm-up
        rss_warm = rss_mb(api.pid)
        tally = Tally()
        for round_ in range(1, args.rounds + 1):
            tally, seconds = asyncio.run(load(stack.base_url, args.jobs, args.concurrency, args.timeout))
            rss_end = rss_mb(api.pid)
            requests = len(tally.upload) + len(tally.poll)
            print(f"\n== load round {round_}: {args.jobs} jobs (32x32 PNG -> x4), {args.concurrency} concurrent "
                  "clients ==")
            print(f"wall {seconds:.1f} s: {requests / seconds:.0f} requests/s, "
                  f"{tally.final.get('succeeded', 0) / seconds * 60:.0f} jobs/min")
            print(f"upload  {pct(tally.upload)}")
            print(f"poll    {pct(tally.poll)}")
            print(f"HTTP statuses {dict(sorted(tally.status.items()))}; 5xx: {tally.server_errors}")
            print(f"job outcomes {tally.final}; lost: {tally.final.get('lost', 0)}")
            print(f"API RSS: {rss_start:.0f} MB at start, {rss_warm:.0f} MB after warm-up, {rss_end:.0f} MB now "
                  f"({(rss_end - rss_warm) * 1024 / requests / round_:+.2f} kB/request since warm-up)")
            if tally.server_errors or tally.final.get("lost"):
                break

        # Back-pressure: nobody consumes this queue, so it only grows, until the depth limit.
        pressure = ServiceStack(Path(tmp) / "bp", args.models_dir, queue="nobody", max_queue_depth=args.depth)
        pressure.redis_port = stack.redis_port
        pressure.env["REDIS_URL"] = stack.redis_url
        pressure.start_api()
        try:
            counts = asyncio.run(burst(pressure.base_url, 10 * args.depth))
            depth = stack.redis.llen("nobody")
            print(f"\n== back-pressure: {10 * args.depth} concurrent uploads, max_queue_depth={args.depth} ==")
            print(f"answers {dict(sorted(counts.items()))} (every 429 with Retry-After); queue depth after: {depth}")
        finally:
            pressure.stop_api()
        ok = tally.server_errors == 0 and not tally.final.get("lost") and counts.get(429)
        print("\nOK" if ok else "\nFAILED: 5xx, lost jobs, or no back-pressure")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
