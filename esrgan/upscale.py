"""``esrgan upscale``: image, animation and video files or folders in, upscaled files out, on this machine or on
an ESRGAN service.

``plan`` decides once, for both ways, which files are read, where each result goes and in which format, and
which inputs cannot be used (missing, unreadable, two inputs writing one file). Then ``run_local`` (the
engine, OpenVINO or TensorFlow, imported only now so ``esrgan --help`` stays instant) or
``esrgan.remote.run_remote`` (HTTP, base install only) writes the results, and ``summary`` says what happened.
"""
from __future__ import annotations

import os
import sys
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from model import imageio, video
from model.errors import ESRGANError, InvalidOption, MissingExtra
from model.options import JobOptions, check_size_options, resolve_clip_options, resolve_options
from model.settings import PRECISION_SETTINGS, Settings

from .common import models_dir_option, settings_from, without_pyplot

# Inside folders only files named like images, animations or videos are taken (sidecar .xmp/.json files
# are common); the format itself is always read from the bytes. Files named on the command line are always tried.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", *video.CLIP_SUFFIXES}


def register(subparsers) -> None:
    up = subparsers.add_parser(
        "upscale", help="upscale images, animations and videos (files or folders)",
        description="Upscale images, animations (GIF, APNG, WebP) and videos (MP4, MOV, MKV, WebM: every frame, "
                    "audio kept). Folders are searched recursively and their tree is mirrored into OUTPUT; a single "
                    "input file with an OUTPUT ending in .png/.jpg/.webp/.tiff/.gif/.mp4/.webm... writes that file.")
    up.add_argument("inputs", nargs="+", metavar="INPUT", type=Path,
                    help="image, animation or video files, or folders")
    up.add_argument("-o", "--output", required=True, type=Path, help="output folder (or file, for one input)")
    add_job_options(up.add_argument_group("job options", "The same options as a job of the service "
                                          "(POST /v1/jobs), here or with --server"))
    up.add_argument("--precision", choices=PRECISION_SETTINGS,
                    help="compute type (default: ESRGAN_PRECISION, else auto = bfloat16 on CPUs with "
                         "AMX/AVX512-BF16, float16 on GPUs, else float32)")
    models_dir_option(up)
    remote = up.add_argument_group("on a service", "Upscale with an ESRGAN service instead of on this machine "
                                   "(no TensorFlow needed here); results are written as above.")
    remote.add_argument("--server", default=os.environ.get("ESRGAN_SERVER") or None, metavar="URL",
                        help="service address, e.g. http://gpu-box:8000 (default: ESRGAN_SERVER)")
    remote.add_argument("--api-key", default=os.environ.get("ESRGAN_API_KEY") or None,
                        help="API key of a keyed service (default: ESRGAN_API_KEY)")
    remote.add_argument("--jobs", type=int, default=4, metavar="N",
                        help="files in flight on the service at once (default 4)")
    up.set_defaults(func=cmd_upscale)


def _flag_type(annotation) -> type:
    """``int | None`` -> int."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def _range(field) -> str:
    """``; 1 to 100`` from the field's bounds, as the model checks them."""
    bounds = {key: getattr(m, key) for m in field.metadata for key in ("ge", "gt", "le") if hasattr(m, key)}
    if "le" not in bounds:
        return ""
    low = f"{bounds['ge']} to" if "ge" in bounds else f"over {bounds['gt']}, at most"
    return f"; {low} {bounds['le']}"


def add_job_options(parser) -> None:
    """One flag per ``JobOptions`` field that applies here: its name, type, choices and help come from there
    (ranges are checked by ``job_options``, with the model's own words)."""
    for name in JobOptions.names(local=True):
        field, flag = JobOptions.model_fields[name], "--" + name.replace("_", "-")
        kind = _flag_type(field.annotation)
        if kind is bool:
            parser.add_argument(flag, action="store_true", default=None, help=field.description)
        else:
            parser.add_argument(flag, type=kind, choices=JobOptions.CHOICES.get(name),
                                help=field.description + _range(field))


def job_options(args) -> JobOptions:
    """The flags' ``JobOptions``, checked as the service checks a form (an error names the flag)."""
    options = JobOptions.checked("--", **{name: getattr(args, name) for name in JobOptions.names(local=True)
                                         if getattr(args, name) is not None})
    check_size_options(options.outscale, (options.width, options.height))
    return options


