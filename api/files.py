"""File responses with Range errors in the API's JSON envelope (Starlette answers them in plain text):
a malformed Range is 400, one outside the file 416; stored files streamed through the API honour a single
byte range (206) with Starlette's own parser, so the rules are the same for every file route."""
from __future__ import annotations

import os
from collections.abc import AsyncIterator

from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable, Response
from starlette.staticfiles import NotModifiedResponse

from .errors import error_response


def requested_ranges(scope, status_code: int, size: int) -> list[tuple[int, int]] | Response:
    """The byte ranges asked for ([] = the whole file), or the JSON error response for a bad Range."""
    headers = Headers(scope=scope)
    http_range = headers.get("range")
    # The conditions under which Starlette honours a Range (an If-Range is left to Starlette: whole file)
    if (http_range is None or status_code != 200 or "if-range" in headers
            or scope["method"].upper() not in ("GET", "HEAD")):
        return []
    try:
        return FileResponse._parse_range_header(http_range, size)
    except MalformedRangeHeader as exc:
        return error_response(400, "invalid_range", f"bad Range header {http_range[:64]!r}: {exc.content}")
    except RangeNotSatisfiable:
        return error_response(416, "range_not_satisfiable", f"Range {http_range[:64]!r} is outside the file "
                              f"({size:,} bytes)", {"Content-Range": f"bytes */{size}"})


class FileDownload(FileResponse):
    async def __call__(self, scope, receive, send):
        size = (self.stat_result or os.stat(self.path)).st_size
        ranges = requested_ranges(scope, self.status_code, size)
        if isinstance(ranges, Response):
            return await ranges(scope, receive, send)
        await super().__call__(scope, receive, send)


class StoredFile(StreamingResponse):
    """A stored file's chunks streamed with its length; one byte range gives 206, several the whole file."""

    def __init__(self, chunks, size: int, media_type: str, headers: dict[str, str]):
        super().__init__(chunks, media_type=media_type,
                         headers={**headers, "Content-Length": str(size), "Accept-Ranges": "bytes"})
        self.size = size

    async def __call__(self, scope, receive, send):
        ranges = requested_ranges(scope, self.status_code, self.size)
        if isinstance(ranges, Response):
            return await ranges(scope, receive, send)
        if len(ranges) == 1:
            start, end = ranges[0]
            self.status_code = 206
            self.headers["content-range"] = f"bytes {start}-{end - 1}/{self.size}"
            self.headers["content-length"] = str(end - start)
            self.body_iterator = _byte_slice(self.body_iterator, start, end)
        await super().__call__(scope, receive, send)


async def _byte_slice(chunks: AsyncIterator[bytes], start: int, end: int) -> AsyncIterator[bytes]:
    offset = 0
    async for chunk in chunks:
        piece = chunk[max(start - offset, 0):max(end - offset, 0)]
        offset += len(chunk)
        if piece:
            yield piece
        if offset >= end:
            break


class Static(StaticFiles):
    def file_response(self, full_path, stat_result, scope, status_code: int = 200):
        response = FileDownload(full_path, status_code=status_code, stat_result=stat_result)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response
