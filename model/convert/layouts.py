"""Which network a checkpoint holds, read from its tensor names and shapes, and how its tensors map
onto this library's Keras layers.

Four layouts are known:

* ``basicsr``    BasicSR / Real-ESRGAN RRDBNet: ``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``,
                 ``conv_up1/2``, ``conv_hr``, ``conv_last``; x2 and x1 models pixel-unshuffle the input,
                 which shows as 12 (or 48) input channels of ``conv_first``.
* ``esrgan``     the ESRGAN repository's later RRDBNet_arch.py: ``RRDB_trunk.N.RDBK.convJ``,
                 ``trunk_conv``, ``upconvS``, ``HRconv``.
* ``esrgan-old`` the ESRGAN repository's original architecture.py (RRDB_ESRGAN_x4.pth, RRDB_PSNR_x4.pth):
                 one ``nn.Sequential`` called ``model``: ``model.0`` first conv, ``model.1.sub.N.RDBK.convJ.0``
                 blocks, ``model.1.sub.<blocks>`` trunk conv, then (upsample, conv, lrelu) per x2 stage, the
                 HR conv and the last conv.
* ``srvgg``      Real-ESRGAN's SRVGGNetCompact: ``body.0`` conv, ``body.1`` PReLU, ..., last conv.

Detection only decides the layout and its sizes; whether every tensor is there with the right shape is
then checked against the Keras model itself (``to_keras``), so the two cannot disagree.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .checkpoint import CheckpointError

# Keras RRDBNet layer name -> checkpoint name, per layout. ``{i}``/``{k}``/``{j}``: block, dense block,
# conv; ``{s}``: upsampling stage. The old layout numbers its Sequential: see ``_old_positions``.
RRDB_NAMES: dict[str, dict[str, str]] = {
    "basicsr": dict(conv_first="conv_first", block="body.{i}.rdb{k}.conv{j}", conv_body="conv_body",
                    up="conv_up{s}", conv_hr="conv_hr", conv_last="conv_last"),
    "esrgan": dict(conv_first="conv_first", block="RRDB_trunk.{i}.RDB{k}.conv{j}", conv_body="trunk_conv",
                   up="upconv{s}", conv_hr="HRconv", conv_last="conv_last"),
    "esrgan-old": dict(conv_first="model.0", block="model.1.sub.{i}.RDB{k}.conv{j}.0",
                       conv_body="model.1.sub.{blocks}", up="model.{up_pos}", conv_hr="model.{hr_pos}",
                       conv_last="model.{last_pos}"),
}
TITLES = {"basicsr": "BasicSR/Real-ESRGAN RRDBNet", "esrgan": "ESRGAN RRDBNet (RRDB_trunk naming)",
          "esrgan-old": "ESRGAN original architecture (model.N naming)", "srvgg": "Real-ESRGAN SRVGGNetCompact"}


@dataclass(frozen=True)
class Layout:
    kind: str  # a key of TITLES
    arch: str  # the library architecture it converts to
    params: dict[str, Any]
    scale: int
    checkpoint_name: Callable[[str], str]  # Keras layer name -> checkpoint tensor prefix
    # Layers whose input / output channels meet a pixel (un)shuffle, by factor: PyTorch orders those
    # channels (c, dy, dx), TensorFlow's space_to_depth / depth_to_space (dy, dx, c).
    unshuffled_input: dict[str, int] = field(default_factory=dict)
    shuffled_output: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        p = self.params
        if self.arch == "srvgg":
            size = f"{p['num_conv']} convs, {p['num_feat']} features"
        else:
            size = f"{p['num_block']} blocks, {p['num_feat']} features, growth {p['num_grow_ch']}"
        unshuffle = ", pixel-unshuffle input" if p.get("pixel_unshuffle") else ""
        return f"{TITLES[self.kind]}, {size}, x{self.scale}{unshuffle}"


def detect(state: dict[str, np.ndarray]) -> Layout:
    for kind in RRDB_NAMES:
        if _has(state, _rrdb_name(kind, "conv_first")) and _has(state, _block(kind, 0)):
            return _detect_rrdb(state, kind)
    if _has(state, "body.0") and state["body.0.weight"].ndim == 4:
        return _detect_srvgg(state)
    sample = ", ".join(sorted(state)[:6])
    raise CheckpointError(
        f"unknown checkpoint layout: found none of conv_first + body.0.rdb1.conv1 (BasicSR/Real-ESRGAN), "
        f"conv_first + RRDB_trunk.0.RDB1.conv1 (ESRGAN), model.0 + model.1.sub.0.RDB1.conv1.0 (original "
        f"ESRGAN) or body.0 conv + body.1 PReLU (SRVGGNetCompact); its tensors start {sample}"
        f"{' ...' if len(state) > 6 else ''} ({len(state)} tensors)")


def _has(state, prefix: str) -> bool:
    return f"{prefix}.weight" in state


def _rrdb_name(kind: str, key: str, **pos) -> str:
    return RRDB_NAMES[kind][key].format(**pos)


def _block(kind: str, i: int) -> str:
    return _rrdb_name(kind, "block", i=i, k=1, j=1)


def _old_positions(blocks: int, stages: int) -> dict[str, int]:
    # model.0 conv, model.1 shortcut(trunk), then per stage (upsample, conv, lrelu), HR conv, lrelu, last conv
    return dict(blocks=blocks, hr_pos=3 * stages + 2, last_pos=3 * stages + 4)


def _detect_rrdb(state, kind: str) -> Layout:
    first = state[_rrdb_name(kind, "conv_first") + ".weight"]
    grow = state[_block(kind, 0) + ".weight"]
    blocks = 0
    while _has(state, _block(kind, blocks)):
        blocks += 1
    stages = 0
    while _has(state, _rrdb_name(kind, "up", s=stages + 1, up_pos=3 * (stages + 1))):
        stages += 1
    if first.ndim != 4 or grow.ndim != 4:
        raise CheckpointError(f"{TITLES[kind]}: conv_first / first dense conv are not 4-D conv weights "
                              f"(shapes {first.shape}, {grow.shape})")
    num_feat, in_ch = int(first.shape[0]), int(first.shape[1])
    if stages == 0:
        raise CheckpointError(f"{TITLES[kind]}: no upsampling conv found "
                              f"({_rrdb_name(kind, 'up', s=1, up_pos=3)}.weight missing)")
    unshuffle = 1
    if kind == "basicsr" and in_ch in (12, 48):  # Real-ESRGAN x2 / x1: pixel-unshuffled input, two x2 stages
        unshuffle = int(math.isqrt(in_ch // 3))
    elif in_ch != 3:
        raise CheckpointError(f"{TITLES[kind]}: conv_first takes {in_ch} input channels; "
                              "only RGB models (3, or 12 for Real-ESRGAN x2) are supported")
    scale = 2 ** stages // unshuffle
    if scale not in (2, 4) or (unshuffle > 1 and scale != 2):
        raise CheckpointError(f"{TITLES[kind]}: a x{scale} model ({stages} upsampling stages, input "
                              f"unshuffle {unshuffle}); this library runs RRDBNet at x2 and x4 only")
    params = dict(scale=scale, num_block=blocks, num_feat=num_feat, num_grow_ch=int(grow.shape[0]))
    if unshuffle > 1:
        params["pixel_unshuffle"] = True
    pos = _old_positions(blocks, stages)

    def checkpoint_name(layer: str) -> str:
        if m := re.fullmatch(r"body_(\d+)_rdb(\d)_conv(\d)", layer):
            return _rrdb_name(kind, "block", i=m[1], k=m[2], j=m[3])
        if m := re.fullmatch(r"conv_up(\d)", layer):
            return _rrdb_name(kind, "up", s=m[1], up_pos=3 * int(m[1]))
        return _rrdb_name(kind, layer, **pos)

    return Layout(kind, "rrdbnet", params, scale, checkpoint_name,
                  unshuffled_input={"conv_first": unshuffle} if unshuffle > 1 else {})


def _detect_srvgg(state) -> Layout:
    convs = 0
    while f"body.{2 * convs}.weight" in state and state[f"body.{2 * convs}.weight"].ndim == 4:
        convs += 1
    if "body.1.weight" not in state or state["body.1.weight"].ndim != 1:
        raise CheckpointError(f"{TITLES['srvgg']}: body.1 is not a per-channel PReLU; only the PReLU variant "
                              "(as in realesr-general-x4v3 and realesr-animevideov3) is supported")
    if convs < 2:
        raise CheckpointError(f"{TITLES['srvgg']}: needs at least a first and a last conv, found {convs}")
    last = state[f"body.{2 * (convs - 1)}.weight"]
    num_feat = int(state["body.0.weight"].shape[0])
    in_ch = int(state["body.0.weight"].shape[1])
    scale = math.isqrt(int(last.shape[0]) // 3)
    if in_ch != 3 or 3 * scale * scale != last.shape[0]:
        raise CheckpointError(f"{TITLES['srvgg']}: first conv takes {in_ch} channels and the last gives "
                              f"{last.shape[0]}; expected 3 in and 3*scale^2 out (RGB)")
    params = dict(scale=scale, num_feat=num_feat, num_conv=convs - 2)
    return Layout("srvgg", "srvgg", params, scale, lambda layer: layer.replace("_", "."),
                  shuffled_output={f"body_{2 * (convs - 1)}": scale})


# --- mapping ---------------------------------------------------------------------------------------

def to_keras(state: dict[str, np.ndarray], layout: Layout) -> dict[str, np.ndarray]:
    """The checkpoint's tensors as the Keras model's ``layer/variable`` weights. Every tensor the
    architecture needs must be there with its shape, and nothing else."""
    from ..archs import build_generator

    model = build_generator(layout.arch, layout.params)
    weights, missing, misshapen, used = {}, [], [], set()
    for layer in model.layers:
        for var in layer.weights:
            name = f"{layout.checkpoint_name(layer.name)}.{'bias' if var.name == 'bias' else 'weight'}"
            want = _torch_shape(var.name, tuple(var.shape))
            if name not in state:
                missing.append(f"{name} {list(want)}")
                continue
            used.add(name)
            tensor = state[name]
            if tensor.shape != want:
                misshapen.append(f"{name} is {list(tensor.shape)}, expected {list(want)}")
                continue
            weights[f"{layer.name}/{var.name}"] = _to_keras(var.name, tensor, layout.unshuffled_input.get(layer.name),
                                                            layout.shuffled_output.get(layer.name))
    unexpected = sorted(set(state) - used)
    if missing or misshapen or unexpected:
        raise CheckpointError(
            f"checkpoint looks like {layout.describe()}, but its tensors do not match that network: "
            + "; ".join(f"{label} {len(items)}: {', '.join(items[:4])}{' ...' if len(items) > 4 else ''}"
                        for label, items in (("missing", missing), ("wrong shape", misshapen),
                                             ("unexpected", unexpected)) if items))
    return weights


def from_keras(weights: dict[str, np.ndarray], layout: Layout) -> dict[str, np.ndarray]:
    """The inverse of ``to_keras``: an artifact's ``layer/variable`` weights as the layout's checkpoint tensors
    (so a PyTorch run can start from an artifact). Pixel-unshuffled inputs are refused."""
    if layout.unshuffled_input:
        raise CheckpointError(f"{layout.describe()}: channel-shuffled inputs cannot be exported to a checkpoint")
    state = {}
    for key, t in weights.items():
        layer, var = key.split("/")
        name = f"{layout.checkpoint_name(layer)}.{'bias' if var == 'bias' else 'weight'}"
        t = t.transpose(3, 2, 0, 1) if var == "kernel" else t.reshape(-1) if var == "alpha" else t
        if r := layout.shuffled_output.get(layer):  # (dy*r + dx)*C + c (TensorFlow) -> c*r*r + dy*r + dx (PyTorch)
            t = t.reshape(r, r, -1, *t.shape[1:]).swapaxes(1, 2).swapaxes(0, 1).reshape(t.shape)
        state[name] = t
    return state


def _torch_shape(var: str, keras_shape: tuple[int, ...]) -> tuple[int, ...]:
    if var == "kernel":  # Keras HWIO, PyTorch OIHW
        h, w, i, o = keras_shape
        return (o, i, h, w)
    if var == "alpha":  # PReLU: Keras (1, 1, C), PyTorch (C,)
        return (keras_shape[-1],)
    return keras_shape


def _to_keras(var: str, t: np.ndarray, in_factor: int | None, out_factor: int | None) -> np.ndarray:
    if out_factor:  # output channel c*r*r + dy*r + dx (PyTorch) -> (dy*r + dx)*C + c (TensorFlow)
        r = out_factor
        t = t.reshape(-1, r, r, *t.shape[1:]).swapaxes(0, 1).swapaxes(1, 2).reshape(t.shape)
    if in_factor and var == "kernel":  # the same reordering on the input channels
        r = in_factor
        o, i, h, w = t.shape
        t = t.reshape(o, i // (r * r), r, r, h, w).transpose(0, 2, 3, 1, 4, 5).reshape(t.shape)
    if var == "kernel":
        t = t.transpose(2, 3, 1, 0)
    elif var == "alpha":
        t = t.reshape(1, 1, -1)
    return np.ascontiguousarray(t, dtype=np.float32)
