"""Reference PyTorch generators for the checkpoint namings only the converter tests need, written after
the published code, so the tests can save random weights exactly as the official files name them and
compare outputs. The RRDBNet (BasicSR and later-ESRGAN naming) is ``training.torch_archs.RRDBNet``.

* ``OldESRGAN``       ESRGAN's original architecture.py: one nn.Sequential ``model`` (model.0, model.1.sub...).
* ``SRVGGNetCompact`` Real-ESRGAN's srvgg_arch.py (PReLU variant).
"""
import math

import torch.nn.functional as F
from torch import nn

from training.torch_archs import RRDB, conv


class ShortcutBlock(nn.Module):
    def __init__(self, sub: nn.Module):
        super().__init__()
        self.sub = sub

    def forward(self, x):
        return x + self.sub(x)


class OldESRGAN(nn.Module):
    def __init__(self, scale: int = 4, num_block: int = 2, num_feat: int = 16, num_grow_ch: int = 8):
        super().__init__()
        nf = num_feat
        ups = []
        for _ in range(int(math.log2(scale))):
            ups += [nn.Upsample(scale_factor=2, mode="nearest"), conv(nf, nf), nn.LeakyReLU(0.2)]
        trunk = nn.Sequential(*[RRDB(nf, num_grow_ch, "RDB", wrapped=True) for _ in range(num_block)], conv(nf, nf))
        self.model = nn.Sequential(conv(3, nf), ShortcutBlock(trunk), *ups,
                                   conv(nf, nf), nn.LeakyReLU(0.2), conv(nf, 3))

    def forward(self, x):
        return self.model(x)


class SRVGGNetCompact(nn.Module):
    def __init__(self, scale: int = 4, num_feat: int = 16, num_conv: int = 3):
        super().__init__()
        self.scale = scale
        layers = [conv(3, num_feat), nn.PReLU(num_feat)]
        for _ in range(num_conv):
            layers += [conv(num_feat, num_feat), nn.PReLU(num_feat)]
        layers.append(conv(num_feat, 3 * scale * scale))
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
