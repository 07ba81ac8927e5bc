"""MATLAB-compatible bicubic ``imresize`` in numpy.

SR benchmarks make their LR inputs with MATLAB's ``imresize(hr, 1/s, 'bicubic')``
(the "BI" degradation). OpenCV and Pillow resample differently (no antialiasing,
other pixel-centre and border rules), so a model trained or scored on their LR
images is not comparable with published numbers. This port follows MATLAB's
``imresize.m``: the same contribution (index/weight) computation, the border
(out-of-range taps clamped to the edge pixel, i.e. replicate, not mirror), the
order of the two passes and, for uint8, rounding after each pass.
"""

import math

import numpy as np


def cubic(x):
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic')."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (
        -0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2
    ) * ((ax > 1) & (ax <= 2))


def weight_matrix(in_len, out_len, scale, antialiasing=True):
    """Dense (out_len, in_len) matrix W such that out = W @ in along one axis.

    Mirrors MATLAB's ``contributions``: output pixel x (1-based) sits at input
    coordinate u = x/scale + (1 - 1/scale)/2; when shrinking, the kernel is
    stretched by 1/scale (antialiasing); weights are normalised, then taps past
    the border are clamped to the edge pixel and folded into the dense matrix.
    """
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        kernel = lambda t: scale * cubic(scale * t)  # noqa: E731
        kernel_width /= scale
    else:
        kernel = cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    w = kernel(u[:, None] - idx)
    w /= w.sum(axis=1, keepdims=True)
    # MATLAB: indices = min(max(1, indices), in_length). Ports that mirror here
    # (aux = [1:n, n:-1:1], as in old imresize/BasicSR) differ on the outer pixels.
    idx = np.clip(idx.astype(np.int64) - 1, 0, in_len - 1)
    mat = np.zeros((out_len, in_len))
    np.add.at(mat, (np.repeat(np.arange(out_len), taps), idx.ravel()), w.ravel())
    return mat


def _round_uint8(a):
    # MATLAB's double->uint8: round half away from zero, saturate.
    return np.clip(np.floor(a + 0.5), 0, 255).astype(np.uint8)


def imresize(img, scale=None, output_shape=None, antialiasing=True):
    """Resize an HxW or HxWxC image like MATLAB's ``imresize(img, ..., 'bicubic')``.

    Give either ``scale`` (a number or (row, col) pair; output size is
    ceil(scale * size) as in MATLAB) or ``output_shape`` (rows, cols).
    Float input gives float64 output (no clipping); uint8 input gives uint8.
    """
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"expected an HxW or HxWxC image, got shape {img.shape}")
    if (scale is None) == (output_shape is None):
        raise ValueError("give exactly one of scale and output_shape")
    is_uint8 = img.dtype == np.uint8
    if not is_uint8 and not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"expected uint8 or float input, got {img.dtype}")
    in_shape = img.shape[:2]
    if scale is not None:
        scales = tuple(float(s) for s in np.broadcast_to(scale, (2,)))
        if min(scales) <= 0:
            raise ValueError("scale must be positive")
        out_shape = tuple(int(math.ceil(s * n)) for s, n in zip(scales, in_shape))
    else:
        out_shape = tuple(int(n) for n in output_shape)
        if len(out_shape) != 2 or min(out_shape) < 1:
            raise ValueError(f"output_shape must be two positive ints, got {output_shape}")
        scales = tuple(o / n for o, n in zip(out_shape, in_shape))

    # MATLAB resizes the most-shrunk axis first (stable sort: rows on ties).
    out = img
    for axis in sorted((0, 1), key=lambda a: scales[a]):
        mat = weight_matrix(in_shape[axis], out_shape[axis], scales[axis], antialiasing)
        res = np.moveaxis(np.tensordot(mat, out.astype(np.float64, copy=False), axes=(1, axis)), 0, axis)
        # imresizemex returns the input's class, so uint8 is rounded between passes.
        out = _round_uint8(res) if is_uint8 else res
    return out
