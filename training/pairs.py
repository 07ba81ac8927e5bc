"""Training batches of a distillation: random sub-crops, flips and rotations of the teacher cache's pairs.
Free of TensorFlow and PyTorch: both backends' students read it."""
from __future__ import annotations

import cv2
import numpy as np

from .config import TrainConfig
from .teacher import TeacherCache, load_pair


class Pairs:
    """Random batches of (lr, target, hr) sub-crops, NHWC float32 in [0, 1], from the cached pairs (new ones
    are picked up as the cache grows); every pair in memory as uint8."""

    def __init__(self, cache: TeacherCache, cfg: TrainConfig):
        self.cache, self.cfg, self.loaded = cache, cfg, {}
        self.rng = np.random.default_rng(cfg.seed)
        self.refresh()

    def refresh(self) -> None:
        for path in self.cache.done():
            if path.name not in self.loaded:
                pair = load_pair(path)
                if self.cfg.scale != self.cache.cfg.scale:  # x2 student: the x4 teacher's output, halved
                    f = self.cache.cfg.scale // self.cfg.scale
                    for key in ("teacher", "hr"):
                        h, w = pair[key].shape[:2]
                        pair[key] = cv2.resize(pair[key], (w // f, h // f), interpolation=cv2.INTER_AREA)
                self.loaded[path.name] = pair
        self.names = sorted(self.loaded)
        if not self.names:
            raise ValueError(f"{self.cache.folder}: the teacher cache is empty")

    def batch(self):
        s, crop = self.cfg.scale, self.cfg.hr_crop // self.cfg.scale
        lrs, targets, hrs = [], [], []
        for k in self.rng.integers(len(self.names), size=self.cfg.batch_size):
            pair = self.loaded[self.names[k]]
            y, x = self.rng.integers(pair["lr"].shape[0] - crop + 1, size=2)
            t, flip = int(self.rng.integers(4)), bool(self.rng.integers(2))
            for src, out, f in ((pair["lr"], lrs, 1), (pair["teacher"], targets, s), (pair["hr"], hrs, s)):
                patch = src[y * f:(y + crop) * f, x * f:(x + crop) * f]
                out.append(np.rot90(patch[:, ::-1] if flip else patch, t))
        return tuple(np.stack(a).astype(np.float32) / 255.0 for a in (lrs, targets, hrs))
