"""Offline data preparation (the seed design's pipeline): resize a folder of photos, make their LR
versions at a scale factor, and optionally write augmented patch pairs.

Every image is read as 8-bit RGB, optionally resized by ``resize``, trimmed to a multiple of ``scale``
("mod crop") and written as ``out/HR/name.png`` with ``out/LR/name.png`` = MATLAB bicubic 1/scale, or with
``degradation="realworld"`` Real-ESRGAN's second-order degradation seeded by (seed, file name): the
deterministic real-world validation set (``esrgan prepare Set5/x4/HR val/real-Set5-x4 --degradation realworld``).
With ``crops`` > 0, ``out/patches/HR`` and ``out/patches/LR`` receive that many pairs per image: the
image rescaled by a random factor (and its LR made from that), then one crop, one rotation and one
flip applied alike to HR and LR, at matching positions, so the pairs stay aligned.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from . import degrade
from .config import VAL_DEGRADATIONS, PrepareConfig
from .images import list_images, load_rgb
from .imresize import imresize


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
    return img[:h, :w]


def augment_pair(hr: np.ndarray, lr: np.ndarray, scale: int, crop: int, rng: np.random.Generator):
    """One random aligned crop of an (HR, LR) pair, then the same rotation and flip on both."""
    lc = crop // scale
    y = int(rng.integers(0, lr.shape[0] - lc + 1))
    x = int(rng.integers(0, lr.shape[1] - lc + 1))
    hr = hr[y * scale:(y + lc) * scale, x * scale:(x + lc) * scale]
    lr = lr[y:y + lc, x:x + lc]
    k, flip = int(rng.integers(0, 4)), bool(rng.integers(0, 2))
    hr, lr = np.rot90(hr, k), np.rot90(lr, k)
    if flip:
        hr, lr = hr[:, ::-1], lr[:, ::-1]
    return np.ascontiguousarray(hr), np.ascontiguousarray(lr)


def make_lr(hr: np.ndarray, scale: int, degradation: str, seed: int, name: str) -> np.ndarray:
    """The LR image of a mod-cropped uint8 HR image: MATLAB bicubic, or the real-world degradation
    seeded by ``seed`` and the image's name (so a validation set is the same on every machine)."""
    if degradation == "bicubic":
        return imresize(hr, 1.0 / scale)
    rng = degrade.pair_seed(seed, zlib.crc32(name.encode()))
    fn = degrade.degrade if degradation == "realworld" else degrade.degrade_once
    lr = fn(hr.astype(np.float32) / 255.0, scale, rng)
    return np.round(lr * 255.0).astype(np.uint8)


def _save(img: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def prepare(cfg: PrepareConfig, progress: bool = True) -> dict:
    """Returns counts: images written, patch pairs written, images too small for a patch."""
    from tqdm import tqdm

    if cfg.crop % cfg.scale:
        raise ValueError(f"--crop {cfg.crop} must be a multiple of --scale {cfg.scale}")
    if cfg.degradation not in VAL_DEGRADATIONS:
        raise ValueError(f"--degradation must be one of {VAL_DEGRADATIONS}, got {cfg.degradation!r}")
    if not 0 < cfg.resize <= 4 or not 0 < cfg.min_scaling <= 1:
        raise ValueError("--resize must be in (0, 4] and --min-scaling in (0, 1]")
    src, out = Path(cfg.src), Path(cfg.out)
    rng = np.random.default_rng(cfg.seed)
    counts = {"images": 0, "patches": 0, "too_small": 0}
    for path in tqdm(list_images(src, cfg.scale), desc="prepare", disable=not progress):
        stem = Path(path).relative_to(src).with_suffix("")
        img = load_rgb(path)
        if cfg.resize != 1.0:
            img = imresize(img, cfg.resize)
        hr = mod_crop(img, cfg.scale)
        _save(hr, out / "HR" / f"{stem}.png")
        _save(make_lr(hr, cfg.scale, cfg.degradation, cfg.seed, str(stem)), out / "LR" / f"{stem}.png")
        counts["images"] += 1
        for i in range(cfg.crops):
            factor = rng.uniform(cfg.min_scaling, 1.0)
            scaled = mod_crop(imresize(hr, factor) if factor < 1.0 else hr, cfg.scale)
            if min(scaled.shape[:2]) < cfg.crop:
                counts["too_small"] += 1
                continue
            hr_patch, lr_patch = augment_pair(scaled, imresize(scaled, 1.0 / cfg.scale), cfg.scale, cfg.crop, rng)
            _save(hr_patch, out / "patches" / "HR" / f"{stem}_{i:03d}.png")
            _save(lr_patch, out / "patches" / "LR" / f"{stem}_{i:03d}.png")
            counts["patches"] += 1
    return counts
