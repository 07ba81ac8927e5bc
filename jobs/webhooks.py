"""Signed webhooks: when a job with a ``callback_url`` finishes, the worker POSTs its JSON there.

Body: ``{"type": "job.finished", "timestamp": <unix s>, "job": <GET /v1/jobs/{id}>}``. Headers:
``X-ESRGAN-Timestamp`` (the same timestamp, so it is inside the signed content) and
``X-ESRGAN-Signature: sha256=<hex HMAC-SHA256 of the body with ESRGAN_WEBHOOK_SECRET>``. A receiver
recomputes the HMAC over the raw body, compares in constant time, and refuses old timestamps (replays).

SSRF: targets whose host resolves to a loopback, private, link-local or otherwise non-public address are
refused (at submission, 422, and again before every attempt: DNS may change), unless
``ESRGAN_WEBHOOK_ALLOW_PRIVATE=true``. Redirects are not followed, timeouts are short; attempts back off.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from urllib.parse import urlsplit

import httpx

SIGNATURE_HEADER, TIMESTAMP_HEADER = "X-ESRGAN-Signature", "X-ESRGAN-Timestamp"


class TargetRefused(ValueError):
    """A callback URL the service will not call; the message says why."""


def check_target(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused(f"callback_url must be an http(s) URL with a host, not {url[:100]!r}")
    if parts.username or parts.password:
        raise TargetRefused("callback_url must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError) as exc:
        raise TargetRefused(f"callback_url host {parts.hostname!r} does not resolve: {exc}") from None
    if allow_private:
        return
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global:  # loopback, private, link-local, shared, reserved, unspecified...
            raise TargetRefused(f"callback_url host {parts.hostname!r} resolves to {address}, a non-public "
                                "address (set ESRGAN_WEBHOOK_ALLOW_PRIVATE=true to allow it)")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver does (tests use it too)."""
    return hmac.compare_digest(sign(secret, body), signature or "")


def deliver(url: str, job: dict, secret: str, *, timeout: float, allow_private: bool) -> dict:
    """One attempt. Returns ``{"ok", "status_code", "error"}``; never raises."""
    timestamp = int(time.time())
    body = json.dumps({"type": "job.finished", "timestamp": timestamp, "job": job}).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "esrgan-webhook",
               TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, body)}
    try:
        check_target(url, allow_private)
        response = httpx.post(url, content=body, headers=headers, timeout=timeout, follow_redirects=False)
    except TargetRefused as exc:
        return {"ok": False, "status_code": None, "error": str(exc)}
    except httpx.HTTPError as exc:
        return {"ok": False, "status_code": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
    ok = 200 <= response.status_code < 300  # a redirect is an answer, not a delivery
    return {"ok": ok, "status_code": response.status_code,
            "error": None if ok else f"the receiver answered {response.status_code}"}
