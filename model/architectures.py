"""Generator architectures, one entry each: the Keras builder (training, TensorFlow inference, weight
layouts), the OpenVINO graph built from the same weights (CPU inference; ``model/openvino_graph.py``), and
what the engine needs to run it: how many bytes of activations one input pixel costs at the widest point
(tile sizing) and the multiple the input's sides must have (pixel-unshuffle). Imports no framework: each
builder imports its own when called, so the engine's OpenVINO path and ``esrgan models`` read the table
without TensorFlow.

A new architecture is one entry here (and its builders); ``tests/test_architectures.py`` builds every
entry's runtimes from the same weights and compares their outputs. The PyTorch twins (RRDBNet, SRVGGNetCompact:
``training.torch_archs``, whose tensor names ``esrgan convert`` reads) are imported only when built.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Params = dict[str, Any]


@dataclass(frozen=True)
class Architecture:
    name: str
    keras: Callable[..., Any]  # (**params) -> keras.Model
    openvino: Callable[..., Any] | None  # (x NCHW ov.Node, weights, **params) -> ov.Node; None: TensorFlow only
    torch: Callable[..., Any] | None  # (**params) -> torch.nn.Module in the layout ``esrgan convert`` reads
    widest: Callable[[Params, int], float]  # (params, network scale) -> float32 activations per input pixel
    multiple: Callable[[Params], int] = lambda params: 1  # the input's sides are padded to this

    def activation_bytes(self, params: Params, net_scale: int) -> float:
        """Bytes of the widest activations per input pixel: what bounds a tile's side."""
        return 4 * self.widest(params, net_scale)


def _conv_net(feat: int, dense: int, body_factor: int, net_scale: int) -> float:
    """The widest tensors: the (dense) concatenations in the body, ~6 alive at once, at the body's
    resolution (``body_factor`` fewer pixels when the input is unshuffled), and the upsampled features."""
    return max(6 * dense / body_factor, 3 * feat * net_scale**2)


def _rrdbnet_keras(**params):
    from .archs.rrdbnet import build_rrdbnet

    return build_rrdbnet(**params)


def _rrdbnet_openvino(x, weights, **params):
    from .openvino_graph import rrdbnet

    return rrdbnet(x, weights, **params)


def _rrdbnet_torch(**params):
    from training.torch_archs import RRDBNet  # PyTorch's RRDBNet pixel-unshuffles x2 unless told otherwise

    return RRDBNet(**{"pixel_unshuffle": False, **params})


def _rrdbnet_widest(p: Params, net_scale: int) -> float:
    feat = p.get("num_feat", 64)
    return _conv_net(feat, feat + 4 * p.get("num_grow_ch", 0), 4 if p.get("pixel_unshuffle") else 1, net_scale)


def _srresnet_keras(**params):
    from .archs.srresnet import build_srresnet

    return build_srresnet(**params)


def _srvgg_keras(**params):
    from .archs.srvgg import build_srvgg

    return build_srvgg(**params)


def _srvgg_openvino(x, weights, **params):
    from .openvino_graph import srvgg

    return srvgg(x, weights, **params)


def _srvgg_torch(**params):
    from training.torch_archs import SRVGGNetCompact

    return SRVGGNetCompact(**params)


def _plain_widest(p: Params, net_scale: int) -> float:
    feat = p.get("num_feat", 64)
    return _conv_net(feat, feat, 1, net_scale)


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("rrdbnet", _rrdbnet_keras, _rrdbnet_openvino, _rrdbnet_torch, _rrdbnet_widest,
                 multiple=lambda p: 2 if p.get("pixel_unshuffle") else 1),
    Architecture("srresnet", _srresnet_keras, None, None, _plain_widest),
    Architecture("srvgg", _srvgg_keras, _srvgg_openvino, _srvgg_torch, _plain_widest),
)}


def architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}") from None


def openvino_archs() -> tuple[str, ...]:
    """The architectures that have an OpenVINO graph."""
    return tuple(name for name, a in ARCHITECTURES.items() if a.openvino is not None)
