"""Real-ESRGAN's second-order degradation (Wang et al., ICCVW 2021), framework-free (NumPy + OpenCV).

Both backends of ``esrgan train --degradation realworld`` read their real-world pairs from here: tf
(``training/data.py``, through ``tf.numpy_function``) and torch (``training/torch_data.py``), and the
deterministic real-world validation set (``esrgan prepare --degradation realworld``) is made by the
same code with fixed seeds. Every probability and range is a field of :class:`DegradeConfig`; the
defaults are Real-ESRGAN's ``train_realesrnet_x4plus.yml``.

One pass, on an HR image in [0, 1] (float32, HxWx3):
  stage 1: blur (iso/aniso Gaussian, generalized Gaussian, plateau or sinc kernel) -> random resize
           (up/down/keep; area, bilinear or bicubic) -> Gaussian (colour or grey) or Poisson noise -> JPEG
  stage 2: the same with its own ranges (blur only with ``second_blur_prob``), resized relative to the
           target LR size
  final:   in random order, [resize to HR/scale + sinc filter] and JPEG
Every random choice comes from one ``numpy.random.Generator``, so a seed fixes the whole pair.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import special

KERNELS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_MODES = (cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC)


@dataclass(frozen=True)
class StageConfig:
    """The ranges of one degradation stage (blur, resize, noise, JPEG)."""
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # over KERNELS
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag: tuple[float, float] = (0.5, 4.0)  # generalized Gaussian shape
    betap: tuple[float, float] = (1.0, 2.0)  # plateau shape
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5  # else Poisson
    noise_range: tuple[float, float] = (1.0, 30.0)  # sigma on the 0..255 scale
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[int, int] = (30, 95)


@dataclass(frozen=True)
class DegradeConfig:
    first: StageConfig = StageConfig()
    second: StageConfig = StageConfig(blur_sigma=(0.2, 1.5), resize_prob=(0.3, 0.4, 0.3), resize_range=(0.3, 1.2),
                                      noise_range=(1.0, 25.0), poisson_scale_range=(0.05, 2.5))
    second_blur_prob: float = 0.8
    final_sinc_prob: float = 0.8
    kernel_size: int = 21  # every kernel is zero-padded to this size
    # Real-ESRGAN always degrades twice; below 1, the other pairs get one round (degrade_once): most
    # uploads (a phone photo, a web JPEG) have been through one, and a model trained only on the
    # harshest cases smooths the milder ones
    second_order_prob: float = 1.0


REAL_ESRGAN = DegradeConfig()


# --- kernels ---------------------------------------------------------------------------------------
def _grid(size: int) -> np.ndarray:
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    xx, yy = np.meshgrid(r, r)
    return np.stack([xx, yy], -1)  # (size, size, 2)


def _mahalanobis(size: int, sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    """x^T Sigma^-1 x on the kernel grid for a Gaussian rotated by ``theta``."""
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([sig_x**2, sig_y**2]) @ rot.T)
    g = _grid(size)
    return np.einsum("...i,ij,...j->...", g, inv, g)


def mixed_kernel(rng: np.random.Generator, cfg: StageConfig, size: int) -> np.ndarray:
    """One blur kernel of the kinds in ``KERNELS`` (basicsr ``random_mixed_kernels``)."""
    kind = KERNELS[rng.choice(len(KERNELS), p=cfg.kernel_prob)]
    sig_x = rng.uniform(*cfg.blur_sigma)
    isotropic = kind.endswith("iso") and not kind.endswith("aniso")
    sig_y, theta = (sig_x, 0.0) if isotropic else (rng.uniform(*cfg.blur_sigma), rng.uniform(-math.pi, math.pi))
    d2 = _mahalanobis(size, sig_x, sig_y, theta)
    if kind.startswith("generalized"):
        beta = rng.uniform(cfg.betag[0], 1) if rng.uniform() < 0.5 else rng.uniform(1, cfg.betag[1])
        k = np.exp(-0.5 * np.power(d2, beta))
    elif kind.startswith("plateau"):
        beta = rng.uniform(cfg.betap[0], 1) if rng.uniform() < 0.5 else rng.uniform(1, cfg.betap[1])
        k = 1.0 / (np.power(d2, beta) + 1)
    else:
        k = np.exp(-0.5 * d2)
    return k / k.sum()


def sinc_kernel(cutoff: float, size: int) -> np.ndarray:
    """2-D circular low-pass (sinc) kernel: ringing and overshoot, as from sharpening and resampling."""
    r = np.hypot(*np.moveaxis(_grid(size), -1, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * special.j1(cutoff * r) / (2 * np.pi * r)
    k[r == 0] = cutoff**2 / (4 * np.pi)
    return k / k.sum()


def _pad(kernel: np.ndarray, size: int) -> np.ndarray:
    p = (size - kernel.shape[0]) // 2
    return np.pad(kernel, p)


def stage_kernel(rng: np.random.Generator, cfg: StageConfig, pad_to: int) -> np.ndarray:
    size = int(rng.choice(cfg.kernel_sizes))
    if rng.uniform() < cfg.sinc_prob:
        cutoff = rng.uniform(math.pi / 3, math.pi) if size < 13 else rng.uniform(math.pi / 5, math.pi)
        return _pad(sinc_kernel(cutoff, size), pad_to)
    return _pad(mixed_kernel(rng, cfg, size), pad_to)


def final_kernel(rng: np.random.Generator, cfg: DegradeConfig, stage: StageConfig) -> np.ndarray:
    if rng.uniform() < cfg.final_sinc_prob:
        size = int(rng.choice(stage.kernel_sizes))
        return _pad(sinc_kernel(rng.uniform(math.pi / 3, math.pi), size), cfg.kernel_size)
    pulse = np.zeros((cfg.kernel_size, cfg.kernel_size))
    pulse[cfg.kernel_size // 2, cfg.kernel_size // 2] = 1
    return pulse


# --- operations ------------------------------------------------------------------------------------
def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # reflect padding, as the PyTorch reference (F.pad 'reflect' + conv2d)
    return cv2.filter2D(img, -1, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)


def resize(img: np.ndarray, size: tuple[int, int], mode: int) -> np.ndarray:
    h, w = max(1, size[0]), max(1, size[1])
    out = cv2.resize(img, (w, h), interpolation=mode)
    return out if out.ndim == 3 else out[..., None]


def random_resize(rng: np.random.Generator, img: np.ndarray, cfg: StageConfig, base: tuple[int, int]) -> np.ndarray:
    """Resize to ``base`` times a random factor (up, down or kept), by a random method."""
    direction = rng.choice(3, p=cfg.resize_prob)
    factor = (rng.uniform(1, cfg.resize_range[1]), rng.uniform(cfg.resize_range[0], 1), 1.0)[direction]
    mode = RESIZE_MODES[rng.integers(len(RESIZE_MODES))]
    return resize(img, (int(base[0] * factor), int(base[1] * factor)), mode)


def add_noise(rng: np.random.Generator, img: np.ndarray, cfg: StageConfig) -> np.ndarray:
    """Gaussian (sigma on the 0..255 scale) or Poisson noise, on colour or (with gray_noise_prob) one
    grey channel shared by R, G and B."""
    gray = rng.uniform() < cfg.gray_noise_prob
    if rng.uniform() < cfg.gaussian_noise_prob:
        sigma = rng.uniform(*cfg.noise_range) / 255.0
        shape = img.shape[:2] + ((1,) if gray else (img.shape[2],))
        noise = rng.standard_normal(shape).astype(np.float32) * sigma
    else:
        scale = rng.uniform(*cfg.poisson_scale_range)
        src = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None] if gray else img
        src = np.clip(np.round(src * 255.0), 0, 255) / 255.0
        vals = 2 ** math.ceil(math.log2(max(len(np.unique(src)), 2)))  # as basicsr: levels of the image
        noise = ((rng.poisson(src * vals) / vals) - src).astype(np.float32) * scale
    return np.clip(img + noise, 0.0, 1.0)  # a grey (HxWx1) noise broadcasts to all three channels


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    u8 = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def random_jpeg(rng: np.random.Generator, img: np.ndarray, cfg: StageConfig) -> np.ndarray:
    return jpeg(img, int(rng.integers(cfg.jpeg_range[0], cfg.jpeg_range[1] + 1)))


# --- the pipeline ----------------------------------------------------------------------------------
def one_thread_per_worker(*_) -> None:
    """Initialiser of a process that makes degraded pairs: one OpenCV thread, as the pool's processes already
    fill the cores (a DataLoader's ``worker_init_fn`` or a process pool's ``initializer``)."""
    cv2.setNumThreads(1)


def degrade(hr: np.ndarray, scale: int, rng: np.random.Generator | int, cfg: DegradeConfig = REAL_ESRGAN) -> np.ndarray:
    """The LR image of a float32 HxWx3 HR image in [0, 1] (H and W multiples of ``scale``), in [0, 1],
    rounded to 8-bit levels. ``rng`` (or a seed) fixes every random choice."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    if cfg.second_order_prob < 1 and rng.uniform() >= cfg.second_order_prob:
        return degrade_once(hr, scale, rng, cfg.first)
    hr = np.ascontiguousarray(hr, np.float32)
    h, w = hr.shape[:2]
    target = (h // scale, w // scale)
    # draw every kernel first, as the reference dataset does, then degrade
    k1 = stage_kernel(rng, cfg.first, cfg.kernel_size)
    k2 = stage_kernel(rng, cfg.second, cfg.kernel_size)
    k_final = final_kernel(rng, cfg, cfg.second)

    x = blur(hr, k1)
    x = random_resize(rng, x, cfg.first, (h, w))
    x = add_noise(rng, x, cfg.first)
    x = random_jpeg(rng, x, cfg.first)

    if rng.uniform() < cfg.second_blur_prob:
        x = blur(x, k2)
    x = random_resize(rng, x, cfg.second, target)
    x = add_noise(rng, x, cfg.second)

    mode = RESIZE_MODES[rng.integers(len(RESIZE_MODES))]
    if rng.uniform() < 0.5:
        x = random_jpeg(rng, blur(resize(x, target, mode), k_final), cfg.second)
    else:
        x = blur(resize(random_jpeg(rng, x, cfg.second), target, mode), k_final)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.float32) / 255.0


