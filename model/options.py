"""Job options: one typed model from the upload form (or the CLI) to the engine, and the rules they follow.

- ``JobOptions``: what a client may ask for, each option's one name, default, range and help. The API's
  form parses straight into it (and it is ``JobOut.options`` in the OpenAPI document); ``esrgan upscale``
  makes its flags from it (``esrgan.upscale``), local and ``--server`` alike, and the Python client
  (``esrgan.client``) takes its field names.
- ``resolve_options()``: decides every default once (model, scale, strength, output size, format,
  quality): at submission for a job, per image for ``esrgan upscale``; ``resolve_clip_options()`` the
  same for a video or animation, whose limits it checks too. The resolved options are stored
  with the job, read back typed by the worker and handed to the engine (``Upscaler.run``) as they are:
  the value stored is the value run (strength is rounded to 0.01 when the options are made).
- ``output_size()``: the one output-size rule, used by the API, the CLI and the engine.
- ``resolve_model()`` / ``resolve_strength()``: the one default-model and strength rules.

A new option is one field here and its one use (``Upscaler.run``, or ``resolve_options`` for a default).
TensorFlow-free: the API imports this module.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .artifacts import Manifest, find_model
from .errors import ESRGANError, InvalidOption
from .imageio import ALIASES, DEFAULT_QUALITY, FORMATS, ImageInfo, check_output_size, default_output_format, \
    output_format
from .settings import Settings
from .video import ANIMATION_FORMATS, VIDEO_FORMATS, ClipInfo, check_clip_limits, clip_output_format, even_size, \
    is_video_format

SCALES = (2, 3, 4)
STRENGTH_DECIMALS = 2  # strength is kept (and run) to 0.01


class JobOptions(BaseModel):
    """Options of one upscale. As sent, unset fields are None; once resolved, model, scale, width,
    height, format and quality are always set (width x height is the output size)."""

    model_config = ConfigDict(extra="ignore")  # records written by older versions carry extra keys
    # The values a field takes, where they are a short list (the CLI offers them as choices)
    # (format: images', then animations' and videos'; apng is png, as an animation)
    CHOICES: ClassVar[dict[str, tuple]] = {
        "scale": SCALES, "format": tuple(sorted({*FORMATS, *ALIASES, *VIDEO_FORMATS, *ANIMATION_FORMATS, "apng"}))}
    SERVICE_ONLY: ClassVar[tuple[str, ...]] = ("callback_url",)  # no meaning for a local `esrgan upscale`

    model: str | None = Field(None, max_length=64,
                              description="Model name (`esrgan models`, GET /v1/models); default: the scale's default")
    scale: int | None = Field(None, description="2, 3 or 4: picks the default model of that scale")
    outscale: float | None = Field(None, gt=0, le=16, description="Output scale: the model's native pass, then a "
                                                                  "resize (e.g. 3 or 1.5)")
    width: int | None = Field(None, ge=1, description="Exact output width (height follows the aspect if not given)")
    height: int | None = Field(None, ge=1, description="Exact output height")
    tile: int | None = Field(None, ge=0, le=4096,
                             description="Tile size in input pixels; 0 = one pass (default: automatic)")
    strength: float | None = Field(None, ge=0, le=1,
                                   description="Smooth (0) to sharp (1), for interpolated models (kept to 0.01)")
    ensemble: bool = Field(False, description="Self-ensemble: average the results for the 8 flips/rotations "
                                              "of the input (a little more faithful, 8x the time)")
    format: str | None = Field(None, max_length=8,
                               description="png, jpg, webp or tiff; for videos and animations mp4, webm, mkv, "
                                           "mov, gif, webp or png (APNG); default: the input's (BMP becomes PNG)")
    quality: int | None = Field(None, ge=1, le=100, description=f"JPEG/WebP quality (default {DEFAULT_QUALITY})")
    callback_url: str | None = Field(None, max_length=2048, description="Service only: URL that gets the job's "
                                     "JSON, signed, when it finishes (webhook)")

    @field_validator("strength")
    @classmethod
    def _strength_step(cls, value: float | None) -> float | None:
        """Rounded once, here: the stored strength is the one the engine runs (and its cache key)."""
        return None if value is None else round(value, STRENGTH_DECIMALS)

    @classmethod
    def checked(cls, flag_prefix: str = "", **values) -> "JobOptions":
        """``JobOptions(**values)``; an InvalidOption naming each bad field (``flag_prefix`` + its name)."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise InvalidOption("; ".join(f"{flag_prefix}{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                          for e in exc.errors())) from None

    @classmethod
    def names(cls, *, local: bool = False) -> tuple[str, ...]:
        """The option names (``local``: those that mean something to a local ``esrgan upscale``)."""
        return tuple(n for n in cls.model_fields if not (local and n in cls.SERVICE_ONLY))


