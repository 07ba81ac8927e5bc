"""training.imresize against hand-derived MATLAB results and invariants.

The expected numbers come from MATLAB's contributions() worked by hand: cubic
kernel a=-0.5, u = x/scale + (1 - 1/scale)/2, weights normalised, out-of-range
taps clamped to the edge pixel. E.g. upscaling [a b] to 4 pixels puts output 1
at u=0.75 with taps at distances 1.75, 0.75, 0.25, 1.25 -> weights
-3/128, 29/128, 111/128, -9/128 on pixels (a, a, a, b).
"""

import numpy as np
import pytest

from training.imresize import cubic, imresize, weight_matrix


def test_cubic_kernel_values():
    x = np.array([0, 0.25, 0.75, 1, 1.25, 1.75, 2, 2.5])
    np.testing.assert_array_equal(
        cubic(x), [1, 111 / 128, 29 / 128, 0, -9 / 128, -3 / 128, 0, 0]
    )
    np.testing.assert_array_equal(cubic(-x), cubic(x))


def test_upscale_two_pixels_by_hand():
    out = imresize(np.array([[0.0, 1.0]]), output_shape=(1, 4))
    np.testing.assert_array_equal(out, [[-9 / 128, 26 / 128, 102 / 128, 137 / 128]])


def test_downscale_weights_by_hand():
    # Antialiased 4 -> 2: kernel stretched to width 8, taps clamped at both ends.
    w = weight_matrix(4, 2, 0.5)
    first = np.array([128, 111, 29, -12]) / 256
    np.testing.assert_array_equal(w, [first, first[::-1]])
    np.testing.assert_array_equal(
        imresize(np.array([[0.0, 1, 2, 3]]), output_shape=(1, 2)), [[133 / 256, 635 / 256]]
    )


def test_no_antialiasing_uses_plain_kernel():
    # Without antialiasing 4 -> 2 samples the width-4 cubic at u = 1.5: taps at
    # pixels 0..3 (1-based) weigh -1/16, 9/16, 9/16, -1/16; pixel 0 clamps onto a.
    w = weight_matrix(4, 2, 0.5, antialiasing=False)
    np.testing.assert_array_equal(w[0], [8 / 16, 9 / 16, -1 / 16, 0])


@pytest.mark.parametrize("dtype", [np.float64, np.uint8])
@pytest.mark.parametrize("scale", [0.25, 0.5, 1 / 3, 2, 3])
def test_constant_stays_constant(dtype, scale):
    img = np.full((13, 17, 3), 77, dtype=dtype)
    out = imresize(img, scale)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, 77, atol=1e-9)


def test_linear_ramp_is_reproduced_away_from_borders():
    # Weights are symmetric about u and sum to 1, so a ramp maps to u itself.
    ramp = np.tile(np.arange(1, 41, dtype=np.float64), (6, 1))
    down = imresize(ramp, output_shape=(6, 20))
    x = np.arange(1, 21)
    np.testing.assert_allclose(down[:, 3:-3], np.tile(2 * x - 0.5, (6, 1))[:, 3:-3], atol=1e-12)
    up = imresize(ramp, output_shape=(6, 80))
    x = np.arange(1, 81)
    np.testing.assert_allclose(up[:, 4:-4], np.tile(x / 2 + 0.25, (6, 1))[:, 4:-4], atol=1e-12)


def test_uint8_rounds_half_away_from_zero_and_saturates():
    # 4 -> 2 gives 128/256 = 0.5 for [1 0 0 0]; MATLAB rounds that up (np.round would not).
    out = imresize(np.array([[1, 0, 0, 0]], np.uint8), output_shape=(1, 2))
    np.testing.assert_array_equal(out, [[1, 0]])
    # [0 255] -> 4 overshoots to -17.9 and 272.9: clipped.
    out = imresize(np.array([[0, 255]], np.uint8), output_shape=(1, 4))
    np.testing.assert_array_equal(out, [[0, 52, 203, 255]])


def test_uint8_rounds_between_passes_rows_first():
    # Rows (4 -> 2, smaller scale) go first and are rounded to uint8 before the
    # column pass: col 0 [3 0 0 0] -> 1.5 -> 2, then [2 0] -> [2.14 1.59 .41 -.14].
    img = np.zeros((4, 2), np.uint8)
    img[0, 0] = 3
    np.testing.assert_array_equal(imresize(img, output_shape=(2, 4)), [[2, 2, 0, 0], [0, 0, 0, 0]])
    # Columns first or a single final rounding would give other values here.
    one_pass = np.floor(imresize(img.astype(np.float64), output_shape=(2, 4)) + 0.5)
    np.testing.assert_array_equal(one_pass, [[2, 1, 0, 0], [0, 0, 0, 0]])


def test_separable_and_channelwise():
    rng = np.random.default_rng(0)
    img = rng.random((20, 30, 3))
    out = imresize(img, 0.5)
    ref = weight_matrix(20, 10, 0.5) @ img.transpose(2, 0, 1) @ weight_matrix(30, 15, 0.5).T
    np.testing.assert_allclose(out, ref.transpose(1, 2, 0), atol=1e-12)
    np.testing.assert_allclose(imresize(img[..., 1], 0.5), out[..., 1], atol=1e-12)


@pytest.mark.parametrize(
    "shape, kwargs, expected",
    [
        ((228, 344, 3), {"scale": 0.25}, (57, 86, 3)),
        ((10, 11), {"scale": 0.5}, (5, 6)),  # ceil(5.5)
        ((10, 11), {"scale": (1, 3)}, (10, 33)),
        ((10, 11), {"output_shape": (7, 3)}, (7, 3)),
    ],
)
def test_output_shape_rules(shape, kwargs, expected):
    assert imresize(np.zeros(shape), **kwargs).shape == expected


def test_scale_one_is_identity():
    img = np.random.default_rng(1).integers(0, 256, (9, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(imresize(img, 1), img)


@pytest.mark.parametrize(
    "args, kwargs",
    [((), {}), ((0.5,), {"output_shape": (2, 2)}), ((0,), {}), ((), {"output_shape": (0, 3)})],
)
def test_bad_arguments(args, kwargs):
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4)), *args, **kwargs)


def test_rejects_other_dtypes_and_ranks():
    with pytest.raises(TypeError):
        imresize(np.zeros((4, 4), np.int32), 0.5)
    with pytest.raises(ValueError):
        imresize(np.zeros((2, 4, 4, 3)), 0.5)
