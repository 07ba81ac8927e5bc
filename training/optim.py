"""The optimizers of every TensorFlow training stage: Adam on the run's cosine schedule."""
from __future__ import annotations

import keras

from .config import TrainConfig


def adam(cfg: TrainConfig, lr: float, start: int = 0, **ema):
    """Adam on the run's cosine schedule from ``lr``, ``start`` steps in (a run that resumes without the
    optimizer's own step count)."""
    schedule = Resumed(keras.optimizers.schedules.CosineDecay(lr, cfg.steps, alpha=cfg.lr_min_ratio), start)
    opt = keras.optimizers.Adam(schedule, beta_1=cfg.beta1, beta_2=cfg.beta2, **ema)
    # float16 gradients underflow without loss scaling; bfloat16 has float32's range and needs none
    return keras.optimizers.LossScaleOptimizer(opt) if cfg.precision == "float16" else opt


class Resumed(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule`` shifted by the steps a run had done before this process started."""

    def __init__(self, schedule, start: int):
        self.schedule, self.start = schedule, start

    def __call__(self, step):
        return self.schedule(step + self.start)
