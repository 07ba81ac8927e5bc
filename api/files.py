"""File responses whose Range errors answer in the API's JSON envelope (Starlette answers plain text)."""
from __future__ import annotations

import os

from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable
from starlette.staticfiles import NotModifiedResponse

from .errors import error_response


class FileDownload(FileResponse):
    async def __call__(self, scope, receive, send):
        headers = Headers(scope=scope)
        http_range = headers.get("range")
        # The same conditions under which Starlette honours a Range (an If-Range leaves it to Starlette)
        if (http_range is not None and self.status_code == 200 and "if-range" not in headers
                and scope["method"].upper() in ("GET", "HEAD")):
            size = (self.stat_result or os.stat(self.path)).st_size
            try:
                self._parse_range_header(http_range, size)  # Starlette's own parser, so the rules are its
            except MalformedRangeHeader as exc:
                return await error_response(400, "invalid_range", f"bad Range header {http_range[:64]!r}: "
                                                                  f"{exc.content}")(scope, receive, send)
            except RangeNotSatisfiable:
                return await error_response(416, "range_not_satisfiable",
                                            f"Range {http_range[:64]!r} is outside the file ({size:,} bytes)",
                                            {"Content-Range": f"bytes */{size}"})(scope, receive, send)
        await super().__call__(scope, receive, send)


class Static(StaticFiles):
    def file_response(self, full_path, stat_result, scope, status_code: int = 200):
        response = FileDownload(full_path, status_code=status_code, stat_result=stat_result)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response
