"""ncnn models (``.param`` text + ``.bin`` weights) read as data, and recognised as a known network.

Nothing in the files is executed: the ``.param`` is parsed as text (magic ``7767517``, a count line, then one
layer per line: type, name, input/output counts, blob names, ``key=value`` parameters, negative keys
``-233xx=n,v1,...`` for arrays) and the ``.bin`` by ncnn's documented layout (``src/modelbin.cpp``): each
layer's weight blob starts with a 4-byte tag (0 = float32; 0x01306B47 = float16, padded to 4 bytes;
0x000D4B38 = int8), its bias and PReLU slopes follow as plain float32.

Recognition uses the graph's structure, never layer names (onnx2ncnn names them Conv_0, pnnx convolution_0):
the convolutions in graph order are assigned to the architecture's layers (BasicSR naming), and
``model.convert`` then checks that the recognised network computes what the graph computes
(``model.convert.ncnn_run``), naming the first layer where they part.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checkpoint import CheckpointError

MAGIC = 7767517
TAG_FP16, TAG_INT8, TAG_FP32_SCALED = 0x01306B47, 0x000D4B38, 0x0002C056
# Layer types the reader and the reference interpreter understand; anything else is refused by name.
KNOWN_TYPES = {"Input", "Convolution", "ReLU", "PReLU", "Split", "Concat", "Eltwise", "BinaryOp", "Interp",
               "PixelShuffle", "Reorg", "Noop", "Dropout"}
INTERP_NAMES = {1: "nearest", 2: "bilinear", 3: "bicubic"}


@dataclass
class Layer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, float | int | list]
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def p(self, key: int, default=0):
        return self.params.get(key, default)

    def describe(self) -> str:
        return f"{self.type} {self.name!r}"


@dataclass
class Graph:
    layers: list[Layer]
    storage: str  # float32 / float16: how the weights were stored

    @property
    def input(self) -> str:
        return next(layer.outputs[0] for layer in self.layers if layer.type == "Input")

    @property
    def output(self) -> str:
        consumed = {b for layer in self.layers for b in layer.inputs}
        ends = [b for layer in self.layers for b in layer.outputs if b not in consumed]
        if len(ends) != 1:
            raise CheckpointError(f"ncnn graph: expected one output blob, found {len(ends)}: {', '.join(ends[:5])}")
        return ends[0]

    def producer(self, blob: str) -> Layer:
        return next(layer for layer in self.layers if blob in layer.outputs)

    def of_type(self, kind: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.type == kind]


def read_graph(param: Path | str, bin_path: Path | str | None = None) -> Graph:
    """The graph of ``param`` with its weights from ``bin_path`` (default: the ``.bin`` beside it)."""
    param = Path(param)
    bin_path = Path(bin_path) if bin_path else param.with_suffix(".bin")
    layers = read_param(param)
    if not bin_path.is_file():
        raise CheckpointError(f"{bin_path}: no such file (the weights of {param.name}; give --bin PATH)")
    storage = _read_bin(bin_path, layers)
    return Graph(layers, storage)


def read_param(path: Path) -> list[Layer]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        lines = [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: not an ncnn .param file (binary data; the .param.bin form is not "
                              "supported, use the text .param)") from None
    if not lines or lines[0] != [str(MAGIC)]:
        raise CheckpointError(f"{path}: not an ncnn .param file (first line is not the magic {MAGIC})")
    try:
        layer_count, _ = (int(v) for v in lines[1])
        layers = [_parse_layer(tokens) for tokens in lines[2:]]
    except (ValueError, IndexError) as exc:
        raise CheckpointError(f"{path}: malformed ncnn .param ({exc})") from None
    if len(layers) != layer_count:
        raise CheckpointError(f"{path}: header says {layer_count} layers, found {len(layers)}")
    for layer in layers:
        if layer.type not in KNOWN_TYPES:
            raise CheckpointError(f"{path.name}: unsupported ncnn layer {layer.describe()}: this converter knows "
                                  f"RRDBNet (ESRGAN/Real-ESRGAN) and SRVGGNetCompact graphs built from "
                                  f"{', '.join(sorted(KNOWN_TYPES))}")
    return layers


def _parse_layer(tokens: list[str]) -> Layer:
    kind, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
    inputs, outputs = tokens[4:4 + n_in], tokens[4 + n_in:4 + n_in + n_out]
    params: dict[int, float | int | list] = {}
    for item in tokens[4 + n_in + n_out:]:
        key, _, value = item.partition("=")
        k = int(key)
        if k <= -23300:  # an array: -23300 - id = count,v1,v2...
            count, *values = value.split(",")
            params[-23300 - k] = [_number(v) for v in values[:int(count)]]
        else:
            params[k] = _number(value)
    return Layer(kind, name, inputs, outputs, params)


def _number(text: str) -> float | int:
    return float(text) if any(c in text for c in ".eE") else int(text)


def _read_bin(path: Path, layers: list[Layer]) -> str:
    data = path.read_bytes()
    reader = _Reader(data, path.name)
    for layer in layers:
        if layer.type == "Convolution":
            if layer.p(8):
                raise CheckpointError(f"{path.name}: {layer.describe()} is int8-quantized; only float32 and "
                                      "float16 weights are supported")
            layer.weights["weight"] = reader.tagged(int(layer.p(6)), layer)
            if layer.p(5):
                layer.weights["bias"] = reader.raw(int(layer.p(0)))
        elif layer.type == "PReLU":
            layer.weights["slope"] = reader.raw(int(layer.p(0, 1)))
    if reader.pos != len(data):
        raise CheckpointError(f"{path.name}: {len(data) - reader.pos} bytes left over after the weights the "
                              ".param describes (a .bin of another model?)")
    return "float16" if TAG_FP16 in reader.tags else "float32"


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data, self.name, self.pos, self.tags = data, name, 0, set()

    def _take(self, size: int, what: str) -> bytes:
        if self.pos + size > len(self.data):
            raise CheckpointError(f"{self.name}: ends early, in the weights of {what} (a .bin of another model?)")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def raw(self, count: int, what: str = "a bias") -> np.ndarray:
        return np.frombuffer(self._take(4 * count, what), "<f4").astype(np.float32)

    def tagged(self, count: int, layer: Layer) -> np.ndarray:
        (tag,) = struct.unpack("<I", self._take(4, layer.describe()))
        self.tags.add(tag)
        if tag == TAG_FP16:
            size = 2 * count
            return np.frombuffer(self._take(-(-size // 4) * 4, layer.describe())[:size], "<f2").astype(np.float32)
        if tag in (0, TAG_FP32_SCALED):
            return self.raw(count, layer.describe())
        kind = "int8" if tag == TAG_INT8 else f"quantized (tag 0x{tag:08X})"
        raise CheckpointError(f"{self.name}: {layer.describe()} stores {kind} weights; only float32 and float16 "
                              "are supported")


# --- recognition ------------------------------------------------------------------------------------

@dataclass
class Recognised:
    """The graph as a state dict in BasicSR / SRVGG naming (what ``layouts.detect`` reads), plus the pieces a
    state dict cannot hold: which ncnn layer became which tensor, and a final bicubic resize."""

    state: dict[str, np.ndarray]
    sources: dict[str, str]  # state prefix -> ncnn layer name
    net_output: str  # blob the network ends at (before a resize tail)
    resize: float | None = None  # e.g. 0.75: realesr-animevideov3-x3 runs the x4 network, then bicubic 3/4


def recognise(graph: Graph) -> Recognised:
    out = graph.output
    last = graph.producer(out)
    resize = None
    if last.type == "Interp" and last.p(0) in (2, 3) and float(last.p(1, 1.0)) < 1:
        if last.p(0) != 3 or last.p(1) != last.p(2) or last.p(3) or last.p(4):
            raise CheckpointError(f"ncnn graph ends in {last.describe()} ({INTERP_NAMES.get(last.p(0))}, scales "
                                  f"{last.p(1)}/{last.p(2)}); only a uniform bicubic downscale is supported there")
        resize, out = float(last.p(1)), last.inputs[0]
    convs = graph.of_type("Convolution")
    if not convs:
        raise CheckpointError("ncnn graph has no Convolution layers: not an ESRGAN-family network")
    for conv in convs:
        k, dil, stride = conv.p(1), conv.p(2, 1), conv.p(3, 1)
        if conv.p(11, k) != k or dil != 1 or conv.p(12, dil) != 1 or stride != 1 or conv.p(13, stride) != 1:
            raise CheckpointError(f"{conv.describe()}: only square, stride-1, undilated convolutions occur in "
                                  "RRDBNet/SRVGGNetCompact graphs")
    prelus = graph.of_type("PReLU")
    names = _srvgg_names(convs, prelus) if prelus else _rrdb_names(graph, convs)
    state, sources = {}, {}
    for prefix, layer in names:
        sources[prefix] = layer.name
        if layer.type == "PReLU":
            slope = layer.weights["slope"]
            channels = int(names[names.index((prefix, layer)) - 1][1].p(0))
            # one shared slope (some exporters write num_slope=1) is that slope on every channel
            state[f"{prefix}.weight"] = np.full(channels, slope[0], np.float32) if slope.size == 1 else slope
            continue
        o, k = int(layer.p(0)), int(layer.p(1))
        w = layer.weights["weight"]
        if w.size % (o * k * k):
            raise CheckpointError(f"{layer.describe()}: {w.size} weights do not fill {o} x in x {k} x {k}")
        state[f"{prefix}.weight"] = w.reshape(o, w.size // (o * k * k), k, k)
        if "bias" in layer.weights:
            state[f"{prefix}.bias"] = layer.weights["bias"]
    return Recognised(state, sources, out, resize)


def _srvgg_names(convs: list[Layer], prelus: list[Layer]) -> list[tuple[str, Layer]]:
    if len(prelus) != len(convs) - 1:
        raise CheckpointError(f"ncnn graph with PReLU: {len(convs)} convolutions and {len(prelus)} PReLUs; "
                              "SRVGGNetCompact has one PReLU after every convolution but the last")
    names = []
    for i, conv in enumerate(convs):
        names.append((f"body.{2 * i}", conv))
        if i < len(prelus):
            names.append((f"body.{2 * i + 1}", prelus[i]))
    return names


def _rrdb_names(graph: Graph, convs: list[Layer]) -> list[tuple[str, Layer]]:
    ups = [layer for layer in graph.of_type("Interp") if layer.p(0) == 1]
    stages = len(ups)
    if stages == 0 or any(float(u.p(1)) != 2 or float(u.p(2)) != 2 for u in ups):
        raise CheckpointError(f"ncnn graph without PReLU (so RRDBNet) needs nearest x2 Interp upsampling "
                              f"stages; found {', '.join(u.describe() for u in ups) or 'none'}")
    blocks, rest = divmod(len(convs) - 4 - stages, 15)  # first, 3 RDBs x 5 per block, body, ups, hr, last
    if blocks < 1 or rest:
        raise CheckpointError(f"ncnn graph: {len(convs)} convolutions with {stages} upsampling stages do not "
                              "make an RRDBNet (1 + 15 per block + 1 + stages + 2)")
    names = [("conv_first", convs[0])]
    it = iter(convs[1:])
    names += [(f"body.{i}.rdb{k}.conv{j}", next(it)) for i in range(blocks) for k in (1, 2, 3) for j in range(1, 6)]
    names.append(("conv_body", next(it)))
    names += [(f"conv_up{s}", next(it)) for s in range(1, stages + 1)]
    names += [("conv_hr", next(it)), ("conv_last", next(it))]
    return names
