"""Check a job's options against the model and the input's header, before anything is queued."""
from __future__ import annotations

from dataclasses import dataclass

from model.artifacts import Manifest, find_model
from model.errors import ESRGANError
from model.imageio import ALIASES, FORMATS, ImageInfo, default_output_format
from model.settings import Settings

from .errors import APIError

# What a client may name (case-insensitive): the output formats and their aliases ("jpeg", "tif")
OUTPUT_FORMATS = {**{key: key for key in FORMATS}, **ALIASES}


@dataclass
class Requested:
    """Options as the client sent them (None = not given)."""

    model: str | None = None
    scale: int | None = None
    outscale: float | None = None
    width: int | None = None
    height: int | None = None
    tile: int | None = None
    strength: float | None = None
    ensemble: bool = False
    format: str | None = None
    quality: int | None = None


def invalid(message: str, code: str = "invalid_option") -> APIError:
    return APIError(422, code, message)


def resolve_model(settings: Settings, name: str | None, scale: int | None) -> Manifest:
    if scale is not None and scale not in (2, 4):
        raise invalid(f"scale must be 2 or 4, not {scale}")
    try:
        _, manifest = find_model(settings.models_dir, name, scale,
                                 {2: settings.default_model_x2, 4: settings.default_model_x4})
    except ESRGANError as exc:
        raise invalid(str(exc), "unknown_model") from None
    return manifest


def output_size(info: ImageInfo, manifest: Manifest, req: Requested) -> tuple[int, int]:
    if req.outscale is not None and (req.width or req.height):
        raise invalid("give either outscale or width/height, not both")
    if req.width or req.height:
        width = req.width or max(1, round(req.height * info.width / info.height))
        height = req.height or max(1, round(req.width * info.height / info.width))
    else:
        factor = manifest.scale if req.outscale is None else req.outscale
        width, height = round(info.width * factor), round(info.height * factor)
    if width < 1 or height < 1:
        raise invalid(f"the output would be {width}x{height} pixels")
    return width, height


def check(settings: Settings, info: ImageInfo, req: Requested) -> tuple[Manifest, dict]:
    """The model and the options to store with the job; APIError (422) for anything unusable."""
    manifest = resolve_model(settings, req.model, req.scale)
    if req.strength is not None and manifest.interpolation is None:
        raise invalid(f"model {manifest.name!r} has no strength setting (it is not an interpolated model)")
    fmt = OUTPUT_FORMATS.get(req.format.lower()) if req.format else default_output_format(info.format)
    if fmt is None:
        raise invalid(f"format must be one of png, jpg, webp, tiff, not {req.format!r}")
    width, height = output_size(info, manifest, req)
    if width * height > settings.max_output_pixels:
        raise invalid(f"the output would be {width}x{height} = {width * height:,} pixels; the limit is "
                      f"{settings.max_output_pixels:,}", "limit_exceeded")
    strength = req.strength
    if strength is None and manifest.interpolation is not None:
        strength = manifest.interpolation.default_strength
    options = {"scale": manifest.scale, "outscale": req.outscale,
               "width": width if (req.width or req.height) else None,
               "height": height if (req.width or req.height) else None,
               "tile": req.tile, "strength": strength, "ensemble": req.ensemble, "format": fmt, "quality": req.quality,
               "output_width": width, "output_height": height}
    return manifest, options
