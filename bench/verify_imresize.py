"""Check training.imresize against MATLAB-made LR images.

Usage: python bench/verify_imresize.py SET_DIR   (e.g. ../shared/datasets/val/Set5)
SET_DIR holds x2/ and x4/, each with HR/ and LR/ PNGs of the same names, the LR
made by MATLAB's imresize(hr, 1/scale, 'bicubic'). Prints per-image exact-match
and within-1 rates; exits 1 unless every pixel is within one grey level and
>= 99.9% of each image's values match exactly (MATLAB's own output matches 100%).
"""

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.imresize import imresize  # noqa: E402


def main(set_dir):
    ok = True
    for scale_dir in sorted(Path(set_dir).glob("x*")):
        scale = int(scale_dir.name[1:])
        exact = within1 = total = 0
        for hr_path in sorted((scale_dir / "HR").glob("*.png")):
            hr = np.asarray(Image.open(hr_path).convert("RGB"))
            lr = np.asarray(Image.open(scale_dir / "LR" / hr_path.name).convert("RGB"))
            t = time.perf_counter()
            out = imresize(hr, 1 / scale)
            ms = (time.perf_counter() - t) * 1e3
            if out.shape != lr.shape:
                print(f"x{scale} {hr_path.name}: shape {out.shape} != {lr.shape}")
                ok = False
                continue
            diff = np.abs(out.astype(int) - lr.astype(int))
            e, w = (diff == 0).mean(), (diff <= 1).mean()
            ok &= w == 1.0 and e >= 0.999
            exact += (diff == 0).sum()
            within1 += (diff <= 1).sum()
            total += diff.size
            print(f"x{scale} {hr_path.name} {hr.shape[1]}x{hr.shape[0]}: exact {e:.4%} "
                  f"within1 {w:.4%} max {diff.max()} ({ms:.1f} ms)")
        if total:
            print(f"x{scale} all: exact {exact / total:.4%} within1 {within1 / total:.4%}")
    return 0 if ok else 1


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("set_dir", help="a set folder holding x2/ and x4/ with HR/ and LR/")
    sys.exit(main(parser.parse_args().set_dir))