# --- the plan --------------------------------------------------------------------------------------

@dataclass
class Job:
    """One input file, where its result goes and in which format (``imageio.FORMATS`` key, or for a video or
    animation its container: ``video.VIDEO_FORMATS`` / ``video.ANIMATION_FORMATS`` key)."""
    source: Path
    target: Path
    format: str


def find_inputs(inputs: list[Path], output: Path) -> tuple[list[tuple[Path, Path, bool]], list[tuple[Path, str]]]:
    """Input files with the path their result is named after (exact: that very file, for one file to a named
    output), and the inputs that are neither file nor folder."""
    if len(inputs) == 1 and inputs[0].is_file() and output.suffix:
        return [(inputs[0], output, True)], []
    found, failures = [], []
    for item in inputs:
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(item).parts))
            found += [(p, output / p.relative_to(item), False) for p in files]
        elif item.is_file():
            found.append((item, output / item.name, False))
        else:
            failures.append((item, "no such file or folder"))
    return found, failures


def probe(data: bytes) -> imageio.ImageInfo | video.ClipInfo:
    """A video's or animation's info, else a still image's (header only)."""
    return video.probe_clip(data) or imageio.probe(data)


def destination(target: Path, exact: bool, info: imageio.ImageInfo | video.ClipInfo | None,
                format_option: str | None) -> tuple[Path, str]:
    """Where the result goes and in which format: the input's format unless --format says otherwise,
    the file name kept (its suffix too when it already names that format, e.g. .jpeg). A video or
    animation (``info`` a ``ClipInfo``) becomes a clip format its frames and audio fit."""
    clip = isinstance(info, video.ClipInfo)
    if exact:
        if clip:
            return target, video.clip_output_format(target.suffix or "(no extension)", info)
        return target, imageio.format_of_path(target)
    if clip:
        fmt = video.clip_output_format(format_option, info)
    else:
        fmt = imageio.output_format(format_option) if format_option else imageio.default_output_format(info.format)
    suffix = target.suffix.lower()
    if imageio.ALIASES.get(suffix[1:], suffix[1:]) == fmt or (clip and video.CLIP_SUFFIXES.get(suffix) == fmt):
        return target, fmt
    return target.with_suffix(f".{fmt}" if clip else imageio.FORMATS[fmt][2]), fmt


