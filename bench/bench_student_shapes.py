"""Time per image of candidate distillation students against the teacher, in the same engine, before training
any of them (issue 22: which shape gives more likeness for the same CPU time per image). Random weights: the
time does not depend on them. x4, one pass over a --size square, best of --repeats after one warm-up.

    python bench/bench_student_shapes.py [--size 128] [--repeats 3] [--precision auto]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from bench.harness import make_artifact
from model import official
from model.engine import Upscaler
from model.hardware import cpu_info
from model.settings import get_settings

SHAPES = [  # name, arch, params
    ("esrgan-real-x4 today: RRDBNet 6 blocks, 32 features", "rrdbnet", dict(num_block=6, num_feat=32, num_grow_ch=16)),
    ("RRDBNet 3 blocks, 48 features (shallower, wider)", "rrdbnet", dict(num_block=3, num_feat=48, num_grow_ch=24)),
    ("SRVGG 32 convs, 64 features (realesr-general-x4v3's shape)", "srvgg", dict(num_conv=32, num_feat=64)),
    ("SRVGG 16 convs, 64 features (animevideov3's shape)", "srvgg", dict(num_conv=16, num_feat=64)),
    ("SRVGG 32 convs, 48 features", "srvgg", dict(num_conv=32, num_feat=48)),
    *((f"RRDBNet {n} block{'s' * (n > 1)}, 64 features (x4plus cut to {n}: its head, its width)", "rrdbnet",
       dict(num_block=n, num_feat=64, num_grow_ch=32)) for n in (1, 2)),
]


def seconds(up: Upscaler, img: np.ndarray, repeats: int) -> float:
    up.upscale(img, tile=0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        up.upscale(img, tile=0)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()
    img = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    model, flags = cpu_info()
    print(f"CPU: {model}; {', '.join(f for f in sorted(flags) if f.startswith(('avx', 'amx')))}; "
          f"input {args.size}x{args.size}, x4, precision {args.precision}")
    teacher = official.folder_of(get_settings(), "realesrgan-x4plus")
    t_teacher = seconds(Upscaler.from_artifact(teacher, precision=args.precision), img, args.repeats)
    print(f"| student | params | s/image | share of x4plus ({t_teacher:.2f} s) |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, arch, params) in enumerate(SHAPES):
            manifest = make_artifact(Path(tmp), f"s{i}", scale=4, arch=arch, params=params)
            up = Upscaler.from_artifact(Path(tmp) / f"s{i}", precision=args.precision)
            n = manifest.num_params
            t = seconds(up, img, args.repeats)
            print(f"| {name} | {n / 1e6:.2f} M | {t:.3f} | 1/{t_teacher / t:.1f} |", flush=True)


if __name__ == "__main__":
    main()
