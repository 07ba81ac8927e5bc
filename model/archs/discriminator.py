"""ESRGAN's VGG-style discriminator (BasicSR's VGGStyleDiscriminator), sized by its input patch.

Five stages; each has a 3x3 conv then a 4x4 stride-2 conv (BN + LeakyReLU after each, none after the
very first conv), doubling filters up to 8x; a dense head 100 -> 1 outputs a raw logit.
"""
import keras

from .layers import conv, lrelu


def build_discriminator(patch_size: int = 128, num_feat: int = 64, name: str = "discriminator") -> keras.Model:
    if patch_size % 32 != 0:
        raise ValueError(f"discriminator patch size must be a multiple of 32, got {patch_size}")
    inp = keras.Input(shape=(patch_size, patch_size, 3), name="hr")
    x = lrelu()(conv(num_feat, "conv0_0")(inp))
    filters = [num_feat, num_feat * 2, num_feat * 4, num_feat * 8, num_feat * 8]
    for stage, f in enumerate(filters):
        if stage > 0:
            x = conv(f, f"conv{stage}_0", bias=False)(x)
            x = lrelu()(keras.layers.BatchNormalization(name=f"bn{stage}_0")(x))
        x = conv(f, f"conv{stage}_1", kernel=4, stride=2, bias=False)(x)
        x = lrelu()(keras.layers.BatchNormalization(name=f"bn{stage}_1")(x))
    x = keras.layers.Flatten(name="flatten")(x)
    x = lrelu()(keras.layers.Dense(100, name="linear1")(x))
    out = keras.layers.Dense(1, name="linear2", dtype="float32")(x)
    return keras.Model(inp, out, name=name)
