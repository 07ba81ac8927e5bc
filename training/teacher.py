"""Distillation targets: a teacher model's outputs on degraded crops, computed once and kept on disk.

Sample ``i`` of a cache seeded ``s`` is fully determined by ``(s, i)``: which training image, where the HR crop
sits, its flip/rotation and the degradation seed (``training.degrade``). Its file name carries that key
(``000123-img_042-y96x160-t5.npz``), and holds the LR crop, the teacher's output on it and the HR crop (uint8).
A fill skips samples already on disk, so it resumes after a kill, and a student's epochs reuse the same
pairs (its own flips and sub-crops of a cached pair cost nothing).

The teacher runs through the engine (``model.engine.Upscaler``): the fastest runtime and precision on this
machine, with the engine's mirrored edge context around each crop, several crops per call.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import tempfile
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import degrade
from .config import TrainConfig
from .images import list_images, load_rgb

log = logging.getLogger("esrgan.teacher")
META = "cache.json"


@dataclass(frozen=True)
class CacheConfig:
    lr_size: int = 64  # LR crop side; the HR crop and the teacher's output are scale x that
    scale: int = 4  # the teacher's scale
    seed: int = 0
    second_order_prob: float = 0.2  # share of second-order (harsh) degradations; the rest get one round
    edge: int = 8  # mirrored LR context around each crop for the teacher, as the engine's edge_pad


@dataclass(frozen=True)
class Sample:
    index: int
    image: str
    y: int
    x: int
    transform: int  # 0-7: rotation k = t % 4, horizontal flip if t >= 4

    @property
    def key(self) -> str:
        return f"{self.index:06d}-{Path(self.image).stem}-y{self.y}x{self.x}-t{self.transform}"


def plan_sample(cfg: CacheConfig, images: list[str], sizes: list[tuple[int, int]], index: int) -> Sample:
    rng = degrade.pair_seed(cfg.seed, index)
    k = int(rng.integers(len(images)))
    h, w = sizes[k]
    crop = cfg.lr_size * cfg.scale
    return Sample(index, images[k], int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1)),
                  int(rng.integers(8)))


def make_pair(cfg: CacheConfig, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """The HR crop (uint8) and its degraded LR crop (float32 in [0, 1])."""
    crop = cfg.lr_size * cfg.scale
    hr = load_rgb(sample.image)[sample.y:sample.y + crop, sample.x:sample.x + crop]
    hr = np.rot90(hr[:, ::-1] if sample.transform >= 4 else hr, sample.transform % 4)
    hr = np.ascontiguousarray(hr)
    rng = degrade.pair_seed(cfg.seed + 1, sample.index)  # the degradation's own stream
    lr = degrade.degrade(hr.astype(np.float32) / 255.0, cfg.scale, rng,
                         degrade.DegradeConfig(second_order_prob=cfg.second_order_prob))
    return hr, lr


class TeacherCache:
    def __init__(self, folder: Path | str, cfg: CacheConfig, images_dir: Path | str, teacher: str):
        self.folder, self.cfg, self.teacher = Path(folder), cfg, teacher
        crop = cfg.lr_size * cfg.scale
        self.images = list_images(images_dir, crop)
        self.sizes = [_size(p) for p in self.images]
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = {"config": asdict(cfg), "teacher": teacher, "images": [Path(p).name for p in self.images]}
        path = self.folder / META
        if path.is_file():
            old = json.loads(path.read_text())
            if old != meta:
                raise ValueError(f"{self.folder}: a cache of another teacher, configuration or image set "
                                 f"({old.get('teacher')}, {old.get('config')}); use another folder")
        else:
            path.write_text(json.dumps(meta, indent=1))

    def sample(self, index: int) -> Sample:
        return plan_sample(self.cfg, self.images, self.sizes, index)

    def path(self, index: int) -> Path:
        return self.folder / f"{self.sample(index).key}.npz"

    def done(self) -> list[Path]:
        return sorted(self.folder.glob("[0-9]*.npz"))

    def fill(self, upscaler, count: int, batch: int = 4, progress=None, workers: int = 1) -> int:
        """Compute the first ``count`` samples not on disk yet, ``batch`` crops per teacher call; returns how
        many were computed. ``workers`` > 1: that many processes make the degraded pairs ahead of the teacher
        (what holds a GPU teacher back: one pair costs tens of ms of CPU)."""
        todo = [i for i in range(count) if not self.path(i).is_file()]
        chunks = [[self.sample(i) for i in todo[b:b + batch]] for b in range(0, len(todo), batch)]
        made = 0
        for samples, pairs in zip(chunks, make_pairs(self.cfg, chunks, workers)):
            outputs = run_teacher(upscaler, [lr for _, lr in pairs], self.cfg.edge)
            for s, (hr, lr), out in zip(samples, pairs, outputs):
                _save(self.folder / f"{s.key}.npz", lr=_u8(lr), teacher=_u8(out), hr=hr)
            made += len(samples)
            if progress:
                progress(made, len(todo))
        return made


def make_pairs(cfg: CacheConfig, chunks: list[list[Sample]], workers: int):
    """Each chunk's (hr, lr) pairs, in order; with ``workers`` > 1 made by a process pool, ``2 * workers``
    chunks ahead of the consumer (bounded memory). Spawned processes: the parent may hold a CUDA context."""
    if workers <= 1:
        for chunk in chunks:
            yield [make_pair(cfg, s) for s in chunk]
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=degrade.one_thread_per_worker) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append([pool.submit(make_pair, cfg, s) for s in chunk])
            if len(pending) > 2 * workers:
                yield [f.result() for f in pending.popleft()]
        while pending:
            yield [f.result() for f in pending.popleft()]


def run_teacher(upscaler, crops: list[np.ndarray], edge: int) -> list[np.ndarray]:
    """The teacher's outputs (float32 [0, 1]) for equal-sized LR crops, in one batch through the runner,
    each with ``edge`` mirrored pixels of context (what the engine gives a whole image's borders)."""
    s = upscaler.scale
    x = np.stack([np.pad(c, ((edge, edge), (edge, edge), (0, 0)), mode="symmetric") for c in crops])
    y = upscaler.runner(x.astype(np.float32))
    return [np.clip(o[edge * s:-edge * s, edge * s:-edge * s], 0, 1) for o in y]


def _size(path: str) -> tuple[int, int]:
    """(height, width) from the file's header, without decoding it."""
    with Image.open(path) as im:
        return im.height, im.width


def load_pair(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _save(path: Path, **arrays) -> None:
    """Write beside and rename: a killed fill never leaves a half-written pair."""
    fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=path.parent)
    os.close(fd)
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)


