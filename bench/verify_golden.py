"""Check training.metrics against the reference MATLAB evaluator's printout.

Usage: python bench/verify_golden.py DATASET_DIR   (e.g. ../shared/datasets/golden/RCAN-Set5)
DATASET_DIR holds x2/, x4/, ... each with HR/ and SR/ PNGs, and
PSNR_SSIM_Results_BI_model.txt. Compares every image and the per-scale mean with
the first method in that file; exits 1 if any differs by more than 0.01 dB PSNR
or 0.0005 SSIM, or an image or scale is missing.
"""

import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.metrics import evaluate_pair  # noqa: E402

PSNR_TOL, SSIM_TOL = 0.01, 0.0005
ROW = re.compile(r"^x(\d+) \d+ (\S+): PSNR= ([\d.]+) SSIM= ([\d.]+)")
MEAN = re.compile(r"^x(\d+): PSNR= ([\d.]+) SSIM= ([\d.]+)")


def read_golden(path):
    """({scale: {stem: (psnr, ssim)}}, {scale: (mean_psnr, mean_ssim)}) for the
    first method block of the results file."""
    rows, means, seen_method = {}, {}, 0
    for line in Path(path).read_text().splitlines():
        if line.startswith("Method_"):
            seen_method += 1
            if seen_method > 1:
                break
        if m := ROW.match(line):
            rows.setdefault(int(m[1]), {})[_stem(m[2])] = (float(m[3]), float(m[4]))
        elif m := MEAN.match(line):
            means[int(m[1])] = (float(m[2]), float(m[3]))
    return rows, means


def _stem(name):
    # SR outputs may be named baby.png or baby_RCAN_x2.png; match on the image name.
    return re.sub(r"(_[^_]+_x\d+)$", "", Path(name).stem)


def load(path):
    img = Image.open(path)
    return np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img)


def main(root):
    root = Path(root)
    golden, golden_means = read_golden(root / "PSNR_SSIM_Results_BI_model.txt")
    ok = True
    for scale_dir in sorted(root.glob("x*")):
        scale = int(scale_dir.name[1:])
        want = golden.get(scale)
        if not want:
            print(f"x{scale}: no golden rows")
            ok = False
            continue
        srs = {_stem(p.name): p for p in (scale_dir / "SR").glob("*.png")}
        got = []  # (psnr, ssim) per image
        for stem, (g_psnr, g_ssim) in sorted(want.items()):
            hr_path = scale_dir / "HR" / f"{stem}.png"
            if stem not in srs or not hr_path.exists():
                print(f"x{scale} {stem}: missing SR or HR")
                ok = False
                continue
            r = evaluate_pair(load(srs[stem]), load(hr_path), scale)
            got.append((r["psnr"], r["ssim"]))
            ok &= _report(f"x{scale} {stem:10s}", r["psnr"], r["ssim"], g_psnr, g_ssim)
        if len(got) == len(want) and scale in golden_means:
            ok &= _report(f"x{scale} {'MEAN':10s}", *np.mean(got, axis=0), *golden_means[scale])
        else:
            print(f"x{scale}: no mean compared (missing images or golden mean line)")
            ok = False
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


def _report(label, p, s, gp, gs):
    good = abs(p - gp) <= PSNR_TOL and abs(s - gs) <= SSIM_TOL
    print(f"{label} PSNR {p:.6f} (golden {gp:.6f}, d {p - gp:+.6f})  "
          f"SSIM {s:.6f} (golden {gs:.6f}, d {s - gs:+.6f})  {'ok' if good else 'FAIL'}")
    return good


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("root", help="folder holding x2/, x4/ (HR/, SR/) and PSNR_SSIM_Results_BI_model.txt")
    sys.exit(main(parser.parse_args().root))
