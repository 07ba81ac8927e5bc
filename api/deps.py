"""What routes share: settings, job store, file storage and the queue (one of each per app), and the
caller's identity when API keys are on."""
from __future__ import annotations

import hmac
from dataclasses import dataclass

from celery import Celery
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from jobs.records import JobStore, owner_of
from jobs.settings import Settings
from jobs.storage import Storage

from .errors import APIError


@dataclass
class Context:
    settings: Settings
    store: JobStore
    storage: Storage
    celery: Celery

    @property
    def api_keys(self) -> list[str]:
        return [k.strip() for k in (self.settings.api_keys or "").split(",") if k.strip()]


def context(request: Request) -> Context:
    return request.app.state.ctx


_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                               description="Required only when the service is configured with API keys")


def owner(ctx: Context = Depends(context), api_key: str | None = Depends(_api_key_header)) -> str:
    """The caller's owner tag: '' with keys off; with keys on, a valid key is required."""
    keys = ctx.api_keys
    if not keys:
        return ""
    if not api_key or not any(hmac.compare_digest(api_key, k) for k in keys):
        raise APIError(401, "unauthorized", "a valid API key is required (header X-API-Key)")
    return owner_of(api_key)
