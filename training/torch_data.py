"""Training batches of the torch backend (``training.torch_train``): HR images from ``training.images``,
LR inputs made by the degradations the TensorFlow pipeline uses too (``training.imresize``,
``training.degrade``). Two ways, chosen by ``--degradation``:

* ``bicubic``: MATLAB-compatible bicubic. The whole training set lives on the GPU and batches are cut
  there: the small networks we ship are too fast for a CPU data loader to keep up.
* ``realworld``: Real-ESRGAN's second-order degradation, made on the fly on the CPU by DataLoader worker
  processes, each sample seeded by ``degrade.pair_seed(seed, index)`` so a run's pairs do not depend on
  the number of workers. ``--usm-gt`` trains against the unsharp-masked HR (Real-ESRNet).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from . import degrade
from .config import TrainConfig
from .images import scaled_images
from .imresize import imresize

Batch = tuple[torch.Tensor, torch.Tensor]  # (lr, target), float NCHW in [0, 1], channels-last


def make_pairs(images, scale: int, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The HR images with their MATLAB-bicubic LR, as uint8 CHW tensors on the device."""
    return [tuple(torch.from_numpy(a).permute(2, 0, 1).contiguous().to(device) for a in (hr, imresize(hr, 1 / scale)))
            for hr in images]


def area_weights(shapes) -> np.ndarray:
    """Sample images by area so every pixel is equally likely."""
    areas = np.array([h * w for h, w in shapes], dtype=np.float64)
    return areas / areas.sum()


class RealworldPatches(torch.utils.data.Dataset):
    """Sample ``index`` of a run: an HR crop of ``patch * scale`` (image drawn by area), flipped and rotated,
    and its LR by ``training.degrade``; every choice from ``degrade.pair_seed(seed, index)``, so the same
    run gives the same pairs whichever worker makes them. Returns float CHW tensors in [0, 1]: the LR and
    the target (the USM-sharpened crop with ``usm``)."""

    def __init__(self, images: list[np.ndarray], scale: int, patch: int, seed: int, usm: bool = False,
                 cfg: degrade.DegradeConfig = degrade.REAL_ESRGAN):
        self.crop = patch * scale
        self.images = [im for im in images if min(im.shape[:2]) >= self.crop]
        if not self.images:
            raise ValueError(f"no training image is at least {self.crop}x{self.crop} (patch {patch} x scale {scale})")
        self.weights = area_weights(im.shape[:2] for im in self.images)
        self.scale, self.seed, self.usm, self.cfg = scale, seed, usm, cfg

    def __len__(self) -> int:
        return 2**62  # endless: the schedule stops on time or steps

    def __getitem__(self, index: int):
        rng = degrade.pair_seed(self.seed, index)
        img = self.images[rng.choice(len(self.images), p=self.weights)]
        y = rng.integers(0, img.shape[0] - self.crop + 1)
        x = rng.integers(0, img.shape[1] - self.crop + 1)
        hr = img[y:y + self.crop, x:x + self.crop]
        if rng.integers(2):
            hr = hr[:, ::-1]
        hr = np.rot90(hr, int(rng.integers(4))).astype(np.float32) / 255.0
        lr = degrade.degrade(hr, self.scale, rng, self.cfg)
        target = degrade.usm_sharpen(hr) if self.usm else hr
        to_chw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))  # noqa: E731
        return to_chw(lr), to_chw(target)


def sample_batch(pairs, weights, batch: int, patch: int, scale: int, gen: np.random.Generator) -> Batch:
    """Aligned random crops with the same flip/rotation for the LR and HR patch of each sample."""
    lrs, hrs = [], []
    for i in gen.choice(len(pairs), size=batch, p=weights):
        hr, lr = pairs[i]
        y = gen.integers(0, lr.shape[1] - patch + 1)
        x = gen.integers(0, lr.shape[2] - patch + 1)
        lp = lr[:, y:y + patch, x:x + patch]
        hp = hr[:, y * scale:(y + patch) * scale, x * scale:(x + patch) * scale]
        k, flip = int(gen.integers(4)), bool(gen.integers(2))
        if flip:
            lp, hp = lp.flip(2), hp.flip(2)
        lrs.append(torch.rot90(lp, k, (1, 2)))
        hrs.append(torch.rot90(hp, k, (1, 2)))
    to_float = lambda ts: torch.stack(ts).float().div_(255).contiguous(memory_format=torch.channels_last)  # noqa: E731
    return to_float(lrs), to_float(hrs)


def bicubic_batches(images, cfg: TrainConfig, device) -> tuple[Callable[[], Batch], str]:
    patch = cfg.hr_crop // cfg.scale
    gen = np.random.default_rng(cfg.seed)
    pairs = [p for p in make_pairs(images, cfg.scale, device) if min(p[1].shape[1:]) >= patch]
    if not pairs:
        raise ValueError(f"{cfg.data}: no training image is at least {cfg.hr_crop}x{cfg.hr_crop}")
    weights = area_weights(p[1].shape[1:] for p in pairs)
    return (lambda: sample_batch(pairs, weights, cfg.batch_size, patch, cfg.scale, gen),
            f"{len(pairs)} training pairs on {device}")


def realworld_batches(images, cfg: TrainConfig, device) -> tuple[Callable[[], Batch], str]:
    workers = cfg.pair_workers
    patches = RealworldPatches(list(images), cfg.scale, cfg.hr_crop // cfg.scale, cfg.seed, cfg.usm_gt,
                               degrade.DegradeConfig(second_order_prob=cfg.second_order_prob))
    loader = iter(torch.utils.data.DataLoader(
        patches, batch_size=cfg.batch_size, num_workers=workers, pin_memory=device.type == "cuda",
        worker_init_fn=degrade.one_thread_per_worker, persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None))

    def next_batch() -> Batch:
        return tuple(t.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last) for t in next(loader))
    return next_batch, f"{len(patches.images)} training images, realworld pairs by {workers} workers, on {device}"


def batches(cfg: TrainConfig, device, log) -> Callable[[], Batch]:
    """The run's batch maker; how long the data took to load goes to ``log``."""
    started = time.time()
    images = scaled_images(cfg.data, cfg.scale, [float(r) for r in cfg.rescales.split(",")])
    make = realworld_batches if cfg.degradation == "realworld" else bicubic_batches
    next_batch, what = make(images, cfg, device)
    print(f"{what} in {time.time() - started:.1f}s", file=log, flush=True)
    return next_batch
