"""Bar chart of the shipped models' benchmark PSNR (from their manifests) against bicubic and the quality
targets (FSRCNN's published figures), for BENCHMARKS.md.

    python bench/plot_quality.py [MODELS_DIR] [OUT_PNG]
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from model.artifacts import list_models  # noqa: E402

TARGET = {("Set5", 2): 37.05, ("Set14", 2): 32.66, ("Set5", 4): 30.72, ("Set14", 4): 27.61}  # FSRCNN


def main(models_dir: str = "model/shipped", out: str = "docs/quality.png") -> None:
    models = sorted((m for m in list_models(models_dir) if m.metrics), key=lambda m: m.scale)
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6))
    for ax, m in zip(axes if len(models) > 1 else [axes], models):
        sets = [s for s in ("Set5", "Set14") if s in m.metrics]
        bars = {"bicubic": [m.metrics[s]["bicubic_psnr"] for s in sets], m.name: [m.metrics[s]["psnr"] for s in sets],
                "self-ensemble": [m.metrics[s].get("ensemble_psnr", float("nan")) for s in sets]}
        width = 0.8 / len(bars)
        low = min(bars["bicubic"]) - 1
        for i, (label, values) in enumerate(bars.items()):
            xs = [j + (i - 1) * width for j in range(len(sets))]
            ax.bar(xs, values, width, label=label)
            for x, v in zip(xs, values):
                ax.text(x, low + 0.1, f"{v:.2f}", ha="center", va="bottom", fontsize=7, rotation=90, color="white")
        for j, s in enumerate(sets):
            ax.hlines(TARGET[(s, m.scale)], j - 0.45, j + 0.45, colors="k", linestyles="--",
                      label="target (FSRCNN)" if j == 0 else None)
        ax.set_ylim(low, max(TARGET[(s, m.scale)] for s in sets) + 0.8)
        ax.set_xticks(range(len(sets)), sets)
        ax.set_ylabel("PSNR-Y (dB)")
        ax.set_title(f"x{m.scale}")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    labels = ["model" if label.startswith("esrgan") else label for label in labels]
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
