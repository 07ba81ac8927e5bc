"""SRVGGNetCompact, Real-ESRGAN's small fast generator (realesr-general-x4v3, realesr-animevideov3).

A plain stack of 3x3 convs with per-channel PReLU, a last conv to ``3 * scale**2`` channels, pixel
shuffle, and the nearest-upsampled input added so the network only learns the residual. Layer names
follow the PyTorch module list (``body.5`` -> ``body_5``) so checkpoints map one to one.
Inputs and outputs are RGB in [0, 1].
"""
import keras

from .layers import PixelShuffle, conv


def build_srvgg(
    scale: int = 4,
    num_feat: int = 64,
    num_conv: int = 16,
    num_in_ch: int = 3,
    num_out_ch: int = 3,
    name: str = "srvgg",
) -> keras.Model:
    if scale < 1:
        raise ValueError(f"SRVGGNetCompact scale must be >= 1, got {scale}")
    if num_out_ch != num_in_ch:
        raise ValueError("SRVGGNetCompact adds the upsampled input: num_out_ch must equal num_in_ch")
    inp = keras.Input(shape=(None, None, num_in_ch), name="lr")
    x = inp
    for i in range(num_conv + 1):  # body.0 is the first conv, then num_conv more; PReLUs sit between
        x = conv(num_feat, f"body_{2 * i}")(x)
        # PyTorch's PReLU starts at 0.25 (Keras' at 0); one slope per channel.
        x = keras.layers.PReLU(keras.initializers.Constant(0.25), shared_axes=[1, 2], name=f"body_{2 * i + 1}")(x)
    x = conv(num_out_ch * scale * scale, f"body_{2 * num_conv + 2}")(x)
    x = PixelShuffle(scale, name="upsampler")(x)
    base = keras.layers.UpSampling2D(scale, interpolation="nearest", name="base")(inp)
    out = keras.layers.Add(name="residual_add")([x, base])
    return keras.Model(inp, out, name=name)


def halve_scale(weights: dict, num_conv: int, scale: int) -> dict:
    """An x``scale`` network's weights as an x``scale // 2`` network whose output is exactly the first's,
    area-downscaled by 2 (2x2 means): only the last conv changes, each output sub-pixel becoming the mean of
    the four it covers (depth-to-space channel order: sub-pixel (i, j) of colour c is (i * scale + j) * 3 + c),
    and the nearest-upsampled input's 2x2 means are the input itself. How an x2 student starts from an x4 one."""
    if scale % 2:
        raise ValueError(f"an x{scale} SRVGG network has no exact x{scale / 2:g} form")
    last, half = f"body_{2 * num_conv + 2}", scale // 2
    kernel, bias = weights[f"{last}/kernel"], weights[f"{last}/bias"]
    channels = kernel.shape[-1] // scale**2
    k = kernel.reshape(*kernel.shape[:-1], half, 2, half, 2, channels).mean(axis=(-4, -2))
    b = bias.reshape(half, 2, half, 2, channels).mean(axis=(1, 3))
    return {**weights, f"{last}/kernel": k.reshape(*kernel.shape[:-1], -1), f"{last}/bias": b.reshape(-1)}
