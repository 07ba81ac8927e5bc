"""``esrgan convert``: a PyTorch ESRGAN/Real-ESRGAN checkpoint -> a model artifact."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert an ESRGAN / Real-ESRGAN model (PyTorch checkpoint or ncnn) into a model artifact",
        description="Read a .pth (tensors only, never pickled code) or .safetensors checkpoint, or an ncnn .param "
                    "+ .bin pair (read as data), detect its network from tensor names and shapes or from the "
                    "graph's structure, and write models-dir/NAME for upscale and serve.")
    p.add_argument("checkpoint", type=Path, help="the .pth / .pt / .safetensors file, or an ncnn .param")
    p.add_argument("--bin", type=Path, metavar="PATH", help="the ncnn weights (default: the .bin beside the .param)")
    p.add_argument("--name", required=True, help="name of the new model (its folder in the models dir)")
    p.add_argument("--models-dir", type=Path, help="where to write it (default: settings' models_dir)")
    p.add_argument("--scale", type=int, help="expected scale; refuse the file if it holds another")
    p.add_argument("--psnr", type=Path, metavar="CHECKPOINT",
                   help="same network's smooth end for network interpolation (strength 0), e.g. RRDB_PSNR_x4.pth "
                        "or realesr-general-wdn-x4v3.pth; upscale then takes --strength")
    p.add_argument("--strength", type=float, default=0.8, help="default interpolation strength (with --psnr)")
    p.add_argument("--description", help="manifest description (default: known file's, else its name)")
    p.add_argument("--license", help="manifest licence (default: known file's, else none)")
    p.add_argument("--default", action="store_true", help="mark it the default model for its scale")
    p.add_argument("--force", action="store_true", help="replace an existing model of that name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ESRGANError
    from ..settings import get_settings
    from . import convert_checkpoint, convert_ncnn

    models_dir = args.models_dir or get_settings().models_dir
    try:
        if args.checkpoint.suffix == ".param":
            if args.psnr:
                raise ESRGANError("--psnr applies to PyTorch checkpoints, not ncnn models")
            manifest = convert_ncnn(args.checkpoint, models_dir, args.name, bin_path=args.bin, scale=args.scale,
                                    description=args.description, license=args.license, default=args.default,
                                    overwrite=args.force)
        elif args.bin:
            raise ESRGANError("--bin goes with an ncnn .param file")
        else:
            manifest = convert_checkpoint(args.checkpoint, models_dir, args.name, scale=args.scale,
                                          description=args.description, license=args.license,
                                          default=args.default, overwrite=args.force, psnr=args.psnr,
                                          default_strength=args.strength)
    except ESRGANError as exc:
        print(f"esrgan convert: {exc}", file=sys.stderr)
        return 1
    network = manifest.training["converted_from"]["network"]
    print(f"{manifest.name}: {network}, {manifest.training['num_params']:,} parameters -> "
          f"{Path(models_dir) / manifest.name}")
    return 0
