"""What the ``esrgan`` commands that use models share: the ``--models-dir`` flag and settings from the flags."""
from __future__ import annotations

import sys
from pathlib import Path

from model.settings import Settings, get_settings


def models_dir_option(parser) -> None:
    parser.add_argument("--models-dir", type=Path, help="folder of model artifacts (default: ESRGAN_MODELS_DIR, "
                        "else the shipped models)")


def settings_from(args) -> Settings:
    """The shared settings with this command's overrides (flags given win over the environment)."""
    overrides = {k: v for k, v in (("models_dir", args.models_dir), ("precision", getattr(args, "precision", None)))
                 if v is not None}
    return Settings(**overrides) if overrides else get_settings()


def without_pyplot() -> None:
    """Keras imports matplotlib.pyplot (for its plotting helpers) if it can: ~1 s of CPU per start that
    upscaling never uses. Marking it absent makes Keras skip it, in this one-command process only."""
    if "matplotlib.pyplot" not in sys.modules:
        sys.modules["matplotlib.pyplot"] = None
