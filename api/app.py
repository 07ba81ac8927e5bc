"""The FastAPI application: one context (settings, job store, storage, queue) shared by all routes."""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from jobs.backends import open_storage
from jobs.queue import make_celery
from jobs.records import JobStore
from jobs.settings import Settings, get_settings
from jobs.storage import StorageError

from . import archives, errors, health, jobs, models, pages
from .deps import Context
from .files import Static
from .limits import BodyLimit
from .metrics import HTTPMetrics, JobCollector

log = logging.getLogger("esrgan.api")
MULTIPART_OVERHEAD = 64 * 1024  # form fields and part headers around the image
SMALL_BODY = 64 * 1024  # every other route


async def _sweep_files(ctx: Context) -> None:
    """Remove files whose job has expired, now and then (records expire in Redis by themselves)."""
    while True:
        await asyncio.sleep(ctx.settings.cleanup_interval_seconds)
        try:
            removed = await asyncio.to_thread(ctx.storage.sweep, ctx.store.exists)
            if removed:
                log.info("removed %d expired job files", removed)
        except Exception as exc:  # Redis away: try next time
            log.warning("file sweep skipped: %s", exc)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    ctx = Context(settings=settings, store=JobStore(settings), storage=open_storage(settings),
                  celery=make_celery(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            ctx.storage.check()  # creates the folders (or the bucket)
        except StorageError as exc:  # not fatal: uploads answer 503 and /readyz says why until it is back
            log.warning("storage not ready: %s", exc)
        sweeper = asyncio.create_task(_sweep_files(ctx))
        yield
        sweeper.cancel()

    app = FastAPI(title="ESRGAN service", version="0.1.0", lifespan=lifespan,
                  description="Upload an image, follow the enhancement job, download the result.")
    app.state.ctx = ctx
    app.state.registry = registry = CollectorRegistry()
    registry.register(JobCollector(ctx))
    errors.install(app)
    for router in (jobs.router, archives.router, models.router, health.router, pages.router):
        app.include_router(router)
    app.mount("/static", Static(directory=pages.STATIC), name="static")
    app.add_middleware(BodyLimit, upload_limit=settings.max_upload_bytes + MULTIPART_OVERHEAD,
                       other_limit=SMALL_BODY, read_timeout=settings.request_read_timeout,
                       upload_timeout=settings.upload_timeout)
    app.add_middleware(HTTPMetrics, registry=registry)
    return app
