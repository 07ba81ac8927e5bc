"""Plot PSNR-Y against texture for the checkpoints of a GAN run (its ``probe.json``), with bicubic, the
restoration end and the previous GAN end, for BENCHMARKS.md: where along the run the shipped step sits.

    python bench/plot_gan_tradeoff.py [training/runs/cpu-2026-12-03/real-x4-gan6/probe.json] [docs/gan_x4_tradeoff.png]
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(probe: str = "training/runs/cpu-2026-12-03/real-x4-gan6/probe.json",
         out: str = "docs/gan_x4_tradeoff.png") -> None:
    data = json.load(open(probe))
    sets = list(data["bicubic"])
    steps = sorted(data["checkpoints"], key=int)
    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4))
    for ax, name in zip(axes, sets):
        tex = [data["checkpoints"][s][name][1] for s in steps]
        db = [data["checkpoints"][s][name][0] for s in steps]
        ax.plot(tex, db, marker="o", label="GAN end by step")
        for s, x, y in zip(steps, tex, db):
            ax.annotate(s + (" (shipped)" if s == data["shipped"] else ""), (x, y), fontsize=8,
                        xytext=(4, 3), textcoords="offset points")
        for key, marker in (("bicubic", "s"), ("restoration_end", "^"), ("previous_gan_end", "x")):
            ax.plot(*reversed(data[key][name]), marker=marker, ls="", ms=8, label=key.replace("_", " "))
        ax.set_xlabel("texture (mean |Laplacian| / original's)")
        ax.set_ylabel("PSNR-Y (dB)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
