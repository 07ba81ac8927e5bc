"""Quality and speed of each compute precision for the shipped models: Set5/Set14 PSNR-Y (the standard
protocol, training/evaluate.py) at float32, at ``auto`` (what this machine picks) and at any precision named,
the difference to float32, and the seconds each evaluation took. Writes the table into BENCHMARKS.md
(section "Compute precision").

Usage: python bench/bench_precision.py [--val ../shared/datasets/val] [--precisions float32,auto,bfloat16]
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.hardware import describe  # noqa: E402

SECTION = "### Compute precision: quality at auto"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "datasets" / "val",
                    help="folder of Set5/ and Set14/, each with x2/ and x4/ HR+LR pairs")
    ap.add_argument("--precisions", default="float32,auto,bfloat16",
                    help="comma-separated settings to score (float32 is the reference and always scored)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    from model.artifacts import list_models
    from model.engine import Upscaler
    from model.settings import SHIPPED_MODELS_DIR
    from training.evaluate import evaluate

    settings = ["float32", *[p for p in args.precisions.split(",") if p != "float32"]]
    rows = []
    for manifest in list_models(SHIPPED_MODELS_DIR):
        for data in ("Set5", "Set14"):
            folder = args.val / data / f"x{manifest.scale}"
            scores = {}
            for setting in settings:
                up = Upscaler.from_artifact(SHIPPED_MODELS_DIR / manifest.name, precision=setting, tile=0)
                same = next((v for v in scores.values() if v[0] == up.precision), None)
                if same:  # e.g. auto resolving to float32: the same computation, scored once
                    scores[setting] = same
                    continue
                start = time.perf_counter()
                psnr = evaluate(up.upscale, folder, manifest.scale)["mean"]["psnr"]
                scores[setting] = (up.precision, psnr, time.perf_counter() - start)
                print(f"{manifest.name} {data} {setting} ({up.precision}): {psnr:.4f} dB "
                      f"({scores[setting][2]:.1f} s)", flush=True)
            rows.append((manifest.name, data, scores))

    ref = "float32"
    lines = [SECTION, "",
             f"`python bench/bench_precision.py --precisions {args.precisions}` on {describe('auto')}, 1-min load "
             f"average {os.getloadavg()[0]:.1f}. Set5/Set14 PSNR-Y (border crop = scale), whole images in one pass; "
             "Δ = against float32. `auto` (the default) must stay within 0.05 dB of float32 "
             "(also checked by tests/test_precision.py on scikit-image photos).", "",
             "| model | set | " + " | ".join(f"{s} PSNR (Δ)" for s in settings) + " |",
             "|---|---|" + "---|" * len(settings)]
    for name, data, scores in rows:
        cells = []
        for s in settings:
            actual, psnr, _ = scores[s]
            label = f"{psnr:.3f}" + ("" if s == ref else f" ({psnr - scores[ref][1]:+.3f})")
            cells.append(label + (f" [{actual}]" if s == "auto" else ""))
        lines.append(f"| `{name}` | {data} | " + " | ".join(cells) + " |")
    worst = max(abs(sc["auto"][1] - sc[ref][1]) for _, _, sc in rows) if "auto" in settings else None
    if worst is not None:
        lines += ["", f"Largest |Δ| at auto: {worst:.3f} dB."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        path = ROOT / "BENCHMARKS.md"
        old = path.read_text()
        pattern = re.compile(re.escape(SECTION) + r".*?(?=\n## |\n### |\Z)", re.S)
        path.write_text(pattern.sub(lambda _: text.rstrip("\n") + "\n", old) if pattern.search(old)
                        else old.rstrip("\n") + "\n\n" + text)


if __name__ == "__main__":
    main()
