"""Request body limits enforced while receiving, in size and in time: a declared length over the limit is
refused before any byte is read, a body streamed without a length is cut off as soon as it passes the
limit, and a body that stalls (``request_read_timeout`` between reads) or takes too long as a whole
(``upload_timeout``) is answered 408. Each refusal closes the connection: the rest of the body is unread."""
from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from .errors import error_response

UPLOAD_PATHS = frozenset({"/v1/jobs", "/upload", "/enhance"})
CLOSE = {"Connection": "close"}


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"upload too large: the request body is over the limit of {limit:,} bytes", CLOSE)


class BodyTimeout(HTTPException):
    def __init__(self, message: str):
        super().__init__(408, message, CLOSE)


class BodyLimit:
    def __init__(self, app, upload_limit: int, other_limit: int, read_timeout: float, upload_timeout: float):
        self.app, self.upload_limit, self.other_limit = app, upload_limit, other_limit
        self.read_timeout, self.upload_timeout = read_timeout, upload_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        limit = self.upload_limit if scope["path"] in UPLOAD_PATHS else self.other_limit
        declared = Headers(scope=scope).get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            response = error_response(413, "upload_too_large",
                                      f"upload too large: {int(declared):,} bytes, the limit is {limit:,}", CLOSE)
            return await response(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.upload_timeout
        received, complete = 0, False

        async def limited_receive():
            nonlocal received, complete
            if complete:  # the body is in; later receives wait for a disconnect, untimed
                return await receive()
            wait = min(self.read_timeout, deadline - loop.time())
            try:
                message = await asyncio.wait_for(receive(), max(wait, 0))
            except TimeoutError:
                raise BodyTimeout(
                    f"the request body stalled: nothing arrived for {self.read_timeout:g} s" if wait == self.read_timeout
                    else f"the request body took longer than {self.upload_timeout:g} s to arrive") from None
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)  # answered as JSON 413 by the app's HTTPException handler
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)
