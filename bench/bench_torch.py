"""The whole ``esrgan upscale`` process against PyTorch's best model-only time, same CPU, network and inputs.

The network is the ESRGAN paper's generator (RRDBNet, 23 blocks, 64 features, growth 32, x4) in the
BasicSR naming with random weights: its state_dict is saved as a .pth and converted with ``esrgan convert``'s
code. PyTorch runs the same ``nn.Module`` on the same images, model only (tensors in, tensors out), in
float32 and in bfloat16 autocast, with flush-to-zero (TensorFlow flushes denormals; random weights decay
into denormals, which would make PyTorch many times slower for a reason real weights do not show), at each
``--threads`` count; its fastest is the bar. ``esrgan upscale`` runs as users run it: a fresh process with
default settings (``precision: auto``) over a folder of PNGs, start-up, decode, model and encode included.

Target (issue 11): the whole process >= 1.5x faster than PyTorch's best where the CPU has native bfloat16
(AMX or AVX512-BF16), >= 1.2x faster than PyTorch float32 otherwise. Runs interleave the two sides so
that load from other processes falls on both alike; CPU seconds are printed beside wall seconds (on a
shared machine the wall clock measures the neighbours too).

Usage: python bench/bench_torch.py [--size 256] [--images 4] [--reps 2] [--threads 1,2]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from model.hardware import BF16_FLAGS, auto_precision, cpu_info  # noqa: E402
from training.torch_archs import RRDBNet  # noqa: E402


ESRGAN_LABEL = "esrgan upscale (whole process, defaults)"


def photos(n: int, size: int) -> list[np.ndarray]:
    """``n`` size x size crops of scikit-image's photos (tiled where a photo is smaller)."""
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        reps = (-(-size // src.shape[0]), -(-size // src.shape[1]), 1)
        out.append(np.ascontiguousarray(np.tile(src, reps)[:size, :size]))
    return out


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - w, cpu_seconds() - c


def bf16_beats_fp32(run_torch, images, threads: int) -> bool:
    torch.set_num_threads(threads)
    probe = [images[0][:64, :64]]
    run_torch(None, probe), run_torch(torch.bfloat16, probe)  # warm-up
    f32, bf16 = timed(lambda: run_torch(None, probe))[0], timed(lambda: run_torch(torch.bfloat16, probe))[0]
    print(f"bf16 autocast probe (64x64): {bf16:.2f} s vs fp32 {f32:.2f} s")
    return bf16 < f32


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="square input side, pixels (default 256)")
    ap.add_argument("--images", type=int, default=4, help="number of inputs (default 4)")
    ap.add_argument("--reps", type=int, default=2, help="interleaved rounds after a warm-up (default 2)")
    ap.add_argument("--threads", default=f"1,{os.cpu_count()}", help="PyTorch intra-op thread counts to try")
    ap.add_argument("--bf16", choices=("auto", "always", "never"), default="auto",
                    help="time PyTorch bf16 autocast: auto = only on CPUs with native bf16 where a 64x64 probe beats float32")
    return ap.parse_args()


def torch_runner(net, images):
    """Model only, tensors in and out: ``run(dtype, batch)`` with bf16 autocast when ``dtype`` is given."""
    def run_torch(dtype: torch.dtype | None, batch=images) -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            for img in batch:
                x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
                net(x).float().clamp_(0, 1)
    return run_torch


def esrgan_runner(net, images, tmp: Path):
    """The whole ``esrgan upscale`` process, default settings, on the images saved as PNGs in ``tmp``,
    with ``net`` converted by ``esrgan convert``'s code."""
    from PIL import Image

    from model.convert import convert_checkpoint

    torch.save({"params_ema": net.state_dict()}, tmp / "rrdb_x4.pth")
    convert_checkpoint(tmp / "rrdb_x4.pth", tmp / "models", "rrdb-23b-x4", default=True)
    (tmp / "in").mkdir()
    for i, img in enumerate(images):
        Image.fromarray(img).save(tmp / "in" / f"{i}.png")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env = {k: v for k, v in env.items() if k != "ESRGAN_PRECISION"}  # default settings
    cmd = [sys.executable, "-m", "esrgan", "upscale", str(tmp / "in"), "-o", str(tmp / "out"),
           "--models-dir", str(tmp / "models")]

    def run_esrgan() -> None:
        subprocess.run(cmd, env=env, check=True, capture_output=True)
    return run_esrgan


def torch_candidates(args, run_torch, images, bf16_cpu: list[str]) -> dict:
    """PyTorch fp32 at each thread count, and bf16 autocast where it is worth timing."""
    threads = [int(t) for t in args.threads.split(",")]
    candidates = {f"PyTorch fp32, {n} thread(s)": (n, None) for n in threads}
    # Without native bf16, autocast emulates it (minutes for a 64x64 probe of this net): only time it
    # where the CPU has the instructions, or when asked to.
    probe = args.bf16 == "auto" and bf16_cpu and bf16_beats_fp32(run_torch, images, min(threads))
    if args.bf16 == "always" or probe:
        candidates.update({f"PyTorch bf16 autocast, {n} thread(s)": (n, torch.bfloat16) for n in threads})
    else:
        print("bf16 autocast left out: " + ("no native bf16 on this CPU (emulated: far slower)" if not bf16_cpu
                                            else "slower than fp32 on a 64x64 probe"))

    def torch_fn(n, dtype):
        def fn():
            torch.set_num_threads(n)
            run_torch(dtype)
        return fn

    return {label: torch_fn(*spec) for label, spec in candidates.items()}


def measure(fns: dict, reps: int) -> tuple[dict, dict]:
    """Wall and CPU seconds of each function, ``reps`` interleaved rounds after a warm-up."""
    for fn in fns.values():  # warm-up: oneDNN primitives, page cache of the TF libraries
        fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for label, fn in fns.items():
            w, c = timed(fn)
            wall[label].append(w)
            cpu[label].append(c)
            print(f"  {label}: {w:.2f} s wall, {c:.2f} s CPU", flush=True)
    return wall, cpu


def report(args, wall: dict, cpu: dict, bf16_cpu: list[str]) -> None:
    out_mp = args.images * (args.size * 4) ** 2 / 1e6
    print(f"\nRRDBNet 23 blocks x4, {args.images} x {args.size}x{args.size} ({out_mp:.2f} MP out), best of "
          f"{args.reps} after a warm-up; load average {os.getloadavg()[0]:.1f} at the end")
    best = {k: min(v) for k, v in wall.items()}
    for label in wall:
        print(f"{label:44s} {best[label]:8.2f} s wall  {min(cpu[label]):8.2f} s CPU  {out_mp / best[label]:.3f} MP/s")
    ours = best.pop(ESRGAN_LABEL)
    torch_label = min(best, key=best.get)
    fp32_label = min((k for k in best if "fp32" in k), key=best.get)
    print(f"PyTorch's best: {torch_label} ({best[torch_label]:.2f} s)")
    print(f"esrgan upscale is {best[torch_label] / ours:.2f}x the speed of PyTorch's best model-only time, "
          f"{best[fp32_label] / ours:.2f}x PyTorch fp32's")
    target, bar = (1.5, best[torch_label]) if bf16_cpu else (1.2, best[fp32_label])
    print(f"target here ({'native bf16' if bf16_cpu else 'no native bf16'}): >= {target}x -> "
          f"{'met' if bar / ours >= target else 'NOT met'} ({bar / ours:.2f}x)")


def main() -> None:
    args = parse_args()
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    net = RRDBNet(4, num_block=23, num_feat=64, num_grow_ch=32).eval()
    images = photos(args.images, args.size)
    model_name, flags = cpu_info()
    bf16_cpu = [f for f in BF16_FLAGS if f in flags]
    print(f"CPU: {model_name or 'unknown'}, {os.cpu_count()} cores visible, native bf16: "
          f"{', '.join(bf16_cpu) or 'none'} (avx512f: {'avx512f' in flags}, avx2: {'avx2' in flags}); "
          f"auto precision here: {auto_precision()}; torch {torch.__version__}; "
          f"load average {os.getloadavg()[0]:.1f} at start")
    run_torch = torch_runner(net, images)
    with tempfile.TemporaryDirectory() as tmp:
        fns = torch_candidates(args, run_torch, images, bf16_cpu)
        fns[ESRGAN_LABEL] = esrgan_runner(net, images, Path(tmp))
        wall, cpu = measure(fns, args.reps)
    report(args, wall, cpu, bf16_cpu)


if __name__ == "__main__":
    main()
