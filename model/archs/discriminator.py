"""ESRGAN's VGG-style discriminator (BasicSR's VGGStyleDiscriminator), sized by its input patch.

Five stages; each has a 3x3 conv then a 4x4 stride-2 conv (BN + LeakyReLU after each, none after the
very first conv), doubling filters up to 8x; a dense head 100 -> 1 outputs a raw logit.
"""
import keras

from .layers import conv, lrelu


def build_discriminator(patch_size: int = 128, num_feat: int = 64, name: str = "discriminator",
                        channels: int = 3) -> keras.Model:
    if patch_size % 32 != 0:
        raise ValueError(f"discriminator patch size must be a multiple of 32, got {patch_size}")
    inp = keras.Input(shape=(patch_size, patch_size, channels), name="hr")
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


def build_unet_discriminator(num_feat: int = 64, name: str = "unet_discriminator", channels: int = 3) -> keras.Model:
    """Real-ESRGAN's U-Net discriminator with spectral normalisation (``UNetDiscriminatorSN``): a
    realness logit *per pixel*, so it judges local texture and tells the generator where an artifact is;
    spectral normalisation keeps its training stable. Any input size divisible by 8.

    Down: conv0 (3x3) -> three 4x4 stride-2 convs to 2x, 4x, 8x ``num_feat``; up: bilinear x2 + 3x3 conv
    with skip additions back to full size; two more 3x3 convs and a 1-channel 3x3 head. LeakyReLU 0.2."""
    def sn(filters, layer_name, kernel=3, stride=1):
        return keras.layers.SpectralNormalization(conv(filters, layer_name, kernel, stride, bias=False),
                                                  name=f"{layer_name}_sn")

    def up(x):
        return keras.layers.UpSampling2D(2, interpolation="bilinear")(x)

    inp = keras.Input(shape=(None, None, channels), name="hr")
    x0 = lrelu()(conv(num_feat, "conv0")(inp))
    x1 = lrelu()(sn(num_feat * 2, "conv1", 4, 2)(x0))
    x2 = lrelu()(sn(num_feat * 4, "conv2", 4, 2)(x1))
    x3 = lrelu()(sn(num_feat * 8, "conv3", 4, 2)(x2))
    x4 = keras.layers.Add()([lrelu()(sn(num_feat * 4, "conv4")(up(x3))), x2])
    x5 = keras.layers.Add()([lrelu()(sn(num_feat * 2, "conv5")(up(x4))), x1])
    x6 = keras.layers.Add()([lrelu()(sn(num_feat, "conv6")(up(x5))), x0])
    x = lrelu()(sn(num_feat, "conv7")(x6))
    x = lrelu()(sn(num_feat, "conv8")(x))
    out = keras.layers.Conv2D(1, 3, padding="same", name="conv9", dtype="float32")(x)
    return keras.Model(inp, out, name=name)


def build(kind: str, patch_size: int, num_feat: int, channels: int = 3) -> keras.Model:
    """The discriminator named by ``--discriminator``: ``vgg`` (one logit per patch) or ``unet`` (per pixel);
    ``channels`` 6: an image and the LR input it was made from, upsampled (a conditional discriminator)."""
    if kind == "unet":
        return build_unet_discriminator(num_feat, channels=channels)
    return build_discriminator(patch_size, num_feat, channels=channels)
