"""The adversary of a torch distillation (``esrgan train --backend torch --teacher MODEL --adversarial-weight W``):
the discriminators of ``model.archs.discriminator`` in PyTorch, the adversarial losses of ``training.losses``,
and ``Critic``, a discriminator with its own Adam that ``torch_train.fit`` steps after the student.
Imports neither TensorFlow nor pydantic (the torch backend's rule).

    vgg:  ESRGAN's VGG-style patch discriminator (BatchNorm, one logit per patch), relativistic average GAN
    unet: Real-ESRGAN's U-Net discriminator (spectral norm, a logit per pixel), vanilla GAN
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .config import TrainConfig


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2)


class VGGDiscriminator(nn.Module):
    """``build_discriminator``: five stages of a 3x3 conv then a 4x4 stride-2 conv (BatchNorm + LeakyReLU after
    each, none after the very first conv), filters doubling up to 8x ``num_feat``; a dense head 100 -> 1.
    BatchNorm with Keras's epsilon and momentum."""

    def __init__(self, patch_size: int = 128, num_feat: int = 64):
        super().__init__()
        if patch_size % 32 != 0:
            raise ValueError(f"discriminator patch size must be a multiple of 32, got {patch_size}")
        layers: list[nn.Module] = [nn.Conv2d(3, num_feat, 3, padding=1), _lrelu()]
        cin = num_feat
        for stage, f in enumerate([num_feat, num_feat * 2, num_feat * 4, num_feat * 8, num_feat * 8]):
            if stage > 0:
                layers += [nn.Conv2d(cin, f, 3, padding=1, bias=False), nn.BatchNorm2d(f, 1e-3, 0.01), _lrelu()]
            layers += [nn.Conv2d(f, f, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(f, 1e-3, 0.01), _lrelu()]
            cin = f
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(cin * (patch_size // 32) ** 2, 100), _lrelu(),
                                  nn.Linear(100, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class UNetDiscriminator(nn.Module):
    """``build_unet_discriminator`` (Real-ESRGAN's ``UNetDiscriminatorSN``): down by three 4x4 stride-2 convs,
    up by bilinear x2 + 3x3 conv with skip additions, two more 3x3 convs and a 1-channel head; spectral norm on
    all but the first and last conv. Any input size divisible by 8."""

    def __init__(self, num_feat: int = 64):
        super().__init__()

        def sn(cin, cout, kernel=3, stride=1):
            return spectral_norm(nn.Conv2d(cin, cout, kernel, stride, padding=1, bias=False))

        f = num_feat
        self.conv0 = nn.Conv2d(3, f, 3, padding=1)
        self.down = nn.ModuleList([sn(f, 2 * f, 4, 2), sn(2 * f, 4 * f, 4, 2), sn(4 * f, 8 * f, 4, 2)])
        self.up = nn.ModuleList([sn(8 * f, 4 * f), sn(4 * f, 2 * f), sn(2 * f, f)])
        self.tail = nn.Sequential(sn(f, f), _lrelu(), sn(f, f), _lrelu(), nn.Conv2d(f, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [F.leaky_relu(self.conv0(x), 0.2)]
        for conv in self.down:
            skips.append(F.leaky_relu(conv(skips[-1]), 0.2))
        x = skips.pop()
        for conv in self.up:
            x = F.leaky_relu(conv(F.interpolate(x, scale_factor=2, mode="bilinear")), 0.2) + skips.pop()
        return self.tail(x)


def build(kind: str, patch_size: int, num_feat: int) -> nn.Module:
    """The discriminator named by ``--discriminator``: ``vgg`` (one logit per patch) or ``unet`` (per pixel)."""
    return UNetDiscriminator(num_feat) if kind == "unet" else VGGDiscriminator(patch_size, num_feat)


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def adversarial(kind: str, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(generator loss, discriminator loss) of ``losses.adversarial``: vanilla GAN for ``unet``, relativistic
    average GAN otherwise, the same gradients held back."""
    if kind == "unet":
        return _bce(fake, 1.0), _bce(real, 1.0) + _bce(fake, 0.0)
    g_real = real.detach()
    generator = 0.5 * (_bce(g_real - fake.mean(), 0.0) + _bce(fake - g_real.mean(), 1.0))
    critic = 0.5 * (_bce(real - fake.detach().mean(), 1.0) + _bce(fake - real.detach().mean(), 0.0))
    return generator, critic


class Critic:
    """A discriminator that learns the teacher's outputs as real and the student's as fake, with its own Adam
    (``d_lr``, the run's betas; ``step`` takes the learning rate of the run's schedule). From the
    ``discriminator`` entry of a ``--init`` checkpoint when that has one of this shape."""

    def __init__(self, cfg: TrainConfig, device, log=None):
        self.kind = cfg.discriminator
        self.net = build(cfg.discriminator, cfg.hr_crop, cfg.d_num_feat).to(device)
        saved = _saved_state(cfg, device)
        if saved is not None and _same_shapes(saved, self.net.state_dict()):
            self.net.load_state_dict(saved)
            print(f"discriminator from {cfg.init}", file=log, flush=True)
        elif saved is not None:
            print(f"{cfg.init}: its discriminator is not a {cfg.discriminator} of this size; a fresh one",
                  file=log, flush=True)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=cfg.d_lr, betas=(cfg.beta1, cfg.beta2))

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """The student's adversarial loss (``fake``: its output, ``real``: the teacher's), which trains no critic."""
        self.net.requires_grad_(False)
        try:
            return adversarial(self.kind, self.net(real).detach(), self.net(fake))[0]
        finally:
            self.net.requires_grad_(True)

    def step(self, real: torch.Tensor, fake: torch.Tensor, lr: float) -> torch.Tensor:
        """One Adam step of the discriminator on the student's detached output; returns its loss."""
        loss = adversarial(self.kind, self.net(real), self.net(fake.detach()))[1]
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


def _saved_state(cfg: TrainConfig, device) -> dict | None:
    if not cfg.init or not Path(cfg.init).is_file():
        return None
    return torch.load(cfg.init, map_location=device, weights_only=True).get("discriminator")


def _same_shapes(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
