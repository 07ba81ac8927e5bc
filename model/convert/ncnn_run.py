"""A small NumPy interpreter of the ncnn layers the converter accepts: the reference that proves a recognised
network computes what the graph computes, on a small input, at conversion time. Written for clarity, not speed.

Blobs are CHW float32 arrays (one image), as in ncnn.
"""
from __future__ import annotations

import numpy as np

from .checkpoint import CheckpointError
from .ncnn import Graph, Layer


def run(graph: Graph, x: np.ndarray, until: str | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Evaluate ``graph`` on ``x`` (CHW) up to the blob ``until`` (default: the output). Also returns every
    convolution's output before its fused activation, by layer name (to find where two networks part)."""
    until = until or graph.output
    blobs: dict[str, np.ndarray] = {}
    convs: dict[str, np.ndarray] = {}
    for layer in graph.layers:
        ins = [blobs[b] for b in layer.inputs]
        outs = _forward(layer, ins, x, convs)
        blobs.update(zip(layer.outputs, outs))
        if until in blobs:
            return blobs[until], convs
    raise CheckpointError(f"ncnn graph: blob {until!r} is never produced")


def _forward(layer: Layer, ins: list[np.ndarray], x: np.ndarray, convs: dict) -> list[np.ndarray]:
    t, p = layer.type, layer.p
    if t == "Input":
        return [x]
    if t in ("Split", "Noop", "Dropout"):
        return [ins[0]] * len(layer.outputs)
    if t == "Convolution":
        y = _conv(ins[0], layer)
        convs[layer.name] = y
        return [_activation(y, int(p(9)), p(10, []))]
    if t == "ReLU":
        return [_activation(ins[0], 2 if p(0) else 1, [p(0)])]
    if t == "PReLU":
        return [np.where(ins[0] > 0, ins[0], ins[0] * layer.weights["slope"].reshape(-1, 1, 1))]
    if t == "Concat":
        if p(0) != 0:
            raise CheckpointError(f"{layer.describe()}: concatenation along axis {p(0)}; only channels (0)")
        return [np.concatenate(ins, axis=0)]
    if t == "Eltwise":
        return [_eltwise(layer, ins)]
    if t == "BinaryOp":
        return [_binary(layer, ins)]
    if t == "Interp":
        return [_interp(layer, ins[0])]
    if t == "PixelShuffle":
        return [_shuffle(layer, ins[0])]
    if t == "Reorg":
        return [_reorg(layer, ins[0])]
    raise CheckpointError(f"unsupported ncnn layer {layer.describe()}")


def _conv(x: np.ndarray, layer: Layer) -> np.ndarray:
    o, k = int(layer.p(0)), int(layer.p(1))
    pads = [int(layer.p(i, layer.p(4))) for i in (14, 16, 4, 15)]  # top, bottom, left, right
    if any(v < 0 for v in pads):
        raise CheckpointError(f"{layer.describe()}: 'same' padding markers (-233) are not supported")
    w = layer.weights["weight"].reshape(o, -1, k, k)
    xp = np.pad(x, ((0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(1, 2))  # C, H, W, k, k
    y = np.einsum("chwij,ocij->ohw", windows, w, optimize=True)
    if "bias" in layer.weights:
        y = y + layer.weights["bias"].reshape(-1, 1, 1)
    return y.astype(np.float32)


def _activation(y: np.ndarray, kind: int, params) -> np.ndarray:
    if kind == 0:
        return y
    if kind == 1:
        return np.maximum(y, 0)
    if kind == 2:
        return np.where(y > 0, y, y * float(params[0]))
    raise CheckpointError(f"fused activation type {kind}; only none, ReLU and leaky ReLU are supported")


def _eltwise(layer: Layer, ins: list[np.ndarray]) -> np.ndarray:
    op, coeffs = int(layer.p(0, 1)), layer.p(1, [])
    if op == 0:
        return np.prod(ins, axis=0)
    if op == 2:
        return np.max(ins, axis=0)
    coeffs = coeffs or [1.0] * len(ins)
    return sum(float(c) * a for c, a in zip(coeffs, ins))


def _binary(layer: Layer, ins: list[np.ndarray]) -> np.ndarray:
    op = int(layer.p(0))
    a, b = ins[0], (np.float32(layer.p(2, 0.0)) if layer.p(1) else ins[1])
    ops = {0: np.add, 1: np.subtract, 2: np.multiply, 7: lambda u, v: v - u}
    if op not in ops:
        raise CheckpointError(f"{layer.describe()}: binary operation {op}; only add, sub, mul and rsub")
    return ops[op](a, b).astype(np.float32)


def _interp(layer: Layer, x: np.ndarray) -> np.ndarray:
    fh, fw = float(layer.p(1, 1.0)), float(layer.p(2, 1.0))
    if layer.p(0) != 1 or fh != int(fh) or fw != int(fw) or layer.p(3) or layer.p(4):
        raise CheckpointError(f"{layer.describe()}: only nearest upsampling by whole factors inside the network")
    return x.repeat(int(fh), axis=1).repeat(int(fw), axis=2)


def _shuffle(layer: Layer, x: np.ndarray) -> np.ndarray:
    r = int(layer.p(0))
    if layer.p(1):
        raise CheckpointError(f"{layer.describe()}: only PyTorch-order pixel shuffle (mode 0)")
    c, h, w = x.shape
    return x.reshape(c // (r * r), r, r, h, w).transpose(0, 3, 1, 4, 2).reshape(c // (r * r), h * r, w * r)


def _reorg(layer: Layer, x: np.ndarray) -> np.ndarray:
    r = int(layer.p(0))
    if layer.p(1):
        raise CheckpointError(f"{layer.describe()}: only PyTorch-order space-to-depth (mode 0)")
    c, h, w = x.shape
    return x.reshape(c, h // r, r, w // r, r).transpose(0, 2, 4, 1, 3).reshape(c * r * r, h // r, w // r)
