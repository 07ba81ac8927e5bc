"""/v1/jobs: submit an image, animation or video, follow the job, download the result, cancel or delete it
(the work is in ``api/service.py``; the job's shape is ``JobOut``)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, File, Header, Response, UploadFile
from fastapi.responses import StreamingResponse

from . import service
from .deps import Context, context, owner
from .forms import JobForm, single_valued
from .schemas import ERRORS, JobOut, job_url

router = APIRouter(prefix="/v1", tags=["jobs"])


# Unset fields are left out: an image's input and output have no frames (JobOut.of sets what applies)
@router.post("/jobs", status_code=202, response_model=JobOut, response_model_exclude_unset=True, responses=ERRORS,
             summary="Submit an image, animation or video to enhance", dependencies=[Depends(single_valued)])
def create_job(response: Response, options: JobForm,
               image: UploadFile = File(..., description="The image (PNG, JPEG, WebP, TIFF, BMP), animation (GIF, "
                                                           "APNG, WebP) or video (MP4, MOV, MKV, WebM)"),
               idempotency_key: str | None = Header(None, max_length=200,
                                                    description="Retries with the same key and the same request "
                                                                "return the same job; another request: 422"),
               ctx: Context = Depends(context), who: str = Depends(owner)):
    job = service.submit(ctx, who, image, options, idempotency_key)
    response.headers["Location"] = job_url(job.id)
    return JobOut.of(job)


@router.get("/jobs/{job_id}", response_model=JobOut, response_model_exclude_unset=True, responses=ERRORS,
            summary="A job's status")
def get_job(job_id: str, ctx: Context = Depends(context), who: str = Depends(owner)):
    return JobOut.of(service.find_job(ctx, who, job_id))


@router.get("/jobs/{job_id}/result", responses={**ERRORS, 200: {"content": {"image/png": {}}}},
            response_class=StreamingResponse, summary="Download the enhanced image")
def get_result(job_id: str, ctx: Context = Depends(context), who: str = Depends(owner)):
    return service.result_file(ctx, service.find_job(ctx, who, job_id))


@router.get("/jobs/{job_id}/input", responses={**ERRORS, 200: {"content": {"image/png": {}}}},
            response_class=StreamingResponse, summary="The uploaded image")
def get_input(job_id: str, ctx: Context = Depends(context), who: str = Depends(owner)):
    return service.input_file(ctx, service.find_job(ctx, who, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, response_model_exclude_unset=True, responses=ERRORS,
             summary="Cancel a job")
def cancel_job(job_id: str, ctx: Context = Depends(context), who: str = Depends(owner)):
    return JobOut.of(service.cancel(ctx, who, job_id))


@router.delete("/jobs/{job_id}", status_code=204, responses=ERRORS, summary="Delete a job and its files")
def delete_job(job_id: str, ctx: Context = Depends(context), who: str = Depends(owner)):
    service.delete(ctx, who, job_id)
    return Response(status_code=204)
