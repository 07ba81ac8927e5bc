"""Before/after crops of the real-world models for the README: a photo degraded the way uploads are
(``training.degrade``, fixed seed) -> bicubic, the PSNR model, and the real-world model at strength 0,
its default and 1, beside the original. Faces, fur, text and flat sky: where GAN artifacts (checkerboard,
halos, colour shifts) would show first. scikit-image's bundled photos (free to redistribute).

    python bench/real_figure.py [--models-dir DIR] [--out docs]
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from skimage import data  # noqa: E402

from model.artifacts import find_model  # noqa: E402
from model.engine import Upscaler  # noqa: E402
from model.settings import get_settings  # noqa: E402
from training.imresize import imresize  # noqa: E402
from training.metrics import psnr  # noqa: E402
from training.prepare import make_lr, mod_crop  # noqa: E402


def text_page():
    return np.repeat(data.text()[..., None], 3, axis=2)


# (what, photo, top, left, HR crop size, degradation seed)
CROPS = [("face", data.astronaut, 20, 150, 192, 3), ("fur", data.chelsea, 40, 100, 192, 5),
         ("text", text_page, 0, 40, 160, 7), ("sky", data.rocket, 0, 0, 192, 11)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models-dir", type=Path, default=get_settings().models_dir)
    ap.add_argument("--out", type=Path, default=Path("docs"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for scale in (4, 2):
        real_dir, real = find_model(args.models_dir, f"esrgan-real-x{scale}")
        psnr_dir, _ = find_model(args.models_dir, f"esrgan-psnr-x{scale}")
        default = real.interpolation.default_strength
        models = [(f"esrgan-psnr-x{scale}", Upscaler.from_artifact(psnr_dir))]
        models += [(f"real s={s:g}", Upscaler.from_artifact(real_dir, strength=s)) for s in (0.0, default, 1.0)]
        fig, axes = plt.subplots(len(CROPS), 3 + len(models), figsize=(3.1 * (3 + len(models)), 3.3 * len(CROPS)))
        for row, (what, load, top, left, size, seed) in zip(axes, CROPS):
            hr = mod_crop(load(), scale)
            lr = make_lr(hr, scale, "realworld", seed, what)
            window = (slice(top, top + size), slice(left, left + size))
            lr_window = (slice(top // scale, (top + size) // scale), slice(left // scale, (left + size) // scale))
            bic = imresize(lr, scale)
            panels = [(f"{what}: input (nearest)", np.kron(lr[lr_window], np.ones((scale, scale, 1), np.uint8))),
                      (f"bicubic {psnr(bic, hr, scale):.2f} dB", bic[window])]
            for name, up in models:
                sr = up.upscale(lr)
                panels.append((f"{name} {psnr(sr, hr, scale):.2f} dB", sr[window]))
            panels.append(("original", hr[window]))
            for ax, (title, img) in zip(row, panels):
                ax.imshow(img, interpolation="nearest")
                ax.set_title(title, fontsize=9)
                ax.axis("off")
        fig.suptitle(f"x{scale}, real-world degraded input (blur, resize, noise, JPEG; training.degrade): "
                     "PSNR on Y of the whole photo", fontsize=11)
        fig.tight_layout()
        path = args.out / f"real_x{scale}.png"
        fig.savefig(path, dpi=72)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
