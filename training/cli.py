"""``esrgan prepare | train | eval | interpolate``. TensorFlow is imported inside each command."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path

from model.errors import ESRGANError

from .config import PrepareConfig, TrainConfig

# errors a user can cause (bad paths, bad options, bad data): a message and exit code 2, no traceback
USER_ERRORS = (ESRGANError, ValueError, FileNotFoundError, NotADirectoryError)


TRAIN_DESCRIPTION = ("Options default to training/config.py TrainConfig. --backend tf (TensorFlow: every stage, "
                     "exports an artifact) or torch (PyTorch, psnr and distill stages: writes a checkpoint for esrgan "
                     "convert). "
                     "With --resume, the run in --out continues with its saved config; options given override it.")


def register(sub) -> None:
    p = sub.add_parser("prepare", help="resize a folder, make LR images and augmented HR/LR patch pairs")
    p.add_argument("src", help="folder of images (searched recursively)")
    p.add_argument("out", help="output folder: HR/, LR/ and with --crops patches/HR, patches/LR")
    _add_dataclass_options(p, PrepareConfig, skip={"src", "out"}, suppress=False)
    p.set_defaults(func=_run(_prepare))

    p = sub.add_parser("train", help="train a generator (stage psnr, then gan) and export it as an artifact",
                       description=TRAIN_DESCRIPTION)
    add_train_options(p)
    p.set_defaults(func=_run(_train))

    p = sub.add_parser("eval", help="PSNR/SSIM (Y, border crop = scale) of a model on HR/ + LR/ pairs, with bicubic")
    p.add_argument("--model", required=True, help="model name in --models-dir, or an artifact folder")
    p.add_argument("--data", required=True, help="folder holding HR/ and LR/ with the same file names")
    p.add_argument("--scale", type=int, required=True)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--strength", type=float, help="interpolation strength (interpolated models only)")
    p.add_argument("--ensemble", action="store_true", help="self-ensemble: average the 8 flips/rotations (8x time)")
    p.add_argument("--models-dir", help="models folder (default: settings' ESRGAN_MODELS_DIR)")
    p.set_defaults(func=_run(_eval))

    p = sub.add_parser("interpolate", help="artifact blending a PSNR and a GAN model, chosen by strength at inference")
    p.add_argument("psnr_artifact", help="PSNR-stage artifact folder (strength 0)")
    p.add_argument("gan_artifact", help="GAN-stage artifact folder of the same network (strength 1)")
    p.add_argument("--name", required=True, help="name of the new artifact")
    p.add_argument("--default-strength", type=float, default=0.8)
    p.add_argument("--models-dir", help="where to write it (default: settings' ESRGAN_MODELS_DIR)")
    p.set_defaults(func=_run(_interpolate))


def add_train_options(parser) -> None:
    """The options of ``esrgan train``, one per ``TrainConfig`` field; absent ones stay out of the namespace."""
    parser.add_argument("data_pos", nargs="?", metavar="DATA", help="training images folder (same as --data)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    _add_dataclass_options(parser, TrainConfig, skip={"progress"}, suppress=True)
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=argparse.SUPPRESS)


def train_config(args, defaults: dict | None = None) -> TrainConfig:
    """The run's config: ``defaults``, then (with ``--resume``) the saved config, then the options given."""
    given = {k: v for k, v in vars(args).items() if k not in ("command", "func", "resume", "data_pos")}
    if args.data_pos:
        given["data"] = args.data_pos
    saved = {}
    if args.resume:
        config = Path(given.get("out", TrainConfig.out)) / "config.json"
        if not config.is_file():
            raise FileNotFoundError(f"{config}: no run to resume (give the run's --out)")
        saved = json.loads(config.read_text())
    if given.get("teacher") and "stage" not in given:
        given["stage"] = "distill"
    cfg = TrainConfig(**{**(defaults or {}), **saved, **given})  # checks the options before a framework loads
    if args.resume and cfg.backend == "torch":
        raise ValueError("the torch backend saves one checkpoint, at the end: continue from it with "
                         f"--init {cfg.out}/{cfg.arch}_x{cfg.scale}.pth instead of --resume")
    return cfg


def run_training(cfg: TrainConfig, resume: bool = False) -> str:
    """Train with ``cfg.backend``; returns what to tell the user."""
    if cfg.backend == "torch":
        from .torch_train import train as torch_train

        ckpt = torch_train(cfg)
        return f"wrote {ckpt}; make it an artifact with: esrgan convert {ckpt} --name {cfg.name} --scale {cfg.scale}"
    from .train import train

    return f"exported {train(cfg, resume=resume)}"


def _add_dataclass_options(parser, cls, skip: set[str], suppress: bool) -> None:
    """One ``--option`` per config field, typed from the dataclass, so the knobs live in one place.
    ``suppress``: options not given stay out of the namespace (so --resume can tell them apart)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = hints[f.name]
        repeated = typing.get_origin(kind) is list
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        kind = args[0] if args else kind
        default = f.default if f.default is not dataclasses.MISSING else None
        opt = "--" + f.name.replace("_", "-")
        extra = {"default": argparse.SUPPRESS} if suppress else {"default": default}
        if repeated:
            parser.add_argument(opt, type=kind, action="append", metavar=f.name.upper(), help="(repeatable)", **extra)
        elif kind is bool:
            parser.add_argument(opt, action=argparse.BooleanOptionalAction, help=f"(default {default})", **extra)
        else:
            parser.add_argument(opt, type=kind, metavar=f.name.upper(), help=f"(default {default})", **extra)


def _run(command):
    def wrapped(args) -> int:
        try:
            return command(args) or 0
        except USER_ERRORS as exc:
            print(f"esrgan {args.command}: error: {exc}", file=sys.stderr)
            return 2
    return wrapped


def _prepare(args) -> int:
    from .prepare import prepare

    fields = {f.name for f in dataclasses.fields(PrepareConfig)}
    counts = prepare(PrepareConfig(**{k: v for k, v in vars(args).items() if k in fields}))
    print(f"wrote {counts['images']} HR/LR images and {counts['patches']} patch pairs to {args.out}"
          + (f" ({counts['too_small']} patches skipped: image too small after rescaling)" if counts["too_small"] else ""))
    return 0


def _train(args) -> int:
    print(run_training(train_config(args), resume=args.resume))
    return 0


def _models_dir(args) -> Path:
    if args.models_dir:
        return Path(args.models_dir)
    from model.settings import get_settings

    return get_settings().models_dir


def _eval(args) -> int:
    from model.artifacts import MANIFEST, find_model

    from .evaluate import engine_upscale, evaluate, find_pairs, format_table, write_json

    find_pairs(args.data)  # a wrong folder is reported before the model loads
    if (Path(args.model) / MANIFEST).is_file():
        folder = Path(args.model)
    else:
        folder, _ = find_model(_models_dir(args), args.model)
    result = evaluate(engine_upscale(folder, args.strength, args.ensemble), args.data, args.scale, progress=sys.stderr.isatty())
    result["model"] = folder.name
    print(format_table(result, folder.name))
    if args.json:
        write_json(result, args.json)
    return 0


def _interpolate(args) -> int:
    from .interpolate import interpolate_artifacts

    out = _models_dir(args) / args.name
    interpolate_artifacts(args.psnr_artifact, args.gan_artifact, out, args.name, args.default_strength)
    print(f"wrote {out}")
    return 0
