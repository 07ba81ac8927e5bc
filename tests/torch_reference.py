"""Reference PyTorch generators written after the published code, one per checkpoint naming, so the
tests can save random weights exactly as the official files name them and compare outputs.

* ``OldESRGAN``      ESRGAN's original architecture.py: one nn.Sequential ``model`` (model.0, model.1.sub...).
* ``RRDBNet``        BasicSR/Real-ESRGAN's rrdbnet_arch.py; ``names=ESRGAN_NAMES`` gives the ESRGAN
                     repository's later RRDBNet_arch.py (RRDB_trunk, trunk_conv, upconv1, HRconv).
* ``SRVGGNetCompact`` Real-ESRGAN's srvgg_arch.py (PReLU variant).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

BASICSR_NAMES = dict(body="body", rdb="rdb", conv_body="conv_body", up="conv_up", conv_hr="conv_hr")
ESRGAN_NAMES = dict(body="RRDB_trunk", rdb="RDB", conv_body="trunk_conv", up="upconv", conv_hr="HRconv")


def conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1)


class DenseBlock(nn.Module):
    """ResidualDenseBlock_5C. ``wrapped``: each conv sits in an nn.Sequential (conv, act) as in the
    original code, so its weight is named ``convJ.0.weight``."""

    def __init__(self, nf: int, gc: int, wrapped: bool = False):
        super().__init__()
        for j in range(1, 6):
            c = conv(nf + (j - 1) * gc, gc if j < 5 else nf)
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
    def __init__(self, nf: int, gc: int, rdb: str = "rdb", wrapped: bool = False):
        super().__init__()
        self.rdbs = [f"{rdb}{k}" for k in (1, 2, 3)]
        for name in self.rdbs:
            setattr(self, name, DenseBlock(nf, gc, wrapped))

    def forward(self, x):
        out = x
        for name in self.rdbs:
            out = getattr(self, name)(out)
        return out * 0.2 + x


class RRDBNet(nn.Module):
    """x4, or x2/x1 with a pixel-unshuffled input (Real-ESRGAN): two x2 upsampling stages either way.
    ``unshuffle=False`` at x2 gives one upsampling stage instead (training/torch_psnr.py's x2)."""

    def __init__(self, scale: int = 4, nb: int = 2, nf: int = 16, gc: int = 8, names: dict = BASICSR_NAMES,
                 unshuffle: bool = True):
        super().__init__()
        self.unshuffle = {4: 1, 2: 2, 1: 4}[scale] if unshuffle else 1
        self.stages = 2 if unshuffle else scale // 2
        self.names = names
        self.conv_first = conv(3 * self.unshuffle**2, nf)
        setattr(self, names["body"], nn.Sequential(*[RRDB(nf, gc, names["rdb"]) for _ in range(nb)]))
        setattr(self, names["conv_body"], conv(nf, nf))
        for s in range(1, self.stages + 1):
            setattr(self, f"{names['up']}{s}", conv(nf, nf))
        setattr(self, names["conv_hr"], conv(nf, nf))
        self.conv_last = conv(nf, 3)

    def forward(self, x):
        n = self.names
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + getattr(self, n["conv_body"])(getattr(self, n["body"])(feat))
        for s in range(1, self.stages + 1):
            feat = F.leaky_relu(getattr(self, f"{n['up']}{s}")(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(getattr(self, n["conv_hr"])(feat), 0.2))


class ShortcutBlock(nn.Module):
    def __init__(self, sub: nn.Module):
        super().__init__()
        self.sub = sub

    def forward(self, x):
        return x + self.sub(x)


class OldESRGAN(nn.Module):
    def __init__(self, scale: int = 4, nb: int = 2, nf: int = 16, gc: int = 8):
        super().__init__()
        ups = []
        for _ in range(int(math.log2(scale))):
            ups += [nn.Upsample(scale_factor=2, mode="nearest"), conv(nf, nf), nn.LeakyReLU(0.2)]
        trunk = nn.Sequential(*[RRDB(nf, gc, "RDB", wrapped=True) for _ in range(nb)], conv(nf, nf))
        self.model = nn.Sequential(conv(3, nf), ShortcutBlock(trunk), *ups,
                                   conv(nf, nf), nn.LeakyReLU(0.2), conv(nf, 3))

    def forward(self, x):
        return self.model(x)


class SRVGGNetCompact(nn.Module):
    def __init__(self, scale: int = 4, nf: int = 16, nc: int = 3):
        super().__init__()
        self.scale = scale
        layers = [conv(3, nf), nn.PReLU(nf)]
        for _ in range(nc):
            layers += [conv(nf, nf), nn.PReLU(nf)]
        layers.append(conv(nf, 3 * scale * scale))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(scale)
        for m in self.body:  # PReLU starts at 0.25 everywhere: randomise so channel order is tested
            if isinstance(m, nn.PReLU):
                nn.init.uniform_(m.weight, 0.0, 0.5)

    def forward(self, x):
        out = x
        for m in self.body:
            out = m(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.scale, mode="nearest")