def check_size_options(outscale: float | None, size: tuple[int | None, int | None] | None) -> None:
    """Output scale and output size exclude each other."""
    if outscale is not None and any(size or ()):
        raise InvalidOption("give either outscale or width/height, not both")


def output_size(width: int, height: int, scale: int, *, outscale: float | None = None,
                size: tuple[int | None, int | None] | None = None) -> tuple[int, int]:
    """Output size of a ``width`` x ``height`` input: ``size`` (one side given keeps the aspect ratio),
    else ``outscale`` times the input, else the model's ``scale``."""
    check_size_options(outscale, size)
    w, h = size or (None, None)
    if (w is not None and w < 1) or (h is not None and h < 1):
        raise InvalidOption("target width and height must be positive")
    if w or h:
        w = w or max(1, round(width * h / height))
        h = h or max(1, round(height * w / width))
        return int(w), int(h)
    if outscale is not None:
        if not 0 < outscale <= 16:
            raise InvalidOption(f"outscale must be in (0, 16], got {outscale}")
        return max(1, round(width * outscale)), max(1, round(height * outscale))
    return width * scale, height * scale


def resolve_model(settings: Settings, name: str | None, scale: int | None) -> tuple[Path, Manifest]:
    """The named model, or the default of ``scale`` (settings' choice, else the manifests' registry)."""
    if scale is not None and scale not in SCALES:
        raise InvalidOption(f"scale must be one of {', '.join(map(str, SCALES))}, not {scale}")
    return find_model(settings.model_dirs, name, scale, settings.default_models)


def resolve_strength(manifest: Manifest, strength: float | None) -> float | None:
    """The strength ``manifest`` runs at: the one asked for (a model without interpolation ends takes
    none), else the model's default."""
    if strength is None:
        return manifest.interpolation.default_strength if manifest.interpolation is not None else None
    if manifest.interpolation is None:
        raise InvalidOption(f"model {manifest.name!r} has no strength setting (it is not an interpolated model)")
    return JobOptions.checked(strength=strength).strength  # its range and step


def resolve_options(options: JobOptions, manifest: Manifest, info: ImageInfo,
                    max_output_pixels: int | None) -> JobOptions:
    """``options`` with every default decided for this model and input; ESRGANError (with a code) for
    anything unusable."""
    strength = resolve_strength(manifest, options.strength)
    try:
        fmt = output_format(options.format) if options.format else default_output_format(info.format)
    except ESRGANError:
        raise InvalidOption(f"format must be one of png, jpg, webp, tiff, not {options.format!r}") from None
    width, height = output_size(info.width, info.height, manifest.scale, outscale=options.outscale,
                                size=(options.width, options.height))
    check_output_size(width, height, max_output_pixels)
    return _resolved(options, manifest, strength, fmt, width, height)


def resolve_clip_options(options: JobOptions, manifest: Manifest, clip: ClipInfo, settings: Settings) -> JobOptions:
    """``resolve_options`` for a video or animation: the size applies to every frame (even sides for a
    video codec), and the clip limits are checked here, from the header."""
    strength = resolve_strength(manifest, options.strength)
    fmt = clip_output_format(options.format, clip)
    width, height = output_size(clip.width, clip.height, manifest.scale, outscale=options.outscale,
                                size=(options.width, options.height))
    if is_video_format(fmt):
        width, height = even_size(width, height)
    check_clip_limits(clip, width, height, settings)
    return _resolved(options, manifest, strength, fmt, width, height)


def _resolved(options: JobOptions, manifest: Manifest, strength: float | None, fmt: str, width: int,
              height: int) -> JobOptions:
    return options.model_copy(update={
        "model": manifest.name, "scale": manifest.scale, "width": width, "height": height, "strength": strength,
        "format": fmt, "quality": options.quality or DEFAULT_QUALITY})
