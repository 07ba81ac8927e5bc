"""The seed design's generator: an SRResNet/SRGAN-style network (Ledig et al. 2017).

9x9 conv + LeakyReLU, 16 residual blocks with batch norm, conv + BN + long skip, sub-pixel x2
upsampling stages, 9x9 conv with tanh. It works in [-1, 1] (see the manifest's ``value_range``).
"""
import keras

from .layers import PixelShuffle, conv, lrelu


def build_srresnet(scale: int = 4, num_block: int = 16, num_feat: int = 64, name: str = "srresnet") -> keras.Model:
    if scale not in (2, 4):
        raise ValueError(f"SRResNet scale must be 2 or 4, got {scale}")
    inp = keras.Input(shape=(None, None, 3), name="lr")
    head = lrelu()(conv(num_feat, "conv_first", kernel=9)(inp))
    x = head
    for i in range(num_block):
        y = keras.layers.BatchNormalization(name=f"body_{i}_bn1")(conv(num_feat, f"body_{i}_conv1")(x))
        y = lrelu()(y)
        y = keras.layers.BatchNormalization(name=f"body_{i}_bn2")(conv(num_feat, f"body_{i}_conv2")(y))
        x = keras.layers.Add(name=f"body_{i}_add")([x, y])
    x = keras.layers.BatchNormalization(name="bn_body")(conv(num_feat, "conv_body")(x))
    x = keras.layers.Add(name="trunk_add")([head, x])
    for s in range(1, scale // 2 + 1):
        x = lrelu()(PixelShuffle(2, name=f"shuffle{s}")(conv(num_feat * 4, f"conv_up{s}")(x)))
    out = keras.layers.Activation("tanh", name="tanh")(conv(3, "conv_last", kernel=9)(x))
    return keras.Model(inp, out, name=name)
