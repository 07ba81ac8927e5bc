"""README crops for the distilled models: input, bicubic, ours at the default strength, and the teacher
(Real-ESRGAN x4plus), side by side at 2x zoom, on a face, text, foliage and a compressed cartoon. Inputs are
degraded like uploads (one round of blur, resize, noise and JPEG, fixed seed); with moderate noise and JPEG (``UPLOAD``); the cartoon is drawn here and saved as a quality-30 JPEG at the
input size. scikit-image's bundled photos (free to redistribute).

    python bench/distill_figure.py [--scale 4] [--teacher realesrgan-x4plus] [--out docs]
"""
import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402
from skimage import data  # noqa: E402

from model import official  # noqa: E402
from model.artifacts import find_model, read_manifest  # noqa: E402
from model.engine import Upscaler  # noqa: E402
from model.options import resolve_strength  # noqa: E402
from model.settings import get_settings  # noqa: E402
from training import degrade  # noqa: E402
from training.imresize import imresize  # noqa: E402


def cartoon() -> np.ndarray:
    """Flat colours, black outlines and lettering: what anime/cartoon uploads look like."""
    im = Image.new("RGB", (384, 384), (250, 240, 210))
    d = ImageDraw.Draw(im)
    d.ellipse((40, 60, 250, 270), fill=(255, 190, 60), outline=(20, 20, 20), width=6)
    d.ellipse((100, 120, 130, 160), fill=(20, 20, 20))
    d.ellipse((170, 120, 200, 160), fill=(20, 20, 20))
    d.arc((90, 150, 210, 230), 20, 160, fill=(20, 20, 20), width=6)
    d.rectangle((230, 200, 360, 340), fill=(80, 150, 230), outline=(20, 20, 20), width=6)
    d.polygon([(260, 40), (350, 60), (300, 150)], fill=(220, 60, 90), outline=(20, 20, 20))
    font = ImageFont.load_default(size=44)
    d.text((40, 300), "ZOOM!", fill=(20, 20, 20), font=font)
    return np.asarray(im)


def gray(img):
    return np.repeat(img[..., None], 3, axis=2)


def sign() -> np.ndarray:
    """Printed text on paper (data.text() is too small to read after a x4 reduction)."""
    im = Image.new("RGB", (384, 256), (236, 232, 222))
    d = ImageDraw.Draw(im)
    for i, line in enumerate(("Super-resolution", "keeps the edges", "of every letter.")):
        d.text((16, 16 + 76 * i), line, fill=(30, 30, 40), font=ImageFont.load_default(size=40))
    return np.asarray(im)


# Uploads as most arrive: one round, moderate noise and JPEG (the training ranges reach sigma 30 / quality 30)
UPLOAD = degrade.StageConfig(noise_range=(1.0, 8.0), poisson_scale_range=(0.05, 0.8), jpeg_range=(60, 90),
                             blur_sigma=(0.2, 1.5))


# (what, HR image, crop top, left, HR crop size, degradation seed; None = the cartoon's JPEG at input size)
ROWS = [("face", lambda: data.astronaut(), 20, 150, 192, 3),
        ("text", sign, 0, 0, 192, 7),
        ("foliage", lambda: gray(data.grass()), 100, 100, 192, 5),
        ("compressed cartoon", cartoon, 40, 40, 240, None)]


def make_input(hr: np.ndarray, scale: int, seed) -> np.ndarray:
    if seed is None:
        small = cv2.resize(hr, (hr.shape[1] // scale, hr.shape[0] // scale), interpolation=cv2.INTER_AREA)
        buf = io.BytesIO()
        Image.fromarray(small).save(buf, "JPEG", quality=30)
        return np.asarray(Image.open(buf).convert("RGB"))
    lr = degrade.degrade_once(hr.astype(np.float32) / 255, scale, seed, UPLOAD)
    return np.clip(np.rint(lr * 255), 0, 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--model", help="default: the default model of --scale")
    ap.add_argument("--teacher", default="realesrgan-x4plus")
    ap.add_argument("--out", type=Path, default=Path("docs"))
    args = ap.parse_args()
    settings = get_settings()
    if args.model:  # a name, or an artifact folder such as a run's export
        ours_dir = official.folder_of(settings, args.model)
        ours = read_manifest(ours_dir)
    else:
        ours_dir, ours = find_model(settings.model_dirs, None, args.scale, settings.default_models)
    teacher = Upscaler.from_artifact(official.folder_of(settings, args.teacher))
    student = Upscaler.from_artifact(ours_dir, strength=resolve_strength(ours, None))  # what a user gets
    s = args.scale
    fig, axes = plt.subplots(len(ROWS), 4, figsize=(4 * 3.2, len(ROWS) * 3.4))
    for row, (what, load, top, left, size, seed) in zip(axes, ROWS):
        hr = load()
        hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
        lr = make_input(hr, s, seed)
        out = teacher.upscale(lr)
        if teacher.scale != s:  # an x2 student's teacher: the x4 output area-downscaled
            out = cv2.resize(out, (lr.shape[1] * s, lr.shape[0] * s), interpolation=cv2.INTER_AREA)
        win = (slice(top, top + size), slice(left, left + size))  # outputs are the original's size
        lr_win = (slice(top // s, (top + size) // s), slice(left // s, (left + size) // s))
        panels = [(f"{what}: input", np.kron(lr[lr_win], np.ones((s, s, 1), np.uint8))),
                  ("bicubic", imresize(lr, s)[win]),
                  (f"{ours.name} (default {ours.interpolation.default_strength:g})" if ours.interpolation
                   else ours.name, student.upscale(lr)[win]),
                  (f"teacher {args.teacher}", out[win])]
        for ax, (title, img) in zip(row, panels):
            ax.imshow(img, interpolation="nearest")  # ~2x zoom at this figure size
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"distill_x{s}.png"
    fig.savefig(path, dpi=110)
    print(path)


if __name__ == "__main__":
    main()
