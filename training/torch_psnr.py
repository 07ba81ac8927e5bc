"""``python -m training.torch_psnr``: the old name of ``esrgan train --backend torch`` (``training.torch_train``),
kept for the run scripts of the lent GPU machines. The same options (``esrgan train``'s, read into the same
``TrainConfig``), with this entry point's old defaults and flag names:

    python -m training.torch_psnr --data DIR_OF_IMAGES --scale 4 --seconds 420 --out run_x4
    python -m training.torch_psnr --data DIR --scale 4 --degradation realworld --patch 64 --out real_x4

Needs neither TensorFlow nor pydantic nor tqdm (nor the ``esrgan`` command installed): only PyTorch, NumPy,
Pillow, OpenCV and SciPy (``tests/test_torch_psnr.py`` runs it with the others unimportable).
"""
from __future__ import annotations

import argparse

from training.cli import add_train_options, run_training, train_config
from training.config import TrainConfig

# what the old script defaulted to, and what the run scripts rely on: a time budget with no step limit
DEFAULTS = dict(backend="torch", batch_size=32, lr=4e-4, seconds=420.0, steps=0, log_every=500, warmup=500,
                rescales="1.0,0.8,0.6")
PATCH = 48  # default LR patch side; --hr-crop is patch x scale


def parser() -> argparse.ArgumentParser:
    defaults = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in DEFAULTS.items())
    ap = argparse.ArgumentParser(prog="python -m training.torch_psnr", description=__doc__.split("\n")[0],
                                 epilog=f"Here the defaults of these options are: {defaults}, --patch {PATCH}.")
    add_train_options(ap)
    suppress = argparse.SUPPRESS
    ap.add_argument("--batch", dest="batch_size", type=int, default=suppress, help="= --batch-size (default 32)")
    ap.add_argument("--ema", dest="ema_decay", type=float, default=suppress, help="= --ema-decay")
    ap.add_argument("--max-steps", dest="steps", type=int, default=suppress, help="= --steps (default 0: time only)")
    ap.add_argument("--patch", type=int, default=suppress, help=f"LR patch side, = --hr-crop / scale (default {PATCH})")
    return ap


def config(argv=None) -> TrainConfig:
    ap = parser()
    args = ap.parse_args(argv)
    patch = vars(args).pop("patch", None)
    if patch or "hr_crop" not in vars(args):
        args.hr_crop = (patch or PATCH) * getattr(args, "scale", TrainConfig.scale)
    try:
        return train_config(args, DEFAULTS)
    except (ValueError, FileNotFoundError) as exc:
        ap.error(str(exc))


def main(argv=None) -> int:
    print(run_training(config(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
