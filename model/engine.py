"""The inference engine: any image size, seam-free tiling with bounded memory, alpha, grayscale, 16 bit.

One ``Upscaler`` wraps one loaded generator. All per-call state lives in locals, so one instance serves
many threads at once (Real-ESRGAN keeps per-call images on ``self``; that mixes outputs between threads).
"""
from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from . import official
from .architectures import architecture
from .artifacts import Manifest, read_manifest
from .compiled import CompiledCache, compiled_cache
from .errors import Canceled, ESRGANError, InvalidOption
from .options import JobOptions, output_size, resolve_model, resolve_strength
from .runners import Runner, TensorFlowRunner, load_runner, precision_line
from .settings import Settings, get_settings

log = logging.getLogger("esrgan.engine")

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool] | threading.Event

MIN_TILE = 32


class Upscaler:
    def __init__(self, runner: Runner, manifest: Manifest, *, tile: int | None = None, tile_pad: int = 16,
                 edge_pad: int = 4, tile_memory_mb: int = 1536):
        """``runner``: a model.runners runner, or a Keras model (run with TensorFlow)."""
        if hasattr(runner, "layers"):
            runner = TensorFlowRunner(runner, manifest.value_range, clip=manifest.network_scale == manifest.scale)
        self.runner = runner
        self.manifest = manifest
        self.name = manifest.name
        self.scale = manifest.scale
        # The network's own factor: x2/x3 realesr-animevideov3 run the x4 network, then a bicubic resize
        self.net_scale = manifest.network_scale
        self.tile = tile
        # Tiles of pixel-unshuffle models must start on even pixels to keep the space-to-depth grid.
        self.multiple = math.lcm(*(architecture(a).multiple(p) for a, p in manifest.networks()))  # pixel-unshuffle: 2
        self.tile_pad = _round_up(tile_pad, self.multiple)
        self.edge_pad = _round_up(edge_pad, self.multiple)
        self.tile_memory_mb = tile_memory_mb
        self._forward = runner  # NHWC float32 [0, 1] -> NHWC float32 [0, 1]

    @property
    def backend(self) -> str:
        return self.runner.backend

    @property
    def precision(self) -> str:
        """What the convolutions compute in, as the runtime reports it: sent with every result."""
        return self.runner.precision

    @property
    def model(self):
        """The Keras model, on the tensorflow backend (None on OpenVINO)."""
        return getattr(self.runner, "model", None)

    @classmethod
    def from_artifact(cls, folder: Path | str, *, strength: float | None = None, precision: str = "auto",
                      backend: str = "auto", cache: CompiledCache | None = None, **kwargs) -> "Upscaler":
        """``precision``: one of PRECISION_SETTINGS; ``auto`` = the fastest this machine has (model.hardware).
        ``backend``: one of BACKEND_SETTINGS (model.runners). ``cache``: compiled networks (model.compiled)."""
        manifest = read_manifest(folder)
        runner = load_runner(folder, manifest, strength=strength, precision=precision, backend=backend, cache=cache)
        return cls(runner, manifest, **kwargs)

    # --- sizes ------------------------------------------------------------------------------------

    def auto_tile(self) -> int:
        """Largest LR tile whose activations fit ``tile_memory_mb`` (the architecture says what one input
        pixel costs at its widest, ``model.architectures``)."""
        bytes_per_px = max(architecture(a).activation_bytes(p, self.net_scale) for a, p in self.manifest.networks())
        side = int(math.sqrt(self.tile_memory_mb * 2**20 / bytes_per_px))
        return max(MIN_TILE, side // 8 * 8)

    def output_size(self, width: int, height: int, *, outscale: float | None = None,
                    size: tuple[int | None, int | None] | None = None) -> tuple[int, int]:
        return output_size(width, height, self.scale, outscale=outscale, size=size)

    # --- the call ---------------------------------------------------------------------------------

    def run(self, image: np.ndarray, options: JobOptions, *, progress: Progress | None = None,
            cancel: Cancel | None = None) -> np.ndarray:
        """Upscale with a job's resolved options (their width x height is the output size)."""
        size = (options.width, options.height) if options.width or options.height else None
        return self.upscale(image, outscale=None if size else options.outscale, size=size, tile=options.tile,
                            progress=progress, cancel=cancel, ensemble=options.ensemble)

    def upscale(self, image: np.ndarray, *, outscale: float | None = None,
                size: tuple[int | None, int | None] | None = None, tile: int | None = None,
                progress: Progress | None = None, cancel: Cancel | None = None,
                ensemble: bool = False) -> np.ndarray:
        """Upscale HxW, HxWx1..4 uint8/uint16/float image; the result has the same layout and dtype.

        ``ensemble`` averages the outputs for the 8 flips/rotations of the input (self-ensemble, as EDSR+):
        about +0.1 dB PSNR for 8x the time and a float32 output-sized buffer."""
        image = np.asarray(image)
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4)):
            raise InvalidOption(f"expected an HxW or HxWxC (C<=4) image, got shape {image.shape}")
        if image.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
            raise InvalidOption(f"unsupported pixel type {image.dtype}")
        if min(image.shape[:2]) < 1:
            raise InvalidOption("empty image")
        h, w = image.shape[:2]
        target = self.output_size(w, h, outscale=outscale, size=size)

        planes = image if image.ndim == 3 else image[:, :, None]
        gray = planes.shape[2] in (1, 2)
        colour, alpha = (planes[:, :, :1], planes[:, :, 1:2]) if gray else (planes[:, :, :3], planes[:, :, 3:])
        if gray:
            colour = np.repeat(colour, 3, axis=2)
        tile = tile if tile is not None else self.tile
        if ensemble:
            out = self._ensemble(colour, tile, progress, cancel, gray)
        else:
            out = self._network(colour, tile, progress, cancel, gray)
        native = (w * self.scale, h * self.scale)
        if alpha.shape[2]:
            # Alpha is not a photo: a plain high-quality resize keeps edges clean and costs nothing.
            up = cv2.resize(alpha[:, :, 0], native, interpolation=cv2.INTER_CUBIC)
            out = np.dstack([out if out.ndim == 3 else out[:, :, None], _clip_like(up, image.dtype)])
        if target != native:
            shrink = target[0] * target[1] < native[0] * native[1]
            out = cv2.resize(out, target, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)
            out = _clip_like(out, image.dtype)
        if image.ndim == 3 and out.ndim == 2:
            out = out[:, :, None]
        return out

    def _ensemble(self, rgb: np.ndarray, tile: int | None, progress: Progress | None,
                  cancel: Cancel | None, gray: bool) -> np.ndarray:
        acc = None
        for k in range(8):
            rot, flip = k % 4, k >= 4

            def sub_progress(done, total, k=k):
                if progress:
                    progress(k * total + done, 8 * total)

            x = np.rot90(rgb[:, ::-1] if flip else rgb, rot)
            y = np.rot90(self._network(np.ascontiguousarray(x), tile, sub_progress, cancel, gray, as_float=True), -rot)
            y = y[:, ::-1] if flip else y
            acc = y.astype(np.float32) if acc is None else acc + y
        peak, mean = _peak(rgb.dtype), acc / 8
        return mean.astype(np.float32) if peak == 1.0 else np.rint(mean * peak).astype(rgb.dtype)

    def _network(self, rgb: np.ndarray, tile: int | None, progress: Progress | None,
                 cancel: Cancel | None, gray: bool, as_float: bool = False) -> np.ndarray:
        """Run the generator over ``rgb`` in tiles, writing each tile's centre straight into the output
        (in the input's dtype, so the only image-sized buffers are the input and the output)."""
        dtype, peak = rgb.dtype, _peak(rgb.dtype)
        h, w = rgb.shape[:2]
        m, s = self.multiple, self.scale
        ph, pw = _round_up(h, m) - h, _round_up(w, m) - w
        if ph or pw:  # pixel-unshuffle needs even sizes; mirror-pad and crop afterwards
            rgb = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="symmetric")
        H, W = rgb.shape[:2]
        float_out = as_float or peak == 1.0
        out = np.empty((H * s, W * s) if gray else (H * s, W * s, 3), dtype=np.float32 if float_out else dtype)

        tile = self.auto_tile() if tile is None else int(tile)
        if tile < 0:
            raise InvalidOption("tile must be >= 0 (0 = one pass)")
        tile = max(H, W) if tile == 0 else max(MIN_TILE, _round_up(tile, m))
        # As many tiles as ``tile`` needs, of equal sizes: no thin last row/column (small convolutions
        # waste the CPU's vector width) and fewer distinct shapes to plan.
        th, tw = (_round_up(-(-n // -(-n // tile)), m) for n in (H, W))
        boxes = [(y, min(y + th, H), x, min(x + tw, W)) for y in range(0, H, th) for x in range(0, W, tw)]

        def store(y0, y1, x0, x1, sr):
            sr = sr.mean(axis=2) if gray else sr
            out[y0 * s:y1 * s, x0 * s:x1 * s] = sr if float_out else np.rint(sr * peak)

        # Mirrored context past the edges: edge_pad, or more on images under MIN_TILE so that the network
        # sees at least that much (a 1x1 pixel kept its colour within 1 level with 16, 4 off with 4).
        edges = tuple(max(self.edge_pad, _round_up(-(-(MIN_TILE - n) // 2), m)) for n in (H, W))
        for done, box in enumerate(boxes):
            if cancel is not None and (cancel.is_set() if isinstance(cancel, threading.Event) else cancel()):
                raise Canceled("canceled")
            self._region(rgb, box, peak, store, edges)
            if progress:
                progress(done + 1, len(boxes))
        return out[: h * s, : w * s]

    def _region(self, rgb, box, peak, store, edges):
        """Upscale one tile with ``tile_pad`` context on each side; on out-of-memory, split it in four.

        Past the image's edges the context is ``edges`` (rows, columns) mirrored pixels, never more: the
        network's own zero padding would darken and tint the borders (a 1x1 (250,10,120) came out
        (67,33,35)), while each mirrored pixel costs a row of work (16 per side made a 64x64 pass 2.25x a
        bare forward; 4 keep Set5/Set14 PSNR equal). A tile sees the same mirrored edge as a one-pass run,
        so tiles still join without seams."""
        y0, y1, x0, x1 = box
        pad, (ey, ex), s, H, W = self.tile_pad, edges, self.scale, rgb.shape[0], rgb.shape[1]
        # the window in image coordinates: tile_pad of context, reaching at most ey/ex past the image
        py0, py1 = max(y0 - pad, -ey), min(y1 + pad, H + ey)
        px0, px1 = max(x0 - pad, -ex), min(x1 + pad, W + ex)
        lr = rgb[max(py0, 0):min(py1, H), max(px0, 0):min(px1, W)].astype(np.float32) / peak
        mirror = ((max(-py0, 0), max(py1 - H, 0)), (max(-px0, 0), max(px1 - W, 0)), (0, 0))
        lr = np.pad(lr, mirror, mode="symmetric")  # numpy repeats the reflection for pads wider than the image
        try:
            sr = self._forward(lr[None])[0]
        except self.runner.oom_errors:
            if min(y1 - y0, x1 - x0) < 2 * MIN_TILE:
                raise ESRGANError("out of memory even on the smallest tile") from None
            ym, xm = _round_up((y0 + y1) // 2, self.multiple), _round_up((x0 + x1) // 2, self.multiple)
            for sub in ((y0, ym, x0, xm), (y0, ym, xm, x1), (ym, y1, x0, xm), (ym, y1, xm, x1)):
                self._region(rgb, sub, peak, store, edges)
            return
        if self.net_scale != s:
            # As the ncnn graphs do: bicubic (a = -0.75, OpenCV's and ncnn's) on the padded, unclipped output
            # window, whose sampling grid is the whole image's, so the context margin keeps tiles seamless.
            sr = cv2.resize(sr, ((px1 - px0) * s, (py1 - py0) * s), interpolation=cv2.INTER_CUBIC)
            np.clip(sr, 0.0, 1.0, out=sr)  # bicubic overshoots: a -0.01 must not wrap to 255
        store(y0, y1, x0, x1, sr[(y0 - py0) * s:(y1 - py0) * s, (x0 - px0) * s:(x1 - px0) * s])


def _peak(dtype) -> float:
    """The value that means full intensity: 255 for 8 bit, 65535 for 16 bit, 1.0 for floats."""
    return {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(np.dtype(dtype), 1.0)


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def _clip_like(arr: np.ndarray, dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        return np.clip(arr, 0, np.iinfo(dtype).max).astype(dtype)
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


# --- per-process cache of loaded models ----------------------------------------------------------

_cache: dict[tuple, Upscaler] = {}
_cache_lock = threading.Lock()


def load_upscaler(name: str | None = None, *, scale: int | None = None, strength: float | None = None,
                  settings: Settings | None = None) -> Upscaler:
    """The named model, or the default for ``scale``; loaded once per process and reused."""
    settings = settings or get_settings()
    official.ensure(settings, name)
    folder, manifest = resolve_model(settings, name, scale)
    strength = resolve_strength(manifest, strength)  # range-checked and rounded as JobOptions keeps it
    key = (str(folder.resolve()), manifest.weights.sha256, strength, settings.tile, settings.tile_pad,
           settings.edge_pad, settings.tile_memory_mb, settings.precision, settings.backend)
    with _cache_lock:
        if key not in _cache:
            up = _cache[key] = Upscaler.from_artifact(
                folder, strength=strength, precision=settings.precision, backend=settings.backend,
                cache=compiled_cache(settings), tile=settings.tile, tile_pad=settings.tile_pad, edge_pad=settings.edge_pad,
                tile_memory_mb=settings.tile_memory_mb)
            log.info("loaded %s (x%d) on %s, precision %s", manifest.name, manifest.scale, up.backend,
                     precision_line(settings.precision, up.backend))
        return _cache[key]