def plan(inputs: list[Path], output: Path, format_option: str | None) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Every input's result path and format (the input's format is read from its header), and the inputs
    that cannot be used, with why: the same plan whether this machine or a service does the work."""
    found, failures = find_inputs(inputs, output)
    jobs, owners = [], {}
    for source, named, exact in found:
        try:
            data = source.read_bytes()
            # a file named as the output needs no format of its own, unless it is a video or animation
            info = video.probe_clip(data) if exact else probe(data)
            target, fmt = destination(named, exact, info, format_option)
        except (ESRGANError, OSError, ValueError) as exc:  # a bad file must not stop the batch
            failures.append((source, str(exc)))
            continue
        if target in owners:  # e.g. a.png and a.jpg both becoming a.png
            failures.append((source, f"{target} is already the output of {owners[target]}"))
            continue
        owners[target] = source
        jobs.append(Job(source, target, fmt))
    return jobs, failures


def check_command(args) -> None:
    """The flags that are not job options."""
    if args.jobs < 1:
        raise InvalidOption("--jobs must be at least 1")
    if args.format and args.output.suffix and len(args.inputs) == 1 and args.inputs[0].is_file():
        named = video.CLIP_SUFFIXES.get(args.output.suffix.lower()) or imageio.format_of_path(args.output)
        if named != {"apng": "png"}.get(args.format, imageio.ALIASES.get(args.format, args.format)):
            raise InvalidOption(f"--format {args.format} does not match the output name {args.output.name}")


# --- on this machine -------------------------------------------------------------------------------

def upscale_one(job: Job, upscaler, options: JobOptions, settings: Settings, progress=None) -> Path:
    """One image as the worker does one job: options resolved for this model and input, then ``run``
    (a video or animation: ``upscale_clip``)."""
    data = job.source.read_bytes()
    clip = video.probe_clip(data)
    if clip is not None:
        return upscale_clip(job, data, clip, upscaler, options, settings, progress)
    decoded = imageio.decode(data, max_pixels=settings.max_input_pixels)
    resolved = resolve_options(options.model_copy(update={"format": job.format}), upscaler.manifest,
                               decoded.info, settings.max_output_pixels)
    pixels = upscaler.run(decoded.pixels, resolved, progress=progress)
    imageio.write_image(job.target, pixels, resolved.format, quality=resolved.quality,
                        icc_profile=decoded.icc_profile)
    return job.target


def upscale_clip(job: Job, data: bytes, clip: video.ClipInfo, upscaler, options: JobOptions, settings: Settings,
                 progress=None) -> Path:
    """Every frame through the engine in chunks as the worker does a clip job (``model.frames``; the parts
    are kept in memory here: nothing to resume), then one file."""
    from model.frames import MemoryParts, upscale_clip as run_clip

    resolved = resolve_clip_options(options.model_copy(update={"format": job.format}), upscaler.manifest, clip,
                                    settings)
    result = run_clip(data, clip, upscaler, resolved, MemoryParts(), chunk_frames=settings.clip_chunk_frames,
                      progress=progress)
    job.target.parent.mkdir(parents=True, exist_ok=True)
    job.target.write_bytes(result.data)
    return job.target


def _tile_bar(bar: tqdm):
    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return progress


def run_local(args, options: JobOptions, jobs: list[Job],
              failures: list[tuple[Path, str]]) -> tuple[list[Path], str, float]:
    """Upscale ``jobs`` here; returns the files written, what wrote them and the seconds it took."""
    settings = settings_from(args)
    without_pyplot()
    try:
        from model.engine import load_upscaler, precision_line  # imports OpenVINO or TensorFlow
    except ModuleNotFoundError as exc:
        if exc.name not in ("tensorflow", "keras", "cv2", "scipy"):
            raise
        raise MissingExtra(f"upscaling on this machine needs TensorFlow: pip install 'esrgan-service[ml]' "
                           "(or use a service: --server URL / ESRGAN_SERVER)") from None

    upscaler = load_upscaler(options.model, scale=options.scale, strength=options.strength, settings=settings)
    print(f"esrgan: {upscaler.name} (x{upscaler.scale}), precision "
          f"{precision_line(upscaler.manifest.precision_setting(settings.precision), upscaler.backend)}, "
          f"runtime {upscaler.backend}", file=sys.stderr)
    start, written = time.perf_counter(), []
    single = len(jobs) == 1
    with tqdm(total=len(jobs), unit="tile" if single else "image", desc=upscaler.name, disable=None) as bar:
        for job in jobs:
            try:
                written.append(upscale_one(job, upscaler, options, settings, _tile_bar(bar) if single else None))
            except (ESRGANError, OSError, ValueError) as exc:  # a bad file must not stop the batch
                failures.append((job.source, str(exc)))
            if not single:
                bar.update()
    return written, f"{upscaler.name} (x{upscaler.scale}, {upscaler.precision})", time.perf_counter() - start


# --- the command -----------------------------------------------------------------------------------

def summary(written: list[Path], total: int, failures: list[tuple[Path, str]], by: str, seconds: float,
            output: Path) -> str:
    where = written[0] if len(written) == 1 else output
    return (f"upscaled {len(written)} of {total} image(s) with {by} in {seconds:.1f} s"
            + (f" -> {where}" if written else "") + (f"; {len(failures)} failed" if failures else ""))


def cmd_upscale(args) -> int:
    check_command(args)
    options = job_options(args)
    jobs, failures = plan(args.inputs, args.output, args.format)
    total = len(jobs) + len(failures)
    if not total:
        raise InvalidOption("no images found in " + ", ".join(map(str, args.inputs)))
    if args.server:
        from .remote import run_remote  # the same plan, run by a service (HTTP, no TensorFlow)

        written, by, seconds = run_remote(args, options, jobs, failures)
    else:
        written, by, seconds = run_local(args, options, jobs, failures)
    for source, message in failures:
        print(f"esrgan: failed: {source}: {message}", file=sys.stderr)
    print(summary(written, total, failures, by, seconds, args.output))
    return 1 if failures else 0
