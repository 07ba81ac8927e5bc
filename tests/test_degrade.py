"""training.degrade: Real-ESRGAN's second-order degradation, framework-free, seeded."""
import numpy as np
import pytest
from skimage import data

from training import degrade
from training.degrade import REAL_ESRGAN, StageConfig


@pytest.fixture(scope="module")
def photo():
    return data.astronaut()[100:228, 150:278].astype(np.float32) / 255.0  # 128x128, a face


@pytest.mark.parametrize("scale", [2, 4])
def test_same_seed_same_pair_and_lr_is_8bit_at_the_target_size(photo, scale):
    a = degrade.degrade(photo, scale, 123)
    b = degrade.degrade(photo, scale, np.random.default_rng(123))
    c = degrade.degrade(photo, scale, 124)
    assert a.shape == (128 // scale, 128 // scale, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a * 255, np.round(a * 255))  # rounded to 8-bit levels, as an upload


def test_pairs_are_degraded_beyond_a_plain_resize(photo):
    """Over many seeds the LR differs from a plain area downscale by noise/blur/JPEG, with a spread of
    strengths (some nearly clean, some heavy), and the colours stay put on average."""
    import cv2

    clean = cv2.resize(photo, (32, 32), interpolation=cv2.INTER_AREA)
    errors, means = [], []
    for seed in range(40):
        lr = degrade.degrade(photo, 4, seed)
        errors.append(np.abs(lr - clean).mean())
        means.append(lr.mean(axis=(0, 1)) - clean.mean(axis=(0, 1)))
    assert np.median(errors) > 0.02 and max(errors) > 2 * min(errors)
    assert np.all(np.abs(np.mean(means, axis=0)) < 0.05)


def test_kernels_are_normalised_and_of_every_kind():
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(300):
        k = degrade.stage_kernel(rng, REAL_ESRGAN.first, 21)
        assert k.shape == (21, 21) and k.sum() == pytest.approx(1.0, abs=1e-6)
        kinds.add(round(float(k.max()), 3))
    assert len(kinds) > 50  # kernels vary
    iso = degrade.mixed_kernel(rng, StageConfig(kernel_prob=(1, 0, 0, 0, 0, 0), blur_sigma=(2, 2)), 21)
    np.testing.assert_allclose(iso, iso.T, atol=1e-12)  # isotropic: symmetric
    aniso = degrade.mixed_kernel(rng, StageConfig(kernel_prob=(0, 1, 0, 0, 0, 0), blur_sigma=(0.5, 3)), 21)
    assert not np.allclose(aniso, aniso.T, atol=1e-4)
    sinc = degrade.sinc_kernel(np.pi / 3, 21)
    assert sinc.sum() == pytest.approx(1.0) and sinc.min() < 0  # ringing lobes


def test_noise_and_jpeg_do_what_they_say(photo):
    rng = np.random.default_rng(1)
    gray_gauss = StageConfig(gaussian_noise_prob=1.0, gray_noise_prob=1.0, noise_range=(20, 20))
    noisy = degrade.add_noise(rng, np.full((64, 64, 3), 0.5, np.float32), gray_gauss)
    assert noisy.std() == pytest.approx(20 / 255, rel=0.1)
    np.testing.assert_array_equal(noisy[..., 0], noisy[..., 1])  # grey noise: one channel for all
    poisson = StageConfig(gaussian_noise_prob=0.0, gray_noise_prob=0.0, poisson_scale_range=(2, 2))
    assert degrade.add_noise(rng, photo, poisson).std() > photo.std() * 0.9
    low, high = degrade.jpeg(photo, 10), degrade.jpeg(photo, 95)
    assert np.abs(low - photo).mean() > 2 * np.abs(high - photo).mean()


def test_usm_sharpened_target_has_more_detail_and_keeps_flat_areas(photo):
    sharp = degrade.usm_sharpen(photo)
    lap = lambda x: np.abs(np.diff(x, 2, axis=0)).mean()  # noqa: E731
    assert lap(sharp) > 1.1 * lap(photo)
    flat = np.full((64, 64, 3), 0.3, np.float32)
    np.testing.assert_allclose(degrade.usm_sharpen(flat), flat, atol=1e-6)


def test_pair_seed_takes_tensorflows_signed_seeds():
    a = degrade.pair_seed(-5, -(2**62)).uniform()
    assert a == degrade.pair_seed(-5, -(2**62)).uniform() and a != degrade.pair_seed(5, 2**62).uniform()


def test_one_round_share_is_milder_than_second_order(photo):
    """second_order_prob < 1 gives that share of pairs the one-round degradation (degrade_once)."""
    import cv2

    clean = cv2.resize(photo, (32, 32), interpolation=cv2.INTER_AREA)
    once = degrade.DegradeConfig(second_order_prob=0.0)

    def error(cfg, seed):
        return np.abs(degrade.degrade(photo, 4, seed, cfg) - clean).mean()

    assert np.median([error(once, s) for s in range(30)]) < np.median([error(REAL_ESRGAN, s) for s in range(30)])
    rng = np.random.default_rng(5)
    rng.uniform()  # the draw that chose one round
    np.testing.assert_array_equal(degrade.degrade(photo, 4, 5, once), degrade.degrade_once(photo, 4, rng))