def degrade_once(hr: np.ndarray, scale: int, rng: np.random.Generator | int,
                 cfg: StageConfig = REAL_ESRGAN.first) -> np.ndarray:
    """The classical one-round degradation: blur, downscale to HR/scale (random method), noise, JPEG,
    with the first stage's ranges. Milder than :func:`degrade` and closer to most web photos; a second
    validation set beside the second-order one."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    hr = np.ascontiguousarray(hr, np.float32)
    x = blur(hr, stage_kernel(rng, cfg, REAL_ESRGAN.kernel_size))
    x = resize(x, (hr.shape[0] // scale, hr.shape[1] // scale), RESIZE_MODES[rng.integers(len(RESIZE_MODES))])
    x = random_jpeg(rng, add_noise(rng, x, cfg), cfg)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.float32) / 255.0


def usm_sharpen(img: np.ndarray, weight: float = 0.5, radius: int = 50, threshold: float = 10) -> np.ndarray:
    """Unsharp-masked ground truth (Real-ESRGAN's ``USMSharp``): sharper targets for the pixel and
    perceptual losses, so the GAN learns crisp edges; only where the detail exceeds ``threshold``/255."""
    radius += radius % 2 == 0
    img = np.ascontiguousarray(img, np.float32)
    residual = img - cv2.GaussianBlur(img, (radius, radius), 0)
    mask = (np.abs(residual) * 255 > threshold).astype(np.float32)
    soft = cv2.GaussianBlur(mask, (radius, radius), 0)
    sharp = np.clip(img + weight * residual, 0, 1)
    return soft * sharp + (1 - soft) * img


def pair_seed(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of a run seeded ``seed``: resumable, order-independent."""
    mask = (1 << 64) - 1  # TensorFlow's stateless seeds are signed int64
    return np.random.default_rng([int(seed) & mask, int(index) & mask])
