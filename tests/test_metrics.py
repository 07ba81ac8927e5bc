"""training.metrics on images made here (no dataset needed).

The golden check against the reference MATLAB evaluator's printout lives in
bench/verify_golden.py; these tests pin the pieces it is built from.
"""

import math

import numpy as np
import pytest

from training.metrics import evaluate_pair, grid_peak, psnr, rgb_to_y, ssim, texture_ratio

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def rgb(*color, shape=(1, 1)):
    return np.broadcast_to(np.array(color, np.uint8), (*shape, 3)).copy()


@pytest.mark.parametrize(
    "color, y",
    [
        ((255, 255, 255), 235.0),
        ((0, 0, 0), 16.0),
        ((255, 0, 0), 81.481),
        ((0, 255, 0), 144.553),
        ((0, 0, 255), 40.966),
        ((51, 102, 204), 16 + (65.481 * 51 + 128.553 * 102 + 24.966 * 204) / 255),
    ],
)
def test_rgb_to_y_known_colours(color, y):
    out = rgb_to_y(rgb(*color, shape=(2, 3)))
    assert out.dtype == np.float64 and out.shape == (2, 3)
    np.testing.assert_allclose(out, y, rtol=0, atol=1e-12)


def test_rgb_to_y_leaves_grey_alone_and_refuses_float_rgb():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(rgb_to_y(grey), grey.astype(np.float64))
    np.testing.assert_array_equal(rgb_to_y(grey[..., None]), grey)
    with pytest.raises(TypeError):
        rgb_to_y(np.zeros((2, 2, 3)))
    with pytest.raises(ValueError):
        rgb_to_y(np.zeros((2, 2, 4), np.uint8))


def test_psnr_of_known_error():
    hr = np.full((20, 20), 120.0)
    sr = hr + np.where(np.indices(hr.shape).sum(0) % 2, 5.0, -5.0)  # MSE exactly 25
    assert psnr(sr, hr) == pytest.approx(20 * math.log10(255 / 5), abs=1e-12)
    # On grey RGB, a d-level error in every channel is d * 219/255 on Y.
    hr_rgb, sr_rgb = rgb(100, 100, 100, shape=(8, 8)), rgb(103, 103, 103, shape=(8, 8))
    assert psnr(sr_rgb, hr_rgb) == pytest.approx(20 * math.log10(255 / (3 * 219 / 255)), abs=1e-9)


def test_identical_images_give_inf_psnr_and_unit_ssim():
    img = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    assert psnr(img, img, 2) == math.inf
    assert ssim(img, img, 2) == pytest.approx(1.0, abs=1e-12)
    assert evaluate_pair(img, img, 4) == {"psnr": math.inf, "ssim": pytest.approx(1.0, abs=1e-12), "texture": 1.0}


def test_crop_removes_exactly_the_border():
    hr = np.full((30, 30), 50.0)
    sr = hr.copy()
    sr[:3, :] = sr[-3:, :] = sr[:, :3] = sr[:, -3:] = 0  # errors only in a 3-pixel frame
    assert psnr(sr, hr, 3) == math.inf
    assert psnr(sr, hr, 2) < math.inf
    sr[3, 3] = 60  # one error just inside the crop: MSE 100 over 24x24 pixels
    assert psnr(sr, hr, 3) == pytest.approx(10 * math.log10(255**2 * 576 / 100), abs=1e-12)


def ssim_reference(x, y):
    """Independent SSIM: explicit loop over every full 11x11 window, weighted stats."""
    r = np.arange(-5, 6)
    w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    w /= w.sum()
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            a, b = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
            cov = (w * (a - ma) * (b - mb)).sum()
            vals.append((2 * ma * mb + C1) * (2 * cov + C2) / ((ma**2 + mb**2 + C1) * (va + vb + C2)))
    return float(np.mean(vals))


@pytest.mark.parametrize("seed", range(3))
def test_ssim_matches_independent_reference(seed):
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, (19, 23)).astype(np.float64)
    sr = np.clip(hr + rng.normal(0, 20 * (seed + 1), hr.shape), 0, 255)
    assert ssim(sr, hr) == pytest.approx(ssim_reference(sr, hr), abs=1e-10)
    assert ssim(sr, hr, 2) == pytest.approx(ssim_reference(sr[2:-2, 2:-2], hr[2:-2, 2:-2]), abs=1e-10)
    assert ssim(sr, hr) == pytest.approx(ssim(hr, sr), abs=1e-12)


def test_ssim_matches_skimage_gaussian_mode():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(7)
    hr = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    sr = np.clip(hr + rng.normal(0, 15, hr.shape), 0, 255).astype(np.uint8)
    y_sr, y_hr = rgb_to_y(sr)[4:-4, 4:-4], rgb_to_y(hr)[4:-4, 4:-4]
    ref = metrics.structural_similarity(
        y_hr, y_sr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(sr, hr, 4) == pytest.approx(ref, abs=1e-10)


def test_ssim_of_constant_images_by_hand():
    # Zero variance leaves only the luminance term.
    x, y = np.full((11, 11), 100.0), np.full((11, 11), 110.0)
    assert ssim(x, y) == pytest.approx((2 * 100 * 110 + C1) / (100**2 + 110**2 + C1), abs=1e-12)


def test_evaluate_pair_crops_scale():
    rng = np.random.default_rng(3)
    hr = rng.integers(0, 256, (32, 36, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-9, 10, hr.shape), 0, 255).astype(np.uint8)
    got = evaluate_pair(sr, hr, 3)
    assert got == {"psnr": pytest.approx(psnr(sr, hr, 3)), "ssim": pytest.approx(ssim(sr, hr, 3)),
                   "texture": pytest.approx(texture_ratio(rgb_to_y(sr), rgb_to_y(hr), 3))}
    assert got["psnr"] != pytest.approx(psnr(sr, hr, 0))


def test_errors():
    a = np.zeros((20, 20), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        psnr(a, np.zeros((20, 21), np.uint8))
    with pytest.raises(ValueError, match="crop"):
        psnr(a, a, 10)
    with pytest.raises(ValueError, match="SSIM"):
        ssim(a, a, 5)


def test_grid_peak_sees_stripes_on_the_sub_pixel_grid_not_texture():
    from skimage import data

    photo = rgb_to_y(data.astronaut()).astype(np.float64)
    rng = np.random.default_rng(0)
    grainy = photo + 8 * rng.standard_normal(photo.shape)  # texture: no period
    striped = photo.copy()
    striped[::4] += 4  # faint stripes every 4th row: an x4 pixel-shuffle artifact
    checker = photo + 3 * ((np.indices(photo.shape).sum(axis=0) % 2) * 2 - 1)  # a 2-pixel checkerboard
    assert grid_peak(photo, 4) < 1.5 and grid_peak(grainy, 4) < 1.5
    assert grid_peak(striped, 4) > 3 and grid_peak(checker, 4) > 3
    assert grid_peak(striped, 3) < 1.5  # no harmonic of 3 pixels there
