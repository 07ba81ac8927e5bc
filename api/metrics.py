"""Prometheus metrics: HTTP requests and latencies measured here; job counts, queue depth, live workers
and processing time read from Redis at scrape time (workers are other processes, often other hosts)."""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from jobs.queue import queue_depth
from jobs.records import PROCESSING_BUCKETS, STATUSES

from .deps import Context


class JobCollector:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def collect(self):
        up = GaugeMetricFamily("esrgan_redis_up", "1 if Redis answered this scrape")
        try:
            store = self.ctx.store
            stats = store.stats()
            depth = {q: queue_depth(store.r, q) for q in {self.ctx.settings.queue, "default", "gpu"}}
            workers = len(store.live_workers())
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now = GaugeMetricFamily("esrgan_jobs", "Jobs queued or running now", labels=["status"])
        for status in ("queued", "running"):
            now.add_metric([status], max(0.0, stats.get(f"now:{status}", 0.0)))
        yield now
        total = CounterMetricFamily("esrgan_jobs", "Jobs that reached each status", labels=["status"])
        for status in STATUSES:
            total.add_metric([status], stats.get(f"total:{status}", 0.0))
        yield total
        queue = GaugeMetricFamily("esrgan_queue_depth", "Messages waiting in the queue", labels=["queue"])
        for name, n in sorted(depth.items()):
            queue.add_metric([name], n)
        yield queue
        yield GaugeMetricFamily("esrgan_workers", "Workers with a live heartbeat", value=workers)
        buckets = [(str(b), stats.get(f"processing:le:{b}", 0.0)) for b in PROCESSING_BUCKETS]
        count = stats.get("processing:count", 0.0)
        by_precision = CounterMetricFamily("esrgan_jobs_by_precision", "Succeeded jobs by the compute type "
                                           "the model ran in", labels=["precision"])
        for key, n in sorted(stats.items()):
            if key.startswith("precision:"):
                by_precision.add_metric([key.split(":", 1)[1]], n)
        yield by_precision
        yield HistogramMetricFamily("esrgan_job_processing_seconds", "Time from a job's start to its result",
                                    buckets=buckets + [("+Inf", count)], sum_value=stats.get("processing:sum", 0.0))


class HTTPMetrics:
    """ASGI middleware counting requests and timing them, labelled by route template (bounded labels)."""

    def __init__(self, app, registry: CollectorRegistry):
        self.app = app
        self.requests = Counter("esrgan_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=registry)
        self.latency = Histogram("esrgan_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route"], registry=registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.requests.labels(scope["method"], route, str(status[0])).inc()
            self.latency.labels(scope["method"], route).observe(time.perf_counter() - start)


