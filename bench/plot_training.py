"""Plot the L1 training curves of recorded runs (``training/runs/*/x*/log.txt``) for BENCHMARKS.md."""
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STEP = re.compile(r"step (\d+) t=(\d+)s lr=\S+ l1=([\d.]+)")  # L1 runs only (the plot's y axis)


def main(run_dir: str = "training/runs/h100-2026-11-26", out: str = "docs/training_curves.png") -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for log in sorted(Path(run_dir).glob("x*/log.txt")):
        rows = [tuple(map(float, m.groups())) for m in STEP.finditer(log.read_text())]
        ax.plot([r[0] for r in rows[1:]], [r[2] for r in rows[1:]], marker="o", ms=3, label=log.parent.name)
    ax.set_xlabel("step (batch 32)")
    ax.set_ylabel("L1 loss (mean of 500 steps)")
    ax.set_title("PSNR-stage training of the shipped models (H100, 7 min)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
