"""Speed against the runtime other apps use: the whole `esrgan upscale` command vs a script on the `ncnn`
package's CPU inference of the same ncnn files (same input, same thread count, same 8 mirrored edge pixels,
each command a fresh process that reads the PNG and writes the result), alternated, best of --repeats. Ours is
timed as every run after the first on a machine (the compiled network from ESRGAN_COMPILED_CACHE_DIR) and, in
brackets, as that first run (reads, verifies, builds, compiles and stores it).
Also the forward pass alone, in process, warm.

    python bench/bench_ncnn.py [--size 256] [--threads 2] [--repeats 2] [--models realesrgan-x4plus,...]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from model import official
from model.engine import load_upscaler
from model.hardware import cpu_info
from model.settings import get_settings

NCNN_SCRIPT = r"""
import sys, numpy as np, ncnn
from PIL import Image
param, src, dst, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
net = ncnn.Net(); net.opt.num_threads = threads
net.load_param(param); net.load_model(param[:-6] + ".bin")
img = np.asarray(Image.open(src).convert("RGB"), np.float32) / 255
x = np.ascontiguousarray(np.pad(img, ((8, 8), (8, 8), (0, 0)), mode="symmetric").transpose(2, 0, 1))
ex = net.create_extractor(); ex.input("data", ncnn.Mat(x)); _, out = ex.extract("output")
y = np.array(out).transpose(1, 2, 0); s = y.shape[0] // x.shape[1] if y.shape[0] % x.shape[1] == 0 else 0
y = y[8 * s:-8 * s, 8 * s:-8 * s] if s else y
Image.fromarray(np.clip(np.rint(y * 255), 0, 255).astype(np.uint8)).save(dst)
"""


def timed(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def forward_only(name: str, img: np.ndarray, threads: int) -> tuple[float, float]:
    import ncnn

    up = load_upscaler(name)
    up.upscale(img)
    start = time.perf_counter()
    ours = up.upscale(img, tile=0)
    t_ours = time.perf_counter() - start
    param = str(official.locate(official.BY_NAME[name])[0])
    net = ncnn.Net()
    net.opt.num_threads = threads
    net.load_param(param)
    net.load_model(param[:-6] + ".bin")
    x = np.ascontiguousarray(np.pad(img.astype(np.float32) / 255, ((8, 8), (8, 8), (0, 0)), mode="symmetric")
                             .transpose(2, 0, 1))
    start = time.perf_counter()
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat(x))
    ex.extract("output")
    return t_ours, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", default="realesrgan-x4plus,realesr-animevideov3-x4")
    args = ap.parse_args()
    from skimage import data

    img = np.ascontiguousarray(data.astronaut()[:args.size, 100:100 + args.size])
    model, flags = cpu_info()
    print(f"CPU: {model}; {', '.join(f for f in sorted(flags) if f.startswith(('avx', 'amx')))}; "
          f"{args.threads} threads; input {args.size}x{args.size}")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "compiled"
        env["ESRGAN_COMPILED_CACHE_DIR"] = str(cache)
        src = Path(tmp) / "in.png"
        Image.fromarray(img).save(src)
        print("| model | esrgan upscale, whole command (first run: compiles) | ncnn package, whole script | ratio | "
              "forward only: ours / ncnn |\n|---|---|---|---|---|")
        for name in args.models.split(","):
            official.ensure(get_settings(), name)
            param = str(official.locate(official.BY_NAME[name])[0])
            ours_cmd = [sys.executable, "-m", "esrgan", "upscale", str(src), "-o", f"{tmp}/ours.png", "--model",
                        name, "--tile", "0"]
            ncnn_cmd = [sys.executable, "-c", NCNN_SCRIPT, param, str(src), f"{tmp}/ncnn.png", str(args.threads)]
            cold, ours, theirs = [], [], []
            for _ in range(args.repeats):  # alternated, so a busy moment hits all
                shutil.rmtree(cache, ignore_errors=True)  # a first run on this machine: compiles and stores
                cold.append(timed(ours_cmd, env))
                ours.append(timed(ours_cmd, env))  # every later run: the compiled network from the cache
                theirs.append(timed(ncnn_cmd, env))
            f_ours, f_ncnn = forward_only(name, img, args.threads)
            print(f"| {name} | {min(ours):.2f} s ({min(cold):.2f} s) | {min(theirs):.2f} s | "
                  f"{min(theirs) / min(ours):.2f}x ({min(theirs) / min(cold):.2f}x) | "
                  f"{f_ours:.2f} s / {f_ncnn:.2f} s |", flush=True)


if __name__ == "__main__":
    main()
