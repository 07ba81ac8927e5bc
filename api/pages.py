"""The seed design's routes, served from the same jobs: pages, form upload, and files by stored name."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, File, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse

from jobs.storage import GENERATED, UPLOADS, file_name, parse_name

from .deps import Context, context, owner
from .errors import APIError
from .files import FileDownload
from .forms import JobForm, single_valued
from .service import find_job, input_file, result_file, submit
from .schemas import ERRORS

STATIC = Path(__file__).resolve().parent / "static"
router = APIRouter(tags=["pages"])


@router.get("/", include_in_schema=False)
def index():
    return FileDownload(STATIC / "index.html", media_type="text/html")


@router.post("/upload", status_code=303, responses=ERRORS, summary="Form upload; redirects to the result page",
             dependencies=[Depends(single_valued)])
def upload(options: JobForm, image: UploadFile = File(...), ctx: Context = Depends(context),
           who: str = Depends(owner)):
    job = submit(ctx, who, image, options, None)
    return RedirectResponse(f"/result/{job.id}", status_code=303)


router.add_api_route("/enhance", upload, methods=["POST"], status_code=303, responses=ERRORS,
                     summary="Same as /upload", dependencies=[Depends(single_valued)])


@router.get("/result/{job_id}", include_in_schema=False)
def result_page(job_id: str, ctx: Context = Depends(context), who: str = Depends(owner)):
    try:
        find_job(ctx, who, job_id)
    except APIError as e:
        if e.status != 404:
            raise
        # a browser route: a stale or mistyped link gets a page with a way back, not the API's JSON
        return HTMLResponse(NOT_FOUND_PAGE, status_code=404)
    return FileDownload(STATIC / "result.html", media_type="text/html")


NOT_FOUND_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Job not found - ESRGAN</title>
<link rel="stylesheet" href="/static/style.css"></head><body><main>
<h1>Job not found</h1><p>This job does not exist, has expired, or belongs to another API key.</p>
<p><a href="/">Upscale an image</a></p></main></body></html>"""


def _stored_job(ctx: Context, who: str, kind: str, filename: str):
    job_id = parse_name(filename)
    if job_id is None:
        raise APIError(404, "not_found", "no such file")
    job = find_job(ctx, who, job_id)
    fmt = job.input["format"] if kind == UPLOADS else job.options.format
    if filename != file_name(job.id, fmt):
        raise APIError(404, "not_found", "no such file")
    return job


@router.get("/uploads/{filename}", responses=ERRORS, summary="An input by stored name ({job id}.{ext})")
def uploaded_file(filename: str, ctx: Context = Depends(context), who: str = Depends(owner)):
    return input_file(ctx, _stored_job(ctx, who, UPLOADS, filename))


@router.get("/generated/{filename}", responses=ERRORS, summary="A result by stored name ({job id}.{ext})")
def generated_file(filename: str, ctx: Context = Depends(context), who: str = Depends(owner)):
    return result_file(ctx, _stored_job(ctx, who, GENERATED, filename), inline=True)


