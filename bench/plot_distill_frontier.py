"""Texture against likeness to the teacher for the distillation runs of a run record (its frontier.json, rows
measured by bench/eval_distill.py): where each recipe trades one for the other, stripes marked.

    python bench/plot_distill_frontier.py training/runs/cpu-2026-12-06d/frontier.json --out docs/distill_frontier.png
    python bench/plot_distill_frontier.py training/runs/cpu-2026-12-06e/frontier-bsd40.json \
        --out docs/distill_frontier_bsd40.png --set "BSD40 (every 5th BSD200 photo), degraded once" \
        --x4plus-texture 0.62 --goal 28.6,0.37
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
    ap.add_argument("--set", default="Set5+Set14, degraded once", help="what the rows were measured on")
    ap.add_argument("--x4plus-texture", type=float, default=0.58, help="x4plus's texture on that set")
    ap.add_argument("--goal", help="LIKENESS,TEXTURE: shade where both are met (a goal translated to this set)")
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
            ax.annotate(str(r.get("label", r["step"])), (r["likeness"], r["texture"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
    if args.goal:
        likeness, texture = (float(v) for v in args.goal.split(","))
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        ax.add_patch(matplotlib.patches.Rectangle((likeness, texture), x1 - likeness, y1 - texture, color="green",
                                                  alpha=0.12, label=f"goal here: >= {likeness} dB and >= {texture}"))
        ax.set_xlim(x0, x1), ax.set_ylim(y0, y1)
    ax.set_xlabel("likeness to x4plus (PSNR-Y to its output, dB)")
    ax.set_ylabel(f"texture (|Laplacian| ratio to the original; x4plus {args.x4plus_texture})")
    ax.set_title(f"x4 students on {args.set}\ntexture vs likeness (red x: stripes, grid peak > 1.5)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center" if args.goal else "upper right")  # a goal is shaded upper right
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
