"""Request body limits enforced while receiving: a declared length over the limit is refused before any
byte is read, and a body streamed without a length is cut off as soon as it passes the limit."""
from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from .errors import error_response

UPLOAD_PATHS = frozenset({"/v1/jobs", "/upload", "/enhance"})


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"upload too large: the request body is over the limit of {limit:,} bytes")


class BodyLimit:
    def __init__(self, app, upload_limit: int, other_limit: int):
        self.app, self.upload_limit, self.other_limit = app, upload_limit, other_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        limit = self.upload_limit if scope["path"] in UPLOAD_PATHS else self.other_limit
        declared = Headers(scope=scope).get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            response = error_response(413, "upload_too_large",
                                      f"upload too large: {int(declared):,} bytes, the limit is {limit:,}")
            return await response(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)  # answered as JSON 413 by the app's HTTPException handler
            return message

        await self.app(scope, limited_receive, send)
