"""Small ncnn models that the tests write themselves: random weights in BasicSR naming, laid out as the ncnn
exporters lay them out (onnx2ncnn's fused leaky ReLU and Eltwise sums with coefficients; older exports'
separate ReLU layers and scalar BinaryOps; pixel-unshuffle as Reorg; SRVGG's PReLU chain, PixelShuffle and
nearest-upsampled input; a bicubic downscale tail), in float32 or float16 storage."""
from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import numpy as np

TAG_FP16 = 0x01306B47


class NcnnWriter:
    def __init__(self, fp16: bool = False):
        self.fp16, self.layers, self.count = fp16, [], 0

    def _blob(self) -> str:
        self.count += 1
        return f"b{self.count}"

    def add(self, kind: str, inputs: list[str], params: str = "", weights: bytes = b"", outputs: int = 1) -> str:
        outs = [self._blob() for _ in range(outputs)]
        self.layers.append([kind, f"{kind.lower()}_{len(self.layers)}", list(inputs), outs, params, weights])
        return outs[0]

    def input(self) -> str:
        return self.add("Input", [], "0=0 1=0 2=3")  # output blob b1: renamed "data" on save

    def conv(self, x: str, w: np.ndarray, b: np.ndarray, slope: float | None = None) -> str:
        o, i, k, _ = w.shape
        act = f" 9=2 -23310=1,{slope:e}" if slope is not None else ""
        return self.add("Convolution", [x], f"0={o} 1={k} 4={k // 2} 5=1 6={w.size}{act}",
                        self._tagged(w) + b.astype("<f4").tobytes())

    def _tagged(self, w: np.ndarray) -> bytes:
        if not self.fp16:
            return struct.pack("<I", 0) + w.astype("<f4").tobytes()
        data = w.astype("<f2").tobytes()
        return struct.pack("<I", TAG_FP16) + data + b"\0" * (-len(data) % 4)

    def save(self, param: Path, output: str) -> Path:
        """Write ``param`` and its ``.bin``; blobs read by several layers get a Split, as ncnn requires."""
        uses = Counter(b for layer in self.layers for b in layer[2])
        renames = {"b1": "data", output: "output"}
        layers, pending = [], {}
        for kind, name, ins, outs, params, _ in self.layers:
            ins = [next(pending[b]) if b in pending else renames.get(b, b) for b in ins]
            layers.append([kind, name, ins, [renames.get(b, b) for b in outs], params])
            for b in outs:
                if uses[b] > 1:
                    src = renames.get(b, b)
                    split = [f"{src}_s{j}" for j in range(uses[b])]
                    layers.append(["Split", f"split_{src}", [src], split, ""])
                    pending[b] = iter(split)
        blobs = {b for layer in layers for b in layer[2] + layer[3]}
        lines = ["7767517", f"{len(layers)} {len(blobs)}"]
        lines += [" ".join([kind, name, str(len(ins)), str(len(outs)), *ins, *outs, params]).strip()
                  for kind, name, ins, outs, params in layers]
        param.write_text("\n".join(lines) + "\n")
        param.with_suffix(".bin").write_bytes(b"".join(layer[5] for layer in self.layers))
        return param


def _conv_weights(rng, o: int, i: int, k: int = 3, gain: float = 1.0):
    return (rng.standard_normal((o, i, k, k)) * gain / np.sqrt(i * k * k)).astype(np.float32), \
        (rng.standard_normal(o) * 0.02).astype(np.float32)


def rrdbnet(path: Path, *, blocks: int = 2, feat: int = 8, grow: int = 4, scale: int = 4, style: str = "onnx",
            unshuffle: bool = False, fp16: bool = False, seed: int = 0) -> Path:
    """An RRDBNet (x2 or x4; x2 with ``unshuffle`` runs its body at half size on space-to-depth input)."""
    rng = np.random.default_rng(seed)
    g = NcnnWriter(fp16)
    x = g.input()
    if unshuffle:
        x = g.add("Reorg", [x], "0=2")

    def lrelu_conv(inp, o, i, act=True):
        w, b = _conv_weights(rng, o, i)
        if style == "onnx" or not act:
            return g.conv(inp, w, b, 0.2 if act else None)
        return g.add("ReLU", [g.conv(inp, w, b)], "0=2.000000e-01")

    def scaled_add(residual, identity):
        if style == "onnx":
            return g.add("Eltwise", [residual, identity], "0=1 -23301=2,2.000000e-01,1.000000e+00")
        return g.add("BinaryOp", [g.add("BinaryOp", [residual], "0=2 1=1 2=2.000000e-01"), identity], "0=0")

    first = lrelu_conv(x, feat, 12 if unshuffle else 3, act=False)
    body = first
    for _ in range(blocks):
        block_in = body
        for _ in range(3):
            feats = [body]
            for j in range(1, 5):
                inp = feats[0] if j == 1 else g.add("Concat", feats, "0=0")
                feats.append(lrelu_conv(inp, grow, feat + (j - 1) * grow))
            out = lrelu_conv(g.add("Concat", feats, "0=0"), feat, feat + 4 * grow, act=False)
            body = scaled_add(out, body)
        body = scaled_add(body, block_in)
    trunk = g.add("BinaryOp", [first, lrelu_conv(body, feat, feat, act=False)], "0=0")
    y = trunk
    for _ in range(2 if unshuffle else scale // 2):
        y = lrelu_conv(g.add("Interp", [y], "0=1 1=2.000000e+00 2=2.000000e+00"), feat, feat)
    w, b = _conv_weights(rng, 3, feat, gain=0.5)
    out = g.conv(lrelu_conv(y, feat, feat), w, b + 0.5)
    return g.save(path, out)


def srvgg(path: Path, *, convs: int = 3, feat: int = 8, scale: int = 4, resize: float | None = None,
          fp16: bool = False, shared_slope: bool = False, seed: int = 0) -> Path:
    """An SRVGGNetCompact; ``resize`` adds the bicubic tail of realesr-animevideov3-x2/x3; ``shared_slope``
    writes each PReLU with one slope for all channels, as some exporters do."""
    rng = np.random.default_rng(seed)
    g = NcnnWriter(fp16)
    x = g.input()
    y = x
    for i in range(convs + 1):
        w, b = _conv_weights(rng, feat, 3 if i == 0 else feat)
        slopes = (0.25 + 0.05 * rng.standard_normal(1 if shared_slope else feat)).astype("<f4")
        y = g.add("PReLU", [g.conv(y, w, b)], f"0={slopes.size}", slopes.tobytes())
    w, b = _conv_weights(rng, 3 * scale * scale, feat, gain=0.3)
    y = g.add("PixelShuffle", [g.conv(y, w, b)], f"0={scale}")
    base = g.add("Interp", [x], f"0=1 1={scale:e} 2={scale:e}")
    out = g.add("BinaryOp", [y, base], "0=0")
    if resize:
        out = g.add("Interp", [out], f"0=3 1={resize:e} 2={resize:e}")
    return g.save(path, out)
