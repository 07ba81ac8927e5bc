"""Inference engine benchmark: throughput and GFLOP/s against the raw model forward, and peak memory
of a large tiled image.

Usage: python bench/bench_engine.py [--size 64] [--repeats 5] [--skip-esrgan] [--mem-sides 500 2000]
                                    [--mem-tiles 128 256] [--mem-shipped] [--no-write]
- Throughput: a 23-block x4 RRDBNet (random weights, the ESRGAN size) and each shipped default model, on a
  --size x --size RGB input. "raw" is a tf.function calling the Keras model on the same float tensor;
  "engine" is Upscaler.upscale on the uint8 image (one pass, then the automatic tile). Best of
  --repeats interleaved rounds (the CPU is shared: the fastest round is the least disturbed).
- Memory: each (side, tile) runs in a fresh subprocess (a small random RRDBNet; --mem-shipped for the
  shipped x4 default) that reports its peak RSS during the call (psutil, sampled every 5 ms) and the RSS
  just before it (model loaded and warm, input allocated): the difference minus the output array is
  what tiling has to bound. On a GPU it also reports the device allocator's peak.
Prints the figures, writes them into BENCHMARKS.md (section "Inference engine") and a plot under docs/.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

ESRGAN_X4 = dict(num_block=23, num_feat=64, num_grow_ch=32, scale=4)
SMALL_X4 = dict(num_block=2, num_feat=16, num_grow_ch=8, scale=4)  # memory runs: 2000x2000 in ~1.5 min
PLOT = ROOT / "docs" / "bench_engine.png"


def random_upscaler(name: str, params: dict, precision: str = "auto", backend: str = "auto"):
    import keras

    from model.archs import build_generator
    from model.artifacts import Manifest, WeightsFile, model_weights
    from model.engine import Upscaler
    from model.artifacts import Part
    from model.runners import OpenVINORunner, resolve_backend, runner_precision

    keras.utils.set_random_seed(0)
    manifest = Manifest(name=name, arch="rrdbnet", params=params, scale=params["scale"],
                        weights=WeightsFile(file="random", sha256="-", bytes=0))
    backend = resolve_backend(backend, "rrdbnet")
    precision = runner_precision(precision, backend)
    model = build_generator("rrdbnet", params, precision, inference=True)
    if backend == "openvino":
        up = Upscaler(OpenVINORunner.from_parts(manifest, [Part("rrdbnet", params, model_weights(model))], precision),
                      manifest)
        up.keras = model  # for counting FLOPs
        return up
    return Upscaler(model, manifest)


def shipped_upscalers(precision: str = "auto", backend: str = "auto") -> list:
    from model.artifacts import list_models, load_keras_model
    from model.engine import Upscaler
    from model.settings import SHIPPED_MODELS_DIR

    ups = []
    for m in list_models(SHIPPED_MODELS_DIR):
        if m.default:
            ups.append(Upscaler.from_artifact(SHIPPED_MODELS_DIR / m.name, precision=precision, backend=backend))
            ups[-1].keras = load_keras_model(SHIPPED_MODELS_DIR / m.name)  # for counting FLOPs
    return ups


def conv_flops_per_pixel(model) -> float:
    """FLOPs (2 x multiply-adds) of every Conv2D per input pixel, each at its own resolution (found by
    running an 8x8 input through a model that outputs every conv's result)."""
    import keras

    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    outputs = keras.Model(model.inputs, [layer.output for layer in convs])([np.zeros((1, 8, 8, 3), np.float32)])
    total = 0.0
    for layer, out in zip(convs, outputs):
        kh, kw, cin, cout = layer.kernel.shape
        total += 2 * kh * kw * cin * cout * (out.shape[1] * out.shape[2] / 64)
    return total


def best_times(fns: dict, repeats: int) -> dict[str, float]:
    """Fastest of ``repeats`` rounds after one warm-up (which traces and allocates). Rounds interleave
    the candidates so that load from other processes hits them alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def throughput(upscaler, size: int, repeats: int) -> dict:
    import tensorflow as tf

    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    batch = image[None].astype(np.float32) / 255
    if upscaler.backend == "openvino":  # the compiled graph itself on the float tensor
        raw, keras_model = (lambda: upscaler.runner(batch)), upscaler.keras
    else:
        tensor, keras_model = tf.constant(batch), upscaler.model
        forward = tf.function(lambda x: keras_model(x, training=False))
        raw = lambda: forward(tensor).numpy()  # noqa: E731
    out_mp = (size * upscaler.scale) ** 2 / 1e6
    flops = conv_flops_per_pixel(keras_model) * size * size
    row = {"model": upscaler.name, "runtime": upscaler.backend, "precision": upscaler.precision,
           "input": f"{size}x{size}", "gflop": flops / 1e9, "auto_tile": upscaler.auto_tile()}
    times = best_times({"raw": raw,
                        "engine": lambda: upscaler.upscale(image, tile=0),
                        "engine_auto": lambda: upscaler.upscale(image)}, repeats)
    for label, seconds in times.items():
        row[label] = {"s": seconds, "mp_s": out_mp / seconds, "gflop_s": flops / seconds / 1e9}
    row["overhead_pct"] = 100 * (row["engine"]["s"] / row["raw"]["s"] - 1)
    row["auto_overhead_pct"] = 100 * (row["engine_auto"]["s"] / row["raw"]["s"] - 1)
    return row


# --- memory, one subprocess per measurement --------------------------------------------------------

class PeakRSS:
    """Highest resident set size seen while the ``with`` body runs, sampled every 5 ms (ru_maxrss would
    also count the import-time high-water mark)."""

    def __enter__(self):
        import psutil

        self._process, self._stop, self.peak = psutil.Process(), threading.Event(), 0
        self.before = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def memory_child(side: int, tile: int, shipped: bool) -> dict:
    ups = shipped_upscalers() if shipped else []
    upscaler = next((u for u in ups if u.scale == 4), None) or random_upscaler("rrdbnet-small-x4", SMALL_X4)
    upscaler.upscale(np.zeros((64, 64, 3), np.uint8), tile=32)  # trace and warm up TF's allocator
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    if gpu:
        tf.config.experimental.reset_memory_stats("GPU:0")
    start = time.perf_counter()
    with PeakRSS() as rss:
        out = upscaler.upscale(image, tile=tile)
    row = {"model": upscaler.name, "side": side, "tile": tile, "seconds": time.perf_counter() - start,
           "rss_before_mb": rss.before / 2**20, "peak_rss_mb": rss.peak / 2**20, "output_mb": out.nbytes / 2**20}
    if gpu:  # on a GPU the activations live in device memory: its allocator's peak is what tiling bounds
        row["gpu_peak_mb"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    return row


def memory(side: int, tile: int, shipped: bool) -> dict:
    run = subprocess.run([sys.executable, __file__, "--memory-child", str(side), str(tile), str(int(shipped))],
                         capture_output=True, text=True, check=True)
    row = json.loads(run.stdout.strip().splitlines()[-1])
    row["working_mb"] = row["peak_rss_mb"] - row["rss_before_mb"] - row["output_mb"]
    return row


# --- report ----------------------------------------------------------------------------------------

def device() -> str:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return f"CPU ({os.cpu_count()} cores visible, {platform.processor() or platform.machine()})"


def markdown(speed: list[dict], mem: list[dict], where: str, args) -> str:
    lines = ["## Inference engine", "",
             f"`{' '.join(['python bench/bench_engine.py', *sys.argv[1:]])}` on {where}; "
             f"best of {args.repeats} interleaved rounds after a warm-up. Output megapixels per second and conv "
             "GFLOP/s (2 x multiply-adds of every Conv2D at its resolution). *raw* = the bare network on the same "
             "float tensor (OpenVINO: the compiled graph; TensorFlow: a tf.function of the Keras model); *engine* = `Upscaler.upscale` on the uint8 image with `tile=0` (one "
             "pass), *engine auto* = with its automatic tile.", "",
             "| model | runtime | precision | input | GFLOP | raw MP/s | raw GFLOP/s | engine MP/s | engine GFLOP/s | engine vs raw "
             "| engine auto MP/s (tile) | engine auto vs raw |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in speed:
        lines.append(f"| {r['model']} | {r['runtime']} | {r['precision']} | {r['input']} | {r['gflop']:.1f} | {r['raw']['mp_s']:.3f} | "
                     f"{r['raw']['gflop_s']:.1f} | {r['engine']['mp_s']:.3f} | {r['engine']['gflop_s']:.1f} | "
                     f"{r['overhead_pct']:+.1f}% | {r['engine_auto']['mp_s']:.3f} ({r['auto_tile']}) | "
                     f"{r['auto_overhead_pct']:+.1f}% |")
    one_tile = [r["model"] for r in speed if r["auto_tile"] >= int(r["input"].split("x")[0])]
    if one_tile:
        lines += ["", f"For {', '.join(one_tile)} the automatic tile covers the whole input, so *engine* and "
                  "*engine auto* do the same work: their difference shows the run-to-run noise of this machine."]
    lines += ["", f"Peak memory of one x4 upscale with tiling ({mem[0]['model'] if mem else '-'}), each in a fresh "
              "process: *before* = RSS with the model loaded and warm and the input allocated; *working* = "
              "peak - before - the output array, i.e. what the tiles cost.", "",
              "| input | tile | seconds | RSS before (MB) | peak RSS (MB) | output array (MB) | working (MB) "
              "| GPU peak (MB) |",
              "|---|---|---|---|---|---|---|---|"]
    for r in mem:
        gpu = f"{r['gpu_peak_mb']:.0f}" if "gpu_peak_mb" in r else "-"
        lines.append(f"| {r['side']}x{r['side']} | {r['tile']} | {r['seconds']:.1f} | {r['rss_before_mb']:.0f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['output_mb']:.0f} | {r['working_mb']:.0f} | {gpu} |")
    lines.append("")
    for tile in sorted({r["tile"] for r in mem}):  # the same per tile whatever the image: bounded by the tile
        parts = ", ".join(f"{r['working_mb']:.0f} MB at {r['side']}x{r['side']}" for r in mem if r["tile"] == tile)
        lines.append(f"- tile {tile}: working memory {parts}")
    lines += ["", f"![engine benchmark]({PLOT.relative_to(ROOT).as_posix()})", ""]
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace the "Inference engine" section of BENCHMARKS.md (or append it), leaving others alone."""
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    pattern = re.compile(r"## Inference engine\n.*?(?=\n## |\Z)", re.S)
    if pattern.search(old):
        path.write_text(pattern.sub(lambda _: text.rstrip("\n") + "\n", old))
    else:
        path.write_text(old.rstrip("\n") + "\n\n" + text)


def plot(speed: list[dict], mem: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    labels = ["raw", "engine", "engine_auto"]
    for i, r in enumerate(speed):
        a.bar([i + k * 0.27 for k in range(3)], [r[lab]["gflop_s"] for lab in labels], width=0.25,
              color=["#888", "#1f77b4", "#6baed6"], label=["raw forward", "engine, one pass", "engine, auto tile"]
              if i == 0 else None)
    a.set_xticks([i + 0.27 for i in range(len(speed))], [f"{r['model']}\n{r['input']}" for r in speed])
    a.set_ylabel("conv GFLOP/s")
    a.set_title("Engine vs raw forward")
    a.set_ylim(top=1.3 * max(r[lab]["gflop_s"] for r in speed for lab in labels))
    a.legend(loc="upper center", ncols=3, fontsize=8)
    for side in sorted({r["side"] for r in mem}):
        rows = [r for r in mem if r["side"] == side]
        b.plot([r["tile"] for r in rows], [r["working_mb"] for r in rows], "o-",
               label=f"{side}x{side} input (output array {rows[0]['output_mb']:.0f} MB, not counted)")
    b.set_xlabel("tile (input pixels)")
    b.set_ylabel("peak RSS - before - output array (MB)")
    b.set_title("Working memory of a tiled x4 upscale")
    b.set_ylim(bottom=0)
    b.legend(fontsize=8)
    fig.tight_layout()
    PLOT.parent.mkdir(exist_ok=True)
    fig.savefig(PLOT, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=64, help="throughput input side (default 64)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precisions", default="auto",
                        help="comma-separated precision settings to measure (default auto: what this CPU runs)")
    parser.add_argument("--backends", default="openvino,tensorflow",
                        help="comma-separated runtimes to measure (model.runners; default both)")
    parser.add_argument("--mem-sides", type=int, nargs="*", default=[500, 2000])
    parser.add_argument("--mem-tiles", type=int, nargs="*", default=[128, 256])
    parser.add_argument("--skip-esrgan", action="store_true", help="skip the 23-block RRDBNet")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md and the plot")
    parser.add_argument("--mem-shipped", action="store_true",
                        help="measure memory with the shipped x4 default (slower) instead of a small RRDBNet")
    parser.add_argument("--memory-child", type=int, nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(*args.memory_child)))
        return

    load_start = os.getloadavg()[0]
    upscalers = []
    for backend in dict.fromkeys(args.backends.split(",")):
        for precision in dict.fromkeys(args.precisions.split(",")):
            upscalers += (([] if args.skip_esrgan else [random_upscaler("rrdbnet-23b-x4", ESRGAN_X4, precision,
                                                                        backend)])
                          + shipped_upscalers(precision, backend))
    speed = []
    for up in upscalers:
        speed.append(throughput(up, args.size, args.repeats))
        print(json.dumps(speed[-1]), flush=True)
    mem = []
    for side in args.mem_sides:
        for tile in args.mem_tiles:
            mem.append(memory(side, tile, args.mem_shipped))
            print(json.dumps(mem[-1]), flush=True)
    where = f"{device()}, 1-min load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    text = markdown(speed, mem, where, args)
    print(text)
    if not args.no_write:
        write_section(text)
        plot(speed, mem)


if __name__ == "__main__":
    main()
