"""The HTTP/1.1 connection as uvicorn runs it, with the limits an ASGI app cannot set: a request's line and
headers are bounded in size (431) and in time (408), and malformed requests answer in the JSON envelope.

uvicorn buffers headers without a limit under httptools (80 MB of headers on GET /healthz answered 200)
and waits forever for a request that stalls before its headers end. ``esrgan serve`` runs this protocol;
elsewhere: ``uvicorn api.app:create_app --factory --http api.server:GuardedHTTP``.
"""
from __future__ import annotations

import asyncio
import json
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from jobs.settings import get_settings

HTTP = "api.server:GuardedHTTP"  # uvicorn's --http value


def raw_error(status: int, code: str, message: str) -> bytes:
    """A complete JSON error response that closes the connection, for answers given outside the app."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode() + body


class GuardedHTTP(HttpToolsProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.max_head = settings.max_request_header_bytes
        self.read_timeout = settings.request_read_timeout
        self.in_head = True  # reading a request line and headers (not a body, not between requests)
        self.head_bytes = 0
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that never sends a request is not kept either

    def connection_lost(self, exc) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            # Counted per read (at most one read past the limit is buffered): httptools hands a header
            # over only once it is complete, too late to bound it.
            self.head_bytes += len(data)
            if self.head_timer is None:
                self._arm_head_timer()
        super().data_received(data)
        if self.in_head and self.head_bytes > self.max_head and not self.transport.is_closing():
            self._refuse(431, "headers_too_large", f"the request line and headers are over the limit of "
                                                   f"{self.max_head:,} bytes")

    def on_message_begin(self) -> None:
        self.in_head = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self.in_head, self.head_bytes = False, 0
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head = True  # what comes next is the next request's head (its timer starts with its first byte)

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "bad_request", f"invalid HTTP request: {msg}")

    def _refuse(self, status: int, code: str, message: str) -> None:
        self.logger.warning("refused a request: %s", message)
        self._disarm_head_timer()
        if self.cycle is None or self.cycle.response_complete:  # no response of the app's under way
            self.transport.write(raw_error(status, code, message))
        self.transport.close()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self.head_timer = self.loop.call_later(self.read_timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing() or not self.in_head:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # a pipelined request waits for the one being answered
            return
        if self.head_bytes:  # a request started and stalled
            self._refuse(408, "request_timeout", f"the request's headers did not arrive within "
                                                 f"{self.read_timeout:g} s")
        else:  # idle: close quietly
            self.transport.close()
