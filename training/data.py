"""Training input: tf.data pipelines that yield ``(lr, hr)`` float32 batches in [0, 1].

Three ways to get a pair from a folder:
- ``bicubic`` (default): a random HR crop, flipped/rotated, and its LR made on the fly by MATLAB's
  antialiased bicubic ``imresize`` (the "BI" degradation every benchmark uses). Fixed-size crops make
  the resize two small matrix products, so it runs inside the graph; ``tests/test_data.py`` proves it
  equal to ``training.imresize`` pixel for pixel.
- paired folders: an LR crop from ``lr_dir`` and the HR crop at the same place (same file names).
- ``realworld``: Real-ESRGAN's second-order degradation (``training.degrade``: blur, resize, noise and
  JPEG, twice, then a sinc filter), for models meant for camera photos rather than for benchmarks. With
  ``usm`` each element is ``(lr, usm_sharpened_hr, hr)``: sharper targets for the pixel and perceptual
  losses, the plain crop for the discriminator.

Every random choice is a stateless function of ``(seed, sample index)``, and the file order is a
seeded shuffle, so ``start`` (samples already consumed) puts a resumed run back at the same place.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from . import degrade
from .config import DEGRADATIONS
from .images import list_images
from .imresize import weight_matrix



def _decode(path):
    img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    img.set_shape([None, None, 3])
    return img


def _round_uint8(x):
    # MATLAB's double -> uint8: round half away from zero (values are >= 0 here), saturate.
    return tf.clip_by_value(tf.floor(x + 0.5), 0.0, 255.0)


def bicubic_downscale(hr, scale: int):
    """MATLAB ``imresize(hr, 1/scale, 'bicubic')`` of a square uint8 HxHx3 tensor with a static size
    divisible by ``scale``; returns float64 values 0..255 (already rounded to integers).
    Rows first, then columns, rounding after each pass: MATLAB's order for uint8 input."""
    size = int(hr.shape[0])
    mat = tf.constant(weight_matrix(size, size // scale, 1.0 / scale), tf.float64)
    x = tf.cast(hr, tf.float64)
    x = _round_uint8(tf.einsum("oh,hwc->owc", mat, x))
    return _round_uint8(tf.einsum("ow,hwc->hoc", mat, x))


def augment(images, seed):
    """The same random horizontal flip and 90-degree rotation on every image of a pair."""
    flip_seed, rot_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    flip = tf.random.stateless_uniform([], flip_seed) < 0.5
    k = tf.random.stateless_uniform([], rot_seed, 0, 4, dtype=tf.int32)
    return [tf.image.rot90(tf.cond(flip, lambda im=im: tf.reverse(im, [1]), lambda im=im: im), k) for im in images]


def _random_offset(seed, limits):
    """Random integer in [0, limit] for each limit."""
    return [tf.random.stateless_uniform([], s, 0, lim + 1, dtype=tf.int32)
            for s, lim in zip(tf.unstack(tf.random.experimental.stateless_split(seed, len(limits))), limits)]


def realworld_degrade(hr, scale: int, seed, usm: bool = False, second_order_prob: float = 1.0):
    """Real-ESRGAN's second-order degradation (``training.degrade``, NumPy/OpenCV) of a uint8 HR crop,
    seeded by the sample's ``seed`` pair. Returns ``(lr, target)`` float 0..1; the target is the
    USM-sharpened crop when ``usm``."""
    size = int(hr.shape[0])

    def run(img, s):
        rng = degrade.pair_seed(int(s[0]), int(s[1]))
        x = img.astype(np.float32) / 255.0
        cfg = degrade.DegradeConfig(second_order_prob=second_order_prob)
        return degrade.degrade(x, scale, rng, cfg), (degrade.usm_sharpen(x) if usm else x)

    lr, target = tf.numpy_function(run, [hr, seed], [tf.float32, tf.float32], stateful=False)
    lr.set_shape([size // scale, size // scale, 3])
    target.set_shape([size, size, 3])
    return lr, target


def _hr_only_pair(path, seed, crop: int, scale: int, degradation: str, usm: bool = False,
                  second_order_prob: float = 1.0):
    crop_seed, aug_seed, deg_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    img = _decode(path)
    shape = tf.shape(img)
    y, x = _random_offset(crop_seed, [shape[0] - crop, shape[1] - crop])
    hr = img[y:y + crop, x:x + crop]
    hr.set_shape([crop, crop, 3])
    (hr,) = augment([hr], aug_seed)
    if degradation == "realworld":
        lr, target = realworld_degrade(hr, scale, deg_seed, usm, second_order_prob)
        return (lr, target, tf.cast(hr, tf.float32) / 255.0) if usm else (lr, target)
    return tf.cast(bicubic_downscale(hr, scale), tf.float32) / 255.0, tf.cast(hr, tf.float32) / 255.0


def _paired(lr_path, hr_path, seed, crop: int, scale: int):
    crop_seed, aug_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    lr_img, hr_img = _decode(lr_path), _decode(hr_path)
    lr_crop = crop // scale
    shape = tf.shape(lr_img)
    tf.debugging.assert_equal(tf.shape(hr_img)[:2], shape[:2] * scale,
                              message="HR image is not exactly scale x its LR image")
    y, x = _random_offset(crop_seed, [shape[0] - lr_crop, shape[1] - lr_crop])
    lr = lr_img[y:y + lr_crop, x:x + lr_crop]
    hr = hr_img[y * scale:(y + lr_crop) * scale, x * scale:(x + lr_crop) * scale]
    lr.set_shape([lr_crop, lr_crop, 3])
    hr.set_shape([crop, crop, 3])
    lr, hr = augment([lr, hr], aug_seed)
    return tf.cast(lr, tf.float32) / 255.0, tf.cast(hr, tf.float32) / 255.0


def paired_files(hr_dir: Path | str, lr_dir: Path | str, lr_min: int) -> tuple[list[str], list[str]]:
    """Matching (lr, hr) files: same relative path (stem) in both folders."""
    lr_files = list_images(lr_dir, lr_min)
    hr_by_stem = {str(Path(p).relative_to(hr_dir).with_suffix("")): p for p in list_images(hr_dir)}
    pairs = [(lr, hr_by_stem[k]) for lr in lr_files
             if (k := str(Path(lr).relative_to(lr_dir).with_suffix(""))) in hr_by_stem]
    if not pairs:
        raise ValueError(f"no file in {lr_dir} has a namesake in {hr_dir}")
    return [p[0] for p in pairs], [p[1] for p in pairs]


def make_dataset(hr_dir: Path | str, *, scale: int, crop: int, batch_size: int, seed: int = 0,
                 lr_dir: Path | str | None = None, degradation: str = "bicubic", start: int = 0,
                 repeat: bool = True, usm: bool = False, second_order_prob: float = 1.0) -> tf.data.Dataset:
    """Batches of ``(lr, hr)``: lr ``(B, crop/scale, crop/scale, 3)``, hr ``(B, crop, crop, 3)``.
    ``start`` skips that many samples (a resumed run's position) before any image is decoded."""
    if crop % scale:
        raise ValueError(f"HR crop {crop} must be a multiple of the scale {scale}")
    if degradation not in DEGRADATIONS:
        raise ValueError(f"degradation must be one of {DEGRADATIONS}, got {degradation!r}")
    if lr_dir is not None:
        lr_files, hr_files = paired_files(hr_dir, lr_dir, crop // scale)
        files = tf.data.Dataset.from_tensor_slices((lr_files, hr_files))
        n = len(hr_files)
        fn = lambda i, f: _paired(f[0], f[1], tf.stack([tf.constant(seed, tf.int64), i]), crop, scale)  # noqa: E731
    else:
        hr_files = list_images(hr_dir, crop)
        files = tf.data.Dataset.from_tensor_slices(hr_files)
        n = len(hr_files)
        fn = lambda i, f: _hr_only_pair(f, tf.stack([tf.constant(seed, tf.int64), i]), crop, scale,  # noqa: E731
                                        degradation, usm, second_order_prob)
    ds = files.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.enumerate().skip(start)
    ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
