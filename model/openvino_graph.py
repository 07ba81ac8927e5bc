"""The generators as OpenVINO graphs, built straight from an artifact's weights: no TensorFlow, no
conversion step, a few milliseconds per model.

OpenVINO's CPU plugin plans every convolution for the machine it runs on (AVX2, AVX-512, AMX; bfloat16
where the CPU has it) and has no first-call tracing cost: on a 2-core AMD EPYC (AVX2, no bf16) a 23-block
RRDBNet ran 1.38x PyTorch fp32 and 1.3x TensorFlow's warm forward, with TensorFlow's cold first call ~2x
its warm one (BENCHMARKS.md). The layer names and weight layouts are the Keras models' (``model.archs``),
so one artifact serves both runtimes. Each graph is registered beside its Keras builder in
``model.architectures``; ``tests/test_archs.py`` holds every graph to its Keras twin.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import reduce
from typing import Any

import numpy as np
import openvino as ov
import openvino.opset13 as ops

Weights = dict[str, np.ndarray]


def _const(a) -> ov.Node:
    return ops.constant(np.ascontiguousarray(np.asarray(a, dtype=np.float32)))


def _conv(x, w: Weights, name: str) -> ov.Node:
    """A Keras ``Conv2D(padding="same")``: HWIO kernel -> OIHW, bias per output channel."""
    kernel = w[f"{name}/kernel"]
    p = kernel.shape[0] // 2
    y = ops.convolution(x, _const(kernel.transpose(3, 2, 0, 1)), [1, 1], [p, p], [p, p], [1, 1])
    return ops.add(y, _const(w[f"{name}/bias"].reshape(1, -1, 1, 1)))


def _lrelu(x) -> ov.Node:
    return ops.prelu(x, _const([0.2]))


def _scaled_residual(residual, identity) -> ov.Node:
    return ops.add(ops.multiply(residual, _const(0.2)), identity)


def _upsample(x, factor: int) -> ov.Node:
    """Nearest-neighbour: output pixel i copies input pixel floor(i / factor), as Keras' UpSampling2D."""
    return ops.interpolate(x, _const([factor, factor]), "nearest", "scales",
                           coordinate_transformation_mode="asymmetric", nearest_mode="floor",
                           axes=ops.constant(np.array([2, 3], np.int64)))


def rrdbnet(x, w: Weights, scale: int = 4, num_block: int = 23, num_feat: int = 64, num_grow_ch: int = 32,
            num_in_ch: int = 3, num_out_ch: int = 3, pixel_unshuffle: bool = False, **_) -> ov.Node:
    """``model.archs.rrdbnet.build_rrdbnet`` on NCHW: the same layers, names and order."""
    if pixel_unshuffle:
        x = ops.space_to_depth(x, "blocks_first", 2)  # TF's channel order (dy, dx, c)
    feat = _conv(x, w, "conv_first")
    body = feat
    for i in range(num_block):
        block_in = body
        for k in (1, 2, 3):
            name, feats = f"body_{i}_rdb{k}", [body]
            for j in range(1, 5):
                inp = feats[0] if j == 1 else ops.concat(feats, 1)
                feats.append(_lrelu(_conv(inp, w, f"{name}_conv{j}")))
            body = _scaled_residual(_conv(ops.concat(feats, 1), w, f"{name}_conv5"), body)
        body = _scaled_residual(body, block_in)
    feat = ops.add(feat, _conv(body, w, "conv_body"))
    for s in range(1, (2 if pixel_unshuffle else scale // 2) + 1):
        feat = _lrelu(_conv(_upsample(feat, 2), w, f"conv_up{s}"))
    return _conv(_lrelu(_conv(feat, w, "conv_hr")), w, "conv_last")


def srvgg(x, w: Weights, scale: int = 4, num_feat: int = 64, num_conv: int = 16, **_) -> ov.Node:
    """``model.archs.srvgg.build_srvgg`` on NCHW."""
    y = x
    for i in range(num_conv + 1):
        y = ops.prelu(_conv(y, w, f"body_{2 * i}"), _const(w[f"body_{2 * i + 1}/alpha"].reshape(-1)))
    y = ops.depth_to_space(_conv(y, w, f"body_{2 * num_conv + 2}"), "blocks_first", scale)  # TF's order
    return ops.add(y, _upsample(x, scale))


def build_model(parts: Sequence[tuple[Callable[..., ov.Node], dict[str, Any], Weights, float]],
                value_range=(0.0, 1.0), clip: bool = True, name: str = "generator") -> ov.Model:
    """The sum of each part's ``graph(x, weights, **params)`` (an architecture's, ``model.architectures``)
    times its share, as NHWC float32 in [0, 1] (any batch and size) -> NHWC float32 in [0, 1]: the engine's
    contract, with the artifact's value range and the final clip inside the graph (``clip=False``: the
    engine resizes the output first and clips after, as the x2/x3 ncnn graphs do)."""
    lo, hi = (float(v) for v in value_range)
    lr = ops.parameter(ov.PartialShape([-1, -1, -1, parts[0][1].get("num_in_ch", 3)]), ov.Type.f32, name="lr")
    x = ops.transpose(ops.add(ops.multiply(lr, _const(hi - lo)), _const(lo)), ops.constant(np.array([0, 3, 1, 2])))
    outs = [graph(x, weights, **params) if share == 1.0 else ops.multiply(graph(x, weights, **params), _const(share))
            for graph, params, weights, share in parts]
    y = ops.transpose(reduce(ops.add, outs), ops.constant(np.array([0, 2, 3, 1])))
    y = ops.divide(ops.subtract(y, _const(lo)), _const(hi - lo))
    y = ops.clamp(y, 0.0, 1.0) if clip else y
    return ov.Model([y], [lr], name)
