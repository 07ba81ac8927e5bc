"""fill.py N: fill the x4plus teacher cache to N crops with p7's cache settings (the same keys, so the first 1176
are the crops p7 trained on). Run from the repository root: python training/runs/cpu-2026-12-06e/fill.py 2000"""
import json
import sys
import time

from training.config import TrainConfig
from training.distill import fill_cache

config = json.load(open("training/runs/cpu-2026-12-06d/p7-config.json"))
cfg = TrainConfig(**{**config, "teacher_samples": int(sys.argv[1]), "degradation": "realworld", "progress": True})
start = time.time()
print("done", len(fill_cache(cfg).done()), f"{time.time() - start:.0f} s", flush=True)
