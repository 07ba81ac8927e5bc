"""Finding and reading image files (Pillow and NumPy only, no TensorFlow: evaluation, preparation and the
PyTorch trainer use it too)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from .imresize import imresize

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def list_images(folder: Path | str, min_size: int = 0) -> list[str]:
    """Image files below ``folder`` (recursive, sorted) whose smaller side is at least ``min_size``.
    Sizes come from the file headers, so listing a large folder is quick."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder of images")
    files, small = [], 0
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS):
        try:
            with Image.open(path) as im:
                w, h = im.size
        except OSError:
            continue  # not an image after all; training data folders often hold stray files
        if min(w, h) < min_size:
            small += 1
            continue
        files.append(str(path))
    if not files:
        raise ValueError(f"{folder}: no usable images (need at least {min_size}x{min_size} px; "
                         f"{small} smaller ones skipped)")
    return files


def load_rgb(path: Path | str) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB (grey and palette images converted)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def scaled_images(folder: Path | str, scale: int, rescales: list[float]) -> Iterator[np.ndarray]:
    """Every image below ``folder`` at each of ``rescales`` (MATLAB bicubic; smaller copies are a standard
    scale augmentation), uint8 HxWx3 cut to multiples of ``scale``, one at a time."""
    for path in list_images(folder):
        base = load_rgb(path)
        for r in rescales:
            hr = base if r == 1 else imresize(base, r)
            h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
            yield np.ascontiguousarray(hr[:h, :w])
