"""The upload forms: their option fields, and the rules that no single field's type can express."""
from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request

from model.options import JobOptions

from .errors import APIError

JobForm = Annotated[JobOptions, Form()]  # the upload form's option fields parse straight into JobOptions


async def single_valued(request: Request) -> None:
    """A field sent twice (``scale=2`` and ``scale=4``, or two ``image`` parts) is ambiguous: refuse it,
    naming the field, rather than let the last one win. (The form is parsed once; this reads the parse.)"""
    form = await request.form()
    for name in dict.fromkeys(form.keys()):
        count = len(form.getlist(name))
        if count > 1:
            raise APIError(422, "duplicate_field", f"the form field {name[:64]!r} was sent {count} times; "
                                                   "send each field once")
