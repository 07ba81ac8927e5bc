"""Training throughput: input-pipeline batches/s (bicubic and realworld LR) and generator steps/s.

Usage: python bench/bench_train.py DATA_DIR [--scale 4 --crop 96 --batch 16 --blocks 6 --feat 32 --grow 16 --steps 40
                                            --precision float32,bfloat16]
Prints one line per measurement. The first batches/steps (tracing, warm-up) are not timed.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rate(iterator, n: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(n):
        next(iterator)
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--crop", type=int, default=96)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--feat", type=int, default=32)
    ap.add_argument("--grow", type=int, default=16)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--precision", default="float32,bfloat16", help="comma-separated compute types to time")
    args = ap.parse_args()

    import tensorflow as tf

    from training.config import TrainConfig
    from training.data import make_dataset

    for degradation in ("bicubic", "realworld"):
        ds = make_dataset(args.data, scale=args.scale, crop=args.crop, batch_size=args.batch, degradation=degradation)
        r = rate(iter(ds), 20)
        print(f"pipeline {degradation:9s}: {r:6.2f} batches/s ({r * args.batch:7.1f} patches/s), "
              f"batch {args.batch}x{args.crop}px, {tf.config.threading.get_inter_op_parallelism_threads() or 'all'} threads")

    # Steps/s of the real training loop: train() for 2 and for N steps; the difference removes start-up
    # and tracing.
    from training.train import train

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    for precision in args.precision.split(","):
        seconds = {}
        for steps in (2, args.steps):
            with tempfile.TemporaryDirectory() as out:
                cfg = TrainConfig(data=args.data, out=out, name="bench", scale=args.scale, hr_crop=args.crop,
                                  batch_size=args.batch, num_block=args.blocks, num_feat=args.feat,
                                  num_grow_ch=args.grow, steps=steps, checkpoint_every=10**9, log_every=10**9,
                                  precision=precision, progress=False)
                start = time.perf_counter()
                train(cfg)
                seconds[steps] = time.perf_counter() - start
        extra = seconds[args.steps] - seconds[2]
        if extra <= 0:  # start-up varies by seconds: too few steps to see past it
            print(f"train psnr stage {precision:8s}: not measurable with --steps {args.steps}; use more steps")
            continue
        r = (args.steps - 2) / extra
        print(f"train psnr stage {precision:8s}: {r:.3f} steps/s ({r * args.batch:.1f} patches/s), RRDBNet "
              f"{args.blocks}/{args.feat}/{args.grow} x{args.scale}, batch {args.batch}x{args.crop}px, {device}")


if __name__ == "__main__":
    main()
