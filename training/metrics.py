"""PSNR and SSIM by the protocol that SR papers report.

Both are measured on the Y channel of YCbCr (MATLAB ``rgb2ycbcr``, BT.601, not
rounded), on 8-bit values, after cropping ``scale`` pixels from every border,
as the reference MATLAB evaluator (``Cal_Y_PSNRSSIM`` + ``ssim_index``) does.
Numbers from other conventions (RGB PSNR, no crop, skimage defaults) are not
comparable with published tables, so this module fixes the convention.
"""

import numpy as np

# BT.601 luma for R, G, B in [0, 1], giving Y in [16, 235].
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])


def rgb_to_y(img):
    """Y of YCbCr (float64, 16..235) from an HxWx3 uint8 RGB image.

    HxW (or HxWx1) input is taken as already being the luma/grey channel and is
    returned as float64 unchanged, as the reference evaluator does for grey images.
    """
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        return img.astype(np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected HxW or HxWx3, got shape {img.shape}")
    if img.dtype != np.uint8:
        # The protocol scores quantised 8-bit images; guessing a float range is a trap.
        raise TypeError(f"RGB input must be uint8, got {img.dtype}")
    return 16.0 + img.astype(np.float64) @ _Y_WEIGHTS / 255.0


def _prepare(sr, hr, crop):
    sr, hr = rgb_to_y(sr), rgb_to_y(hr)
    if sr.shape != hr.shape:
        raise ValueError(f"shape mismatch: sr {sr.shape} vs hr {hr.shape}")
    if crop:
        sr, hr = sr[crop:-crop, crop:-crop], hr[crop:-crop, crop:-crop]
    if sr.size == 0:
        raise ValueError(f"crop {crop} leaves nothing of a {hr.shape} image")
    return sr, hr


def psnr(sr, hr, crop=0):
    """PSNR in dB (peak 255) on Y after cropping ``crop`` pixels per border; inf if equal."""
    sr, hr = _prepare(sr, hr, crop)
    mse = np.mean((sr - hr) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _gaussian_1d(size=11, sigma=1.5):
    # fspecial('gaussian', 11, 1.5) is the outer product of this normalised vector.
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img, g):
    # Separable 'valid' correlation (MATLAB filter2(..., 'valid')), pure numpy.
    win = np.lib.stride_tricks.sliding_window_view
    out = win(img, g.size, axis=0) @ g
    return win(out, g.size, axis=1) @ g


def ssim(sr, hr, crop=0):
    """Mean SSIM (Wang et al. 2004) on Y after cropping, as MATLAB ``ssim_index``:
    11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, L=255, 'valid' filtering."""
    x, y = _prepare(sr, hr, crop)
    g = _gaussian_1d()
    if min(x.shape) < g.size:
        raise ValueError(f"SSIM needs at least {g.size}x{g.size} pixels, got {x.shape}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    var_x = _filter_valid(x * x, g) - mu_x**2
    var_y = _filter_valid(y * y, g) - mu_y**2
    cov = _filter_valid(x * y, g) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return float(np.mean(num / den))


def texture_ratio(sr, hr, crop=0):
    """Mean |Laplacian| of ``sr`` over that of ``hr`` on Y: how much fine detail the output has compared
    with the original, with no learned metric. Blur reads below 1, invented noise or halos above it."""
    sr, hr = _prepare(sr, hr, crop)

    def lap(y):  # 4-neighbour Laplacian on the interior
        return np.abs(y[1:-1, :-2] + y[1:-1, 2:] + y[:-2, 1:-1] + y[2:, 1:-1] - 4 * y[1:-1, 1:-1]).mean()

    return float(lap(sr) / max(lap(hr), 1e-12))


def grid_peak(y, period: int) -> float:
    """How much a (Y) image's power spectrum peaks at the harmonics of ``period`` pixels, along rows and
    columns, over its neighbouring frequencies: about 1 for a photo, far above for an upscaler's stripes or
    checkerboard on its sub-pixel grid (what a GAN-trained pixel-shuffle network may draw)."""
    y = np.asarray(y, np.float64)
    y = y[: y.shape[0] // period * period, : y.shape[1] // period * period]
    peaks = []
    for axis in (0, 1):
        power = (np.abs(np.fft.rfft(y - y.mean(axis=axis, keepdims=True), axis=axis)) ** 2).mean(axis=1 - axis)
        step = y.shape[axis] // period
        for k in range(1, period // 2 + 1):
            f = k * step
            around = np.r_[power[max(f - 4, 1):f - 1], power[f + 2:f + 5]]
            peaks.append(power[f] / max(np.median(around), 1e-12))
    return float(np.mean(peaks))


def evaluate_pair(sr, hr, scale):
    """PSNR, SSIM and texture ratio of an SR output against its HR image, cropping ``scale`` pixels."""
    y_sr, y_hr = rgb_to_y(sr), rgb_to_y(hr)
    return {"psnr": psnr(y_sr, y_hr, scale), "ssim": ssim(y_sr, y_hr, scale), "texture": texture_ratio(y_sr, y_hr, scale)}
