"""The PyTorch generators. RRDBNet, written after BasicSR/Real-ESRGAN's rrdbnet_arch.py: the one definition that the
PyTorch trainer (``esrgan train --backend torch``), the converter tests and ``bench/bench_torch.py`` use, so
a checkpoint it saves has exactly the tensor names ``esrgan convert`` reads (``model/convert/layouts.py``).

* ``names=BASICSR_NAMES`` (default): ``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``, ``conv_upS``,
  ``conv_hr``, ``conv_last``; ``names=ESRGAN_NAMES``: the ESRGAN repository's later RRDBNet_arch.py
  (``RRDB_trunk``, ``RDB``, ``trunk_conv``, ``upconv``, ``HRconv``).
* ``pixel_unshuffle=True`` (default): Real-ESRGAN's x2/x1, which pixel-unshuffle the input and then
  upsample twice, like x4. ``pixel_unshuffle=False`` at x2: one x2 upsampling stage on the plain input
  (what the torch backend trains, and what the shipped ``esrgan-psnr-x2`` came from).

SRVGGNetCompact, after Real-ESRGAN's srvgg_arch.py (PReLU variant): ``body.0`` conv, ``body.1`` PReLU, ...,
the last conv to ``3 * scale**2`` channels, pixel shuffle, plus the nearest-upsampled input.

Imports torch only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BASICSR_NAMES = dict(body="body", rdb="rdb", conv_body="conv_body", up="conv_up", conv_hr="conv_hr")
ESRGAN_NAMES = dict(body="RRDB_trunk", rdb="RDB", conv_body="trunk_conv", up="upconv", conv_hr="HRconv")


def conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1)


class DenseBlock(nn.Module):
    """ResidualDenseBlock_5C. ``wrapped``: each conv sits in an nn.Sequential (conv, act) as in ESRGAN's
    original architecture.py, so its weight is named ``convJ.0.weight``."""

    def __init__(self, num_feat: int, num_grow_ch: int, wrapped: bool = False):
        super().__init__()
        for j in range(1, 6):
            c = conv(num_feat + (j - 1) * num_grow_ch, num_grow_ch if j < 5 else num_feat)
            act = [nn.LeakyReLU(0.2)] if j < 5 else []
            setattr(self, f"conv{j}", nn.Sequential(c, *act) if wrapped else c)
        self.wrapped = wrapped

    def forward(self, x):
        feats = [x]
        for j in range(1, 5):
            y = getattr(self, f"conv{j}")(torch.cat(feats, 1))
            feats.append(y if self.wrapped else F.leaky_relu(y, 0.2))
        return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
    """Three dense blocks named ``{rdb}1..3`` with a scaled residual around them."""

    def __init__(self, num_feat: int, num_grow_ch: int, rdb: str = "rdb", wrapped: bool = False):
        super().__init__()
        self.rdbs = [f"{rdb}{k}" for k in (1, 2, 3)]
        for name in self.rdbs:
            setattr(self, name, DenseBlock(num_feat, num_grow_ch, wrapped))

    def forward(self, x):
        out = x
        for name in self.rdbs:
            out = getattr(self, name)(out)
        return out * 0.2 + x


class RRDBNet(nn.Module):
    """x4; x2/x1 with a pixel-unshuffled input and two x2 stages (Real-ESRGAN), or, with
    ``pixel_unshuffle=False`` at x2, one upsampling stage. Sizes are named as in the artifact manifest's
    params (``num_block``, ``num_feat``, ``num_grow_ch``); the defaults are the ESRGAN paper's."""

    def __init__(self, scale: int = 4, num_block: int = 23, num_feat: int = 64, num_grow_ch: int = 32,
                 names: dict = BASICSR_NAMES, pixel_unshuffle: bool = True):
        super().__init__()
        if scale not in (1, 2, 4) or (scale == 1 and not pixel_unshuffle):
            raise ValueError(f"RRDBNet: scale {scale} is not x4, x2 or (pixel-unshuffled) x1")
        self.scale = scale
        self.unshuffle = {4: 1, 2: 2, 1: 4}[scale] if pixel_unshuffle else 1
        self.stages = 2 if pixel_unshuffle else scale // 2
        self.names = names
        self.conv_first = conv(3 * self.unshuffle**2, num_feat)
        setattr(self, names["body"], nn.Sequential(*[RRDB(num_feat, num_grow_ch, names["rdb"]) for _ in range(num_block)]))
        setattr(self, names["conv_body"], conv(num_feat, num_feat))
        for s in range(1, self.stages + 1):
            setattr(self, f"{names['up']}{s}", conv(num_feat, num_feat))
        setattr(self, names["conv_hr"], conv(num_feat, num_feat))
        self.conv_last = conv(num_feat, 3)

    def forward(self, x):
        n = self.names
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + getattr(self, n["conv_body"])(getattr(self, n["body"])(feat))
        for s in range(1, self.stages + 1):
            feat = F.leaky_relu(getattr(self, f"{n['up']}{s}")(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(getattr(self, n["conv_hr"])(feat), 0.2))


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact generator; sizes named as in the artifact manifest (``num_feat``, ``num_conv``)."""

    def __init__(self, scale: int = 4, num_feat: int = 64, num_conv: int = 16):
        super().__init__()
        self.scale = scale
        layers: list[nn.Module] = [conv(3, num_feat), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [conv(num_feat, num_feat), nn.PReLU(num_feat)]
        layers.append(conv(num_feat, 3 * scale * scale))
        self.body = nn.ModuleList(layers)

    def forward(self, x):
        out = x
        for layer in self.body:
            out = layer(out)
        return F.pixel_shuffle(out, self.scale) + F.interpolate(x, scale_factor=self.scale, mode="nearest")
