"""Texture against likeness to the teacher for the distillation runs of a run record (its frontier.json, rows
measured by bench/eval_distill.py): where each recipe trades one for the other, stripes marked.

    python bench/plot_distill_frontier.py training/runs/cpu-2026-12-06d/frontier.json --out docs/distill_frontier.png
"""
import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("frontier", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/distill_frontier.png"))
    args = ap.parse_args()
    rows = json.loads(args.frontier.read_text())
    fig, ax = plt.subplots(figsize=(8, 5.5))
    runs = list(dict.fromkeys(r["run"] for r in rows))
    for i, run in enumerate(runs):
        pts = [r for r in rows if r["run"] == run]
        ax.plot([r["likeness"] for r in pts], [r["texture"] for r in pts], "o-", color=plt.cm.tab20(i % 20),
                label=run)
        for r in pts:
            if r.get("grid", 1.0) > 1.5:  # stripes on the sub-pixel grid (x4plus: 1.05)
                ax.plot(r["likeness"], r["texture"], "x", color="red", markersize=14, markeredgewidth=2)
            ax.annotate(str(r["step"]), (r["likeness"], r["texture"]), textcoords="offset points", xytext=(4, 4),
                        fontsize=7)
    ax.set_xlabel("likeness to x4plus (PSNR-Y to its output, dB)")
    ax.set_ylabel("texture (|Laplacian| ratio to the original; x4plus 0.58)")
    ax.set_title("x4 students: texture vs likeness (red x: stripes, grid peak > 1.5)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
