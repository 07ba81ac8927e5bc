"""Distillation on the torch backend (``esrgan train --backend torch --teacher MODEL``): the recipe of
``training.distill`` for lent GPU machines that carry PyTorch but not TensorFlow or OpenVINO.

The teacher is an ncnn model (a ``.param`` beside its ``.bin``, or an official model's name when the package
that ships it is installed), read by the converter's own parser (``model.convert.ncnn``: nothing in the files
runs) into the registry's PyTorch network. It fills the same cache as the tf backend (``training.teacher``,
keyed by the teacher's name: a cache filled on a GPU trains a student on a CPU and back); batches come from
``training.pairs``. Loss: L1 to the teacher + ``hf_weight`` x high-pass L1 + ``perceptual_weight`` x random-conv
feature L1 [+ ``energy_weight`` x texture-energy L1] [+ ``gt_weight`` x L1 to the original] [+ ``grid_weight`` x
sub-pixel grid L1] [+ ``overshoot_weight`` x overshoot L1] [+ ``chroma_weight`` x chroma L1] (``training.losses``'
terms, NCHW) [+ ``adversarial_weight`` x the adversarial loss of a discriminator that learns the teacher's output
as real and the student's as fake: ``training.torch_critic``]; the loop, EMA and checkpoint are
``training.torch_train``'s.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from model.architectures import architecture

from .config import CHROMA_ROWS, ENERGY_SIGMA, GRID_SIGMA, HIGH_PASS_SIGMA, OVERSHOOT_WINDOW, TrainConfig
from .pairs import Pairs
from .teacher import fill_to, open_cache

REFRESH_EVERY = 100  # steps between looks for pairs a concurrent fill has added


class TorchTeacher:
    """What ``TeacherCache.fill`` runs: ``scale`` and a ``runner`` taking and giving NHWC float32."""

    def __init__(self, module: torch.nn.Module, scale: int, device):
        self.module, self.scale, self.device = module.to(device).eval(), scale, device

    @torch.no_grad()
    def runner(self, x: np.ndarray) -> np.ndarray:
        y = self.module(torch.from_numpy(x).permute(0, 3, 1, 2).to(self.device))
        return y.permute(0, 2, 3, 1).float().cpu().numpy()


def teacher_param(teacher: str) -> tuple[Path, str]:
    """The teacher's ``.param`` and its name (its cache's key: the official name, as the tf backend's cache has
    it, or the file's stem)."""
    path = Path(teacher)
    if path.suffix == ".param":
        if not path.is_file():
            raise ValueError(f"{teacher}: no such ncnn model")
        return path, path.stem
    from model import official

    entry = official.BY_NAME.get(teacher)
    found = official.locate(entry) if entry else None
    if found is None:
        raise ValueError(f"--teacher {teacher}: the torch backend reads an ncnn .param file, or the name of an "
                         f"official model whose package is installed ({', '.join(official.BY_NAME)})")
    return found[0], teacher


def load_teacher(teacher: str, device) -> tuple[str, TorchTeacher]:
    """The teacher's name (``teacher_param``) and network."""
    from model.convert.layouts import detect
    from model.convert.ncnn import read_graph, recognise

    param, name = teacher_param(teacher)
    found = recognise(read_graph(param))
    layout = detect(found.state)
    build = architecture(layout.arch).torch
    if found.resize or build is None:
        raise ValueError(f"{param.name}: the torch backend has no {layout.describe()} teacher"
                         + (" with a bicubic tail" if found.resize else ""))
    module = build(**layout.params)
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in found.state.items()})
    return name, TorchTeacher(module, layout.scale, device)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Per-channel Gaussian blur (radius 2 sigma, reflect padding) of NCHW images, as ``losses.gaussian_blur``."""
    radius = max(1, int(round(2 * sigma)))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype) / sigma) ** 2)
    taps = taps / taps.sum()
    c = x.shape[1]
    kernel = (taps[:, None] * taps[None, :]).expand(c, 1, -1, -1)
    return F.conv2d(F.pad(x, [radius] * 4, mode="reflect"), kernel, groups=c)


def high_pass(x: torch.Tensor) -> torch.Tensor:
    return x - gaussian_blur(x, HIGH_PASS_SIGMA)


def grid_l1(sr: torch.Tensor, target: torch.Tensor, scale: int, sigma: float = GRID_SIGMA) -> torch.Tensor:
    """``losses.grid_l1``: L1 between the blurred sub-pixel grid patterns (each grid position's LR-sized image
    less the mean over positions) of SR and target."""
    def pattern(x):
        b, c, h, w = x.shape
        phases = F.pixel_unshuffle(x, scale).reshape(b, c, scale * scale, h // scale, w // scale)
        phases = phases - phases.mean(dim=2, keepdim=True)
        return gaussian_blur(phases.reshape(b, c * scale * scale, h // scale, w // scale), sigma)

    return F.l1_loss(pattern(sr), pattern(target))


def overshoot_l1(sr: torch.Tensor, target: torch.Tensor, window: int = OVERSHOOT_WINDOW) -> torch.Tensor:
    """``losses.overshoot_l1``: how far SR leaves the target's per-channel min..max over a window x window
    neighbourhood."""
    high = F.max_pool2d(target, window, stride=1, padding=window // 2)
    low = -F.max_pool2d(-target, window, stride=1, padding=window // 2)
    return (F.relu(sr - high) + F.relu(low - sr)).mean()


def chroma_l1(sr: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``losses.chroma_l1``: L1 between the Cb/Cr planes of SR and target."""
    rows = torch.tensor(CHROMA_ROWS, dtype=sr.dtype, device=sr.device)
    return torch.einsum("bchw,cd->bdhw", sr - target, rows).abs().mean()


