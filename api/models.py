"""/v1/models: the installed model artifacts (read from their manifests; nothing is loaded)."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from model.artifacts import list_models
from model.hardware import resolve_precision
from model.options import resolve_model

from .deps import Context, context, owner
from .schemas import ModelOut

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", response_model=list[ModelOut], summary="Installed models")
def get_models(ctx: Context = Depends(context), _: str = Depends(owner)):
    manifests = list_models(ctx.settings.model_dirs)
    setting = ctx.settings.precision
    defaults = set()
    for scale in sorted({m.scale for m in manifests}):
        try:
            defaults.add(resolve_model(ctx.settings, None, scale)[1].name)
        except Exception:  # a scale whose configured default is missing has no default
            pass
    return [{
        "name": m.name, "scale": m.scale, "arch": m.arch, "description": m.description,
        "num_params": m.num_params, "metrics": m.metrics, "default": m.name in defaults,
        "strength": {"default": m.interpolation.default_strength} if m.interpolation else None,
        "precision": resolve_precision(m.precision_setting(setting)),
        "license": m.license, "source": m.source,
    } for m in manifests]
