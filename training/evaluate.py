"""Score a model on a folder of ``HR/`` + ``LR/`` pairs by the standard SR protocol (Y channel,
``scale`` pixels of border cropped), with the bicubic baseline (MATLAB ``imresize`` up) beside it; the
texture ratio (mean |Laplacian| of the output over the original's) tells detail from blur."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from .images import IMAGE_EXTS, load_rgb
from .imresize import imresize
from .metrics import evaluate_pair

Upscale = Callable[[np.ndarray], np.ndarray]  # HxWx3 uint8 LR -> (sH)x(sW)x3 uint8 SR


def find_pairs(data_dir: Path | str) -> list[tuple[str, Path, Path]]:
    """``(name, lr, hr)`` for every image in ``data_dir/LR`` with a namesake (same stem) in ``data_dir/HR``."""
    data_dir = Path(data_dir)
    lr_dir, hr_dir = data_dir / "LR", data_dir / "HR"
    if not lr_dir.is_dir() or not hr_dir.is_dir():
        raise ValueError(f"{data_dir}: expected HR/ and LR/ folders with the same file names")
    hr = {p.stem: p for p in hr_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    pairs = [(p.stem, p, hr[p.stem]) for p in sorted(lr_dir.iterdir())
             if p.suffix.lower() in IMAGE_EXTS and p.stem in hr]
    if not pairs:
        raise ValueError(f"{data_dir}: no LR image has a namesake in HR/")
    return pairs


def keras_upscale(model) -> Upscale:
    """Whole-image inference with a [0, 1] Keras generator (used during training, on the EMA model)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])  # one trace for all sizes
    def forward(x):
        return model(x, training=False)

    def run(lr: np.ndarray) -> np.ndarray:
        out = forward(tf.constant(lr[None].astype(np.float32) / 255.0))[0].numpy()
        return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)

    return run


def torch_upscale(model, device) -> Upscale:
    """Whole-image inference with a [0, 1] PyTorch generator (the torch backend's EMA model)."""
    import torch

    @torch.no_grad()
    def run(lr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(lr.copy()).permute(2, 0, 1)[None].float().div(255).to(device)
        return model(x).clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).cpu().numpy()

    return run


def engine_upscale(folder: Path | str, strength: float | None = None, ensemble: bool = False) -> Upscale:
    """The artifact run the way users run it: the inference engine, one pass (no tiling)."""
    from functools import partial

    from model.engine import Upscaler

    return partial(Upscaler.from_artifact(folder, strength=strength, tile=0).upscale, ensemble=ensemble)


def evaluate(upscale: Upscale, data_dir: Path | str, scale: int, progress: bool = False) -> dict:
    """Per-image and mean PSNR/SSIM of ``upscale`` and of bicubic upscaling on ``data_dir``."""
    pairs = find_pairs(data_dir)
    if progress:  # tqdm only then: the torch backend runs where it may not be installed
        from tqdm import tqdm

        pairs = tqdm(pairs, desc="eval", leave=False)
    rows = []
    for name, lr_path, hr_path in pairs:
        lr, hr = load_rgb(lr_path), load_rgb(hr_path)
        h, w = lr.shape[0] * scale, lr.shape[1] * scale
        if hr.shape[0] < h or hr.shape[1] < w:
            raise ValueError(f"{hr_path}: {hr.shape[1]}x{hr.shape[0]} is smaller than x{scale} its LR "
                             f"({lr.shape[1]}x{lr.shape[0]}): wrong --scale?")
        hr = hr[:h, :w]  # "mod crop": HR trimmed to a multiple of the scale, as the LR was made
        model = evaluate_pair(upscale(lr), hr, scale)
        base = evaluate_pair(imresize(lr, scale), hr, scale)
        rows.append({"image": name, **model, **{f"bicubic_{k}": v for k, v in base.items()}})
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "image"}
    return {"data": str(data_dir), "scale": scale, "images": rows, "mean": mean}


def validation_sets(specs: list[str]) -> dict[str, Path]:
    """``--val`` values, ``DIR`` or ``NAME=DIR``, by name; a bare ``DIR`` is named by its parent folder
    (``Set5/x4`` -> ``Set5``), or by itself when it has none."""
    sets = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or Path(spec).is_dir():
            folder = spec
            name = Path(spec).parent.name or Path(spec).name
        sets[name] = Path(folder)
    return sets


def score_line(name: str, scale: int, mean: dict) -> str:
    return (f"{name} x{scale} PSNR {mean['psnr']:.3f} dB, SSIM {mean['ssim']:.4f} "
            f"(bicubic {mean['bicubic_psnr']:.3f} dB)")


def format_table(result: dict, label: str = "model") -> str:
    lines = [f"{'image':<16} {label + ' PSNR':>12} {'SSIM':>7} {'texture':>7} {'bicubic PSNR':>13} {'SSIM':>7} "
             f"{'texture':>7}"]
    for r in [*result["images"], {"image": "mean", **result["mean"]}]:
        lines.append(f"{r['image']:<16} {r['psnr']:>12.3f} {r['ssim']:>7.4f} {r['texture']:>7.3f} "
                     f"{r['bicubic_psnr']:>13.3f} {r['bicubic_ssim']:>7.4f} {r['bicubic_texture']:>7.3f}")
    return "\n".join(lines)


def write_json(result: dict, path: Path | str) -> None:
    Path(path).write_text(json.dumps(result, indent=2) + "\n")
