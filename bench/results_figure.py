"""Before/after crops of the shipped models for the README: HR photo -> MATLAB-bicubic LR -> bicubic
upscale vs the model, beside the original. Uses scikit-image's bundled photos (free to redistribute).

    python bench/results_figure.py [--models-dir DIR] [--out docs]
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

# (photo, top, left, HR crop size): regions with texture and edges
CROPS = [("astronaut", data.astronaut, 40, 180, 160), ("chelsea", data.chelsea, 60, 120, 160),
         ("coffee", data.coffee, 150, 300, 160)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models-dir", type=Path, default=get_settings().models_dir)
    ap.add_argument("--out", type=Path, default=Path("docs"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for scale in (2, 4):
        folder, manifest = find_model(args.models_dir, scale=scale)
        up = Upscaler.from_artifact(folder)
        fig, axes = plt.subplots(len(CROPS), 4, figsize=(13, 3.4 * len(CROPS)))
        for row, (name, load, top, left, size) in zip(axes, CROPS):
            hr = load()
            hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
            lr = imresize(hr, 1 / scale)
            sr, bic = up.upscale(lr), imresize(lr, scale)
            window = (slice(top, top + size), slice(left, left + size))
            lr_window = (slice(top // scale, (top + size) // scale), slice(left // scale, (left + size) // scale))
            panels = [("input (LR, nearest)", np.kron(lr[lr_window], np.ones((scale, scale, 1), np.uint8))),
                      (f"bicubic  {psnr(bic, hr, scale):.2f} dB", bic[window]),
                      (f"{manifest.name}  {psnr(sr, hr, scale):.2f} dB", sr[window]),
                      ("original", hr[window])]
            for ax, (title, img) in zip(row, panels):
                ax.imshow(img, interpolation="nearest")
                ax.set_title(f"{name}: {title}" if ax is row[0] else title, fontsize=10)
                ax.axis("off")
        fig.suptitle(f"x{scale}: PSNR on Y of the whole photo", fontsize=11)
        fig.tight_layout()
        path = args.out / f"results_x{scale}.png"
        fig.savefig(path, dpi=80)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
