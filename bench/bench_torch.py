"""PyTorch vs this project's TensorFlow engine on the same CPU, the same network and the same input.

The network is the ESRGAN paper's generator (RRDBNet, 23 blocks, 64 features, growth 32, x4) in the
BasicSR/Real-ESRGAN naming with random weights: it is saved as a .pth, converted with ``esrgan convert``'s
code, and run through ``model.engine.Upscaler`` (one pass, no tiling), against the PyTorch module itself.
Both sides include the uint8 -> float -> uint8 conversions. Prints seconds per image and output MP/s.

Usage: python bench/bench_torch.py [--size 128] [--reps 3] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from training.torch_archs import RRDBNet  # noqa: E402


def timed(fns: dict, reps: int) -> dict[str, list[float]]:
    """Seconds per call of each function, the reps interleaved so that load from other processes on a
    shared machine falls on both sides alike."""
    times = {label: [] for label in fns}
    for _ in range(reps):
        for label, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128, help="square LR input side, pixels")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads for both frameworks (1 by default: on a shared, oversubscribed "
                         "machine PyTorch's OpenMP threads stall each other)")
    args = ap.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    torch.set_num_threads(args.threads)
    # TensorFlow flushes denormals to zero; give PyTorch the same, or random-weight activations that
    # decay into denormals make it many times slower for a reason real use would not see.
    torch.set_flush_denormal(True)

    from model.convert import convert_checkpoint
    from model.engine import Upscaler

    torch.manual_seed(0)
    net = RRDBNet(4, num_block=23, num_feat=64, num_grow_ch=32).eval()
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "rrdb_x4.pth"
        torch.save({"params_ema": net.state_dict()}, ckpt)
        t0 = time.perf_counter()
        convert_checkpoint(ckpt, Path(tmp) / "models", "rrdb-x4")
        convert_s = time.perf_counter() - t0
        upscaler = Upscaler.from_artifact(Path(tmp) / "models" / "rrdb-x4", tile=0,
                                          precision="float32")  # as the PyTorch side

    def run_torch() -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
            y = net(x).clamp_(0, 1)[0].permute(1, 2, 0).mul_(255).round_()
        return y.to(torch.uint8).numpy()

    def run_tf() -> np.ndarray:
        return upscaler.upscale(image)

    # The agreement check is also both sides' warm-up (tracing, oneDNN primitives, allocator growth).
    diff = np.abs(run_tf().astype(int) - run_torch().astype(int))
    out_mp = (args.size * 4) ** 2 / 1e6
    print(f"RRDBNet 23 blocks x4, {args.size}x{args.size} -> {args.size * 4}x{args.size * 4} "
          f"({out_mp:.3f} MP out), {args.threads} threads, {args.reps} interleaved reps after a warm-up, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    print(f"conversion (.pth -> artifact): {convert_s:.1f} s; outputs agree: max |diff| {diff.max()} "
          f"uint8 levels ({np.count_nonzero(diff)} of {diff.size} values differ)")
    print(f"torch {torch.__version__}, tensorflow {tf.__version__} "
          f"(oneDNN opts {os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default on')})")
    times = timed({"PyTorch (eager, inference_mode)": run_torch, "TensorFlow engine (Upscaler)": run_tf}, args.reps)
    medians = {label: statistics.median(t) for label, t in times.items()}
    for label, t in times.items():
        print(f"{label:34s} median {medians[label]:7.3f} s/image  (min {min(t):.3f}, max {max(t):.3f})  "
              f"{out_mp / medians[label]:6.3f} output MP/s")
    torch_s, tf_s = medians.values()
    print(f"TensorFlow engine is {torch_s / tf_s:.2f}x the speed of PyTorch here")

if __name__ == "__main__":
    main()