def open_cache(cfg: TrainConfig, teacher: str, scale: int) -> TeacherCache:
    """The run's cache of ``teacher`` (a name: the same cache serves both backends' runs of that teacher)."""
    folder = cfg.teacher_cache or str(Path(cfg.out).parent / f"teacher-cache-{teacher}")
    return TeacherCache(folder, CacheConfig(lr_size=cfg.teacher_crop, scale=scale, seed=cfg.seed,
                                            second_order_prob=cfg.second_order_prob), cfg.data, teacher)


def fill_to(cfg: TrainConfig, cache: TeacherCache, make_upscaler, batch: int = 4, workers: int = 1) -> None:
    """Fill ``cache`` to ``cfg.teacher_samples`` pairs; ``make_upscaler()`` (anything with ``scale`` and a
    ``runner`` taking NHWC float32) is only built when pairs are missing."""
    missing = sum(not cache.path(i).is_file() for i in range(cfg.teacher_samples))
    if not missing:
        return
    upscaler = make_upscaler()
    if not cfg.progress:
        cache.fill(upscaler, cfg.teacher_samples, batch=batch, workers=workers)
        return
    from tqdm import tqdm

    with tqdm(total=missing, desc=f"teacher {cache.teacher}", unit="crop") as bar:
        cache.fill(upscaler, cfg.teacher_samples, batch=batch, workers=workers,
                   progress=lambda done, total: bar.update(done - bar.n))
