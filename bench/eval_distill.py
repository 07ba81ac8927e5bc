"""Distillation quality: PSNR-Y to the original, texture ratio and likeness (PSNR-Y to the teacher's output on
the same input) on photos degraded like uploads (Set5 + Set14 HR, one round of blur, resize, noise and JPEG,
``esrgan prepare --degradation realworld-once --seed 0``), plus time per image in the same engine. ``--sets`` scores
other folders of HR photos the same way (e.g. a BSD200 subset, which calibrates these numbers against the team's
held-out BSD100: BENCHMARKS.md).

    python bench/eval_distill.py --datasets ../shared/datasets/val --teacher realesrgan-x4plus \
        --model esrgan-real-x4 --model runs/distill/esrgan-real-x4 [--strengths 0,0.5,1] [--json out.json]

The teacher's outputs are kept in --work (computed once, float32, one pass per image).
"""
import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from model import official
from model.artifacts import read_manifest
from model.engine import Upscaler
from model.options import resolve_strength
from model.settings import get_settings
from training.config import PrepareConfig
from training.evaluate import find_pairs
from training.images import load_rgb
from training.metrics import grid_peak, psnr, rgb_to_y, texture_ratio
from training.prepare import prepare


def held_out(datasets: Path, work: Path, scale: int, sets=("Set5", "Set14")) -> list[tuple[str, Path, Path]]:
    pairs = []
    for name in sets:
        out = work / f"once-{name}-x{scale}"
        if not (out / "LR").is_dir():
            prepare(PrepareConfig(src=str(datasets / name / f"x{scale}" / "HR"), out=str(out), scale=scale,
                                  degradation="realworld-once", seed=0), progress=False)
        pairs += [(f"{name}-{image}", lr, hr) for image, lr, hr in find_pairs(out)]  # names repeat across sets
    return pairs


def teacher_outputs(teacher: Path, pairs, work: Path, scale: int) -> dict[str, np.ndarray]:
    """The teacher's output per image; for x2, its x4 output area-downscaled by 2 (the x2 students' target)."""
    up, outs = None, {}
    for image, lr_path, _ in pairs:
        path = work / f"teacher-{teacher.name}-x{scale}" / f"{image}.npy"
        if not path.is_file():
            up = up or Upscaler.from_artifact(teacher, precision="float32", tile=0, edge_pad=8)
            path.parent.mkdir(parents=True, exist_ok=True)
            out = up.upscale(load_rgb(lr_path))
            if up.scale != scale:
                f = up.scale // scale
                out = cv2.resize(out, (out.shape[1] // f, out.shape[0] // f), interpolation=cv2.INTER_AREA)
            np.save(path, out)
        outs[image] = np.load(path)
    return outs


def score(up: Upscaler, pairs, teacher: dict, scale: int) -> dict:
    rows, seconds = [], 0.0
    for image, lr_path, hr_path in pairs:
        lr, hr = load_rgb(lr_path), load_rgb(hr_path)
        start = time.perf_counter()
        sr = up.upscale(lr)
        seconds += time.perf_counter() - start
        rows.append((psnr(sr, hr, scale), texture_ratio(sr, hr, scale), psnr(sr, teacher[image], scale),
                     grid_peak(rgb_to_y(sr), scale)))
    psnr_y, texture, likeness, grid = np.mean(rows, axis=0)
    return {"psnr": float(psnr_y), "texture": float(texture), "likeness": float(likeness), "grid": float(grid),
            "seconds_per_image": seconds / len(pairs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=Path, required=True)
    ap.add_argument("--teacher", default="realesrgan-x4plus")
    ap.add_argument("--model", action="append", required=True, help="model name or artifact folder (repeat)")
    ap.add_argument("--strengths", default="", help="comma-separated strengths for interpolated models "
                    "(default: the model's default)")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--work", type=Path, default=Path("runs/eval-distill"))
    ap.add_argument("--precision", default="auto", help="engine precision for every model (auto: each model's "
                    "own choice; the official ones pin float32)")
    ap.add_argument("--sets", default="Set5,Set14", help="comma-separated sets under --datasets, each with "
                    "xSCALE/HR (another set calibrates these numbers against a held-out one)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    settings = get_settings()
    pairs = held_out(args.datasets, args.work, args.scale, args.sets.split(","))
    teacher = teacher_outputs(official.folder_of(settings, args.teacher), pairs, args.work, args.scale)
    grid = np.mean([grid_peak(rgb_to_y(out), args.scale) for out in teacher.values()])
    print(f"teacher {args.teacher}: grid peak {grid:.2f} (stripes on the x{args.scale} sub-pixel grid; ~1 for none)")
    results = []
    for name in args.model:
        folder = official.folder_of(settings, name)
        manifest = read_manifest(folder)
        blends = manifest.interpolation is not None  # a single network is scored once
        # no --strengths: the model's default, what a user gets (the engine alone would run the sharp end)
        strengths = [float(s) for s in args.strengths.split(",") if s and blends] or [resolve_strength(manifest, None)]
        for strength in strengths:
            up = Upscaler.from_artifact(folder, strength=strength, precision=args.precision)
            r = {"model": str(name), "strength": strength, "precision": up.precision,
                 **score(up, pairs, teacher, args.scale)}
            results.append(r)
            print(f"{name:<40} s={strength if strength is not None else '-':<5} PSNR-Y {r['psnr']:.2f}  texture "
                  f"{r['texture']:.3f}  likeness {r['likeness']:.2f}  grid {r['grid']:.2f}  "
                  f"{r['seconds_per_image']:.2f} s/img ({up.precision})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
