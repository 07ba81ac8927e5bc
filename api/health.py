"""/healthz (the process answers), /readyz (Redis, storage, a live worker), /metrics (Prometheus)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from jobs.storage import StorageError

from .deps import Context, context

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The API process is alive")
def healthz():
    return {"status": "ok"}


@router.get("/readyz", summary="Redis, storage and at least one worker are available")
def readyz(ctx: Context = Depends(context)):
    checks: dict[str, dict] = {}
    try:
        ctx.store.r.ping()
        checks["redis"] = {"ok": True}
        workers = ctx.store.live_workers()
        checks["workers"] = {"ok": bool(workers), "count": len(workers)}
    except Exception as exc:
        checks["redis"] = {"ok": False, "message": f"Redis not reachable: {exc}"}
        checks["workers"] = {"ok": False, "message": "unknown while Redis is down"}
    try:
        ctx.storage.check()
        checks["storage"] = {"ok": True, "url": ctx.storage.url}
    except StorageError as exc:
        checks["storage"] = {"ok": False, "url": ctx.storage.url, "message": str(exc)}
    ready = all(c["ok"] for c in checks.values())
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    if ready:
        return body
    failed = ", ".join(name for name, c in checks.items() if not c["ok"])
    return JSONResponse({**body, "error": {"code": "not_ready", "message": f"not ready: {failed}"}},
                        status_code=503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request):
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
