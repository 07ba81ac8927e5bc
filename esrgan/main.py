"""``esrgan`` entry point. Each package registers its own subcommands; heavy imports (TensorFlow,
uvicorn) happen inside the command that needs them, so ``esrgan --help`` is instant."""
from __future__ import annotations

import argparse
import importlib
import sys

# module path -> function ``register(subparsers)`` adding that package's subcommands
COMMAND_MODULES = [
    "esrgan.upscale",  # upscale
    "esrgan.models",  # models, models install
    "model.convert.cli",  # convert
    "training.cli",  # prepare, train, eval, interpolate
    "api.cli",  # serve
    "worker.cli",  # worker
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esrgan", description="ESRGAN image super-resolution")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name in (module_name, module_name.split(".")[0]):  # that part is not installed/written yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from model.errors import ESRGANError

    try:
        return int(args.func(args) or 0)
    except ESRGANError as exc:  # a user-facing error: its message, not a traceback
        print(f"esrgan: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
