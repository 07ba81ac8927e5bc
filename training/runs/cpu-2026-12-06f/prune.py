"""prune.py X4PLUS OUT BLOCK[,BLOCK...]: an RRDBNet student made of x4plus's own layers: its first conv, head
(conv_body, both upsampling convs, conv_hr, conv_last) and only the chosen body blocks, renumbered from 0. With one
block it takes ~1/9 of x4plus's time per image (bench/bench_student_shapes.py), inside issue 22's 1/8.

    python training/runs/cpu-2026-12-06f/prune.py ~/.cache/esrgan/models/realesrgan-x4plus runs/prune-b0 0
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # run from anywhere
from model.artifacts import read_manifest, read_weights, save_artifact  # noqa: E402

teacher, out, blocks = Path(sys.argv[1]), Path(sys.argv[2]), [int(b) for b in sys.argv[3].split(",")]
manifest = read_manifest(teacher)
weights = read_weights(teacher, manifest.weights)
kept = {k: v for k, v in weights.items() if not k.startswith("body_")}
for i, b in enumerate(blocks):
    kept.update({k.replace(f"body_{b}_", f"body_{i}_", 1): v for k, v in weights.items() if k.startswith(f"body_{b}_")})
save_artifact(out, kept, name=out.name, arch=manifest.arch, scale=manifest.scale,
              params={**manifest.params, "num_block": len(blocks)}, license=manifest.license,
              description=f"x4plus pruned to body blocks {blocks}")
print(out, f"{sum(v.size for v in kept.values()) / 1e6:.2f} M parameters")