def random_conv_features(seed: int, device, widths=(32, 64, 128)) -> torch.nn.Module:
    """A frozen randomly initialised VGG-style stack (``losses.random_conv_features``'s design): two 3x3 convs
    (He-normal, zero bias) then 2x2 average pooling per width; returns each block's second conv output."""
    gen = torch.Generator().manual_seed(seed)
    layers, cin = [], 3
    for width in widths:
        for i in range(2):
            conv = torch.nn.Conv2d(cin if i == 0 else width, width, 3, padding=1)
            with torch.no_grad():
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2 / conv.weight[0].numel()) ** 0.5)
                conv.bias.zero_()
            layers.append(conv)
        cin = width

    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = torch.nn.ModuleList(layers)

        def forward(self, x):
            x, feats = x * 2 - 1, []
            for k in range(0, len(self.convs), 2):
                x = self.convs[k + 1](F.relu(self.convs[k](x)))
                feats.append(x)
                x = F.avg_pool2d(F.relu(x), 2)
            return feats

    return Features().to(device).requires_grad_(False)


def distill_loss(cfg: TrainConfig, device):
    features = random_conv_features(cfg.seed, device) if cfg.perceptual_weight else None

    def loss(sr, target, hr):
        total = F.l1_loss(sr, target) + cfg.hf_weight * F.l1_loss(high_pass(sr), high_pass(target))
        if features is not None:
            layers = [F.l1_loss(a, b) for a, b in zip(features(sr), features(target))]
            total = total + cfg.perceptual_weight * sum(layers) / len(layers)
        if cfg.energy_weight:
            energy = [gaussian_blur(high_pass(t).abs(), ENERGY_SIGMA) for t in (sr, target)]
            total = total + cfg.energy_weight * F.l1_loss(*energy)
        if cfg.gt_weight:
            total = total + cfg.gt_weight * F.l1_loss(sr, hr)
        if cfg.grid_weight:
            total = total + cfg.grid_weight * grid_l1(sr, target, cfg.scale)
        if cfg.overshoot_weight:
            total = total + cfg.overshoot_weight * overshoot_l1(sr, target)
        if cfg.chroma_weight:
            total = total + cfg.chroma_weight * chroma_l1(sr, target)
        return total

    return loss


def distill_batches(cfg: TrainConfig, device, log):
    """Fill the teacher cache to ``cfg.teacher_samples`` (on ``device``), then ``(next_batch, loss)`` for
    ``torch_train.fit``: batches of (lr, teacher output, original) NCHW on ``device``."""
    name, teacher = load_teacher(cfg.teacher, device)
    cache = open_cache(cfg, name, teacher.scale)
    # A GPU teacher takes many crops per call and waits for nothing but the CPU's degraded pairs
    fill_to(cfg, cache, lambda: teacher, batch=32 if device.type == "cuda" else 4, workers=cfg.pair_workers)
    print(f"teacher {name}: {len(cache.done())} cached pairs in {cache.folder}", file=log, flush=True)
    pairs, calls = Pairs(cache, cfg), [0]

    def next_batch():
        calls[0] += 1
        if calls[0] % REFRESH_EVERY == 0:
            pairs.refresh()
        return tuple(torch.from_numpy(a).permute(0, 3, 1, 2).contiguous().to(device) for a in pairs.batch())

    return next_batch, distill_loss(cfg, device)
