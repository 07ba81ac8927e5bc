"""ESRGAN's stage-2 losses: relativistic average GAN, VGG19 perceptual loss, discriminator feature matching,
and the fidelity terms that keep GAN texture from shifting colour or drawing halos."""
from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from model.errors import ESRGANError

from .config import CHROMA_ROWS, GRID_SIGMA, OVERSHOOT_WINDOW

KERAS_VGG19_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
# Caffe-style input of Keras's VGG19 weights: BGR, 0..255, ImageNet mean subtracted.
_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)


class MissingVGGWeights(ESRGANError):
    code = "missing_vgg_weights"


def find_vgg19_weights(path: str | Path | None = None) -> Path:
    """The VGG19 ImageNet weights file: ``path``, else ``ESRGAN_VGG19_WEIGHTS``, else Keras's cache."""
    candidates = [path, os.environ.get("ESRGAN_VGG19_WEIGHTS"), Path.home() / ".keras" / "models" / KERAS_VGG19_FILE]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    tried = ", ".join(str(c) for c in candidates if c)
    raise MissingVGGWeights(
        f"VGG19 ImageNet weights not found (tried {tried}). The perceptual loss needs Keras's "
        f"{KERAS_VGG19_FILE} (no-top VGG19, ~80 MB): put it at one of those paths or set "
        "ESRGAN_VGG19_WEIGHTS, or train with --perceptual feature-matching, which needs no pretrained network.")


def vgg19_conv54(weights: str | Path) -> keras.Model:
    """VGG19 up to conv5_4 *before* its ReLU (ESRGAN sec. 3.3: sharper, denser features), frozen.
    Takes RGB in [0, 1]."""
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    vgg.load_weights(str(weights))  # legacy .h5 by layer name (Keras's download) or .weights.h5
    last = vgg.get_layer("block5_conv4")
    linear = keras.layers.Conv2D(512, 3, padding="same", activation=None, name="block5_conv4_linear")
    inp = keras.Input((None, None, 3))
    x = keras.ops.flip(inp * 255.0, axis=-1) - _BGR_MEAN
    for layer in vgg.layers[1:]:
        if layer is last:
            break
        x = layer(x)
    out = linear(x)
    linear.set_weights(last.get_weights())
    model = keras.Model(inp, out, name="vgg19_conv54")
    model.trainable = False
    return model


def bce(logits, target: float):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(logits), target), logits))


def ragan_generator_loss(real_logits, fake_logits):
    """Relativistic average GAN, generator side: fakes should look *more* real than the average real."""
    real_logits = tf.stop_gradient(real_logits)
    return 0.5 * (bce(real_logits - tf.reduce_mean(fake_logits), 0.0)
                  + bce(fake_logits - tf.reduce_mean(real_logits), 1.0))


def ragan_discriminator_loss(real_logits, fake_logits):
    return 0.5 * (bce(real_logits - tf.reduce_mean(tf.stop_gradient(fake_logits)), 1.0)
                  + bce(fake_logits - tf.reduce_mean(tf.stop_gradient(real_logits)), 0.0))


def feature_matching(fake_feats, real_feats):
    """Mean L1 between the discriminator's features of SR and HR images, per layer then averaged."""
    return tf.add_n([tf.reduce_mean(tf.abs(f - tf.stop_gradient(r))) for f, r in zip(fake_feats, real_feats)]) \
        / len(fake_feats)


def with_features(discriminator: keras.Model) -> keras.Model:
    """The discriminator returning ``[logits, stage features...]`` (same variables)."""
    feats = [discriminator.get_layer(f"bn{s}_1").output for s in range(5)]
    return keras.Model(discriminator.input, [discriminator.output, *feats], name="discriminator_features")


def random_conv_features(seed: int = 0, widths: tuple[int, ...] = (32, 64, 128)) -> keras.Model:
    """A frozen, *randomly initialised* VGG-style network whose activations serve as a perceptual loss
    that needs no pretrained file ("Generic Perceptual Loss", Liu et al., CVPR 2021: the structure of a
    deep conv net, not ImageNet training, is what makes its features a good image prior).

    Per width: two 3x3 convs (Kaiming-normal weights, zero bias) then 2x2 average pooling; returns the
    pre-ReLU output of every block's second conv. Fixed ``seed``: the same loss on every run and resume."""
    init = keras.initializers.HeNormal(seed=seed)
    inp = keras.Input((None, None, 3))
    x, feats = inp * 2.0 - 1.0, []
    for i, width in enumerate(widths):
        x = keras.layers.Conv2D(width, 3, padding="same", kernel_initializer=init, name=f"rand{i}_1")(x)
        x = keras.layers.Conv2D(width, 3, padding="same", kernel_initializer=init, name=f"rand{i}_2")(
            keras.layers.ReLU()(x))
        feats.append(x)
        x = keras.layers.AveragePooling2D(2)(keras.layers.ReLU()(x))
    model = keras.Model(inp, feats, name="random_conv_features")
    model.trainable = False
    return model


def feature_l1(extractor: keras.Model, sr, target):
    """Mean over layers of the L1 distance between the features of ``sr`` and of ``target``."""
    fake = extractor(sr)
    real = extractor(target)
    fake, real = (fake, real) if isinstance(fake, list) else ([fake], [real])
    return tf.add_n([tf.reduce_mean(tf.abs(tf.cast(f, tf.float32) - tf.stop_gradient(tf.cast(r, tf.float32))))
                     for f, r in zip(fake, real)]) / len(fake)


def vanilla_generator_loss(fake_logits):
    """Non-saturating GAN loss on (per-pixel) logits: the fakes should be judged real."""
    return bce(fake_logits, 1.0)


def vanilla_discriminator_loss(real_logits, fake_logits):
    return bce(real_logits, 1.0) + bce(fake_logits, 0.0)


def adversarial(kind: str, real_logits, fake_logits):
    """(generator loss, discriminator loss) for the ``--discriminator`` kind: Real-ESRGAN's vanilla GAN on
    the U-Net's per-pixel logits, ESRGAN's relativistic average GAN on the VGG-style one's."""
    if kind == "unet":
        return vanilla_generator_loss(fake_logits), vanilla_discriminator_loss(real_logits, fake_logits)
    return ragan_generator_loss(real_logits, fake_logits), ragan_discriminator_loss(real_logits, fake_logits)


def artifact_map(hr, sr, sr_ema, window: int = 7):
    """LDL's refined artifact map (Liang et al., CVPR 2022): where the residual |hr - sr| is locally
    *irregular* (high local variance, weighted by the patch's overall residual variance ** 1/5) and the
    generator does worse than its own EMA, an artifact is being made; elsewhere (real texture the EMA
    also draws) the weight is 0. Returns a (B, H, W, 1) weight map, no gradient."""
    res = tf.reduce_sum(tf.abs(hr - sr), -1, keepdims=True)
    res_ema = tf.reduce_sum(tf.abs(hr - sr_ema), -1, keepdims=True)
    patch = tf.math.reduce_variance(res, axis=[1, 2, 3], keepdims=True) ** 0.2
    mean = tf.nn.avg_pool2d(res, window, 1, "SAME")
    local = tf.nn.avg_pool2d(tf.square(res), window, 1, "SAME") - tf.square(mean)
    weight = tf.where(res < res_ema, 0.0, patch * tf.maximum(local, 0.0))
    return tf.stop_gradient(weight)


def gaussian_blur(images, sigma: float):
    """Per-channel Gaussian blur (kernel radius 2 sigma, reflect padding) of (B, H, W, C) images."""
    radius = max(1, int(round(2 * sigma)))
    taps = tf.exp(-0.5 * tf.square(tf.range(-radius, radius + 1, dtype=tf.float32) / sigma))
    taps /= tf.reduce_sum(taps)
    channels = images.shape[-1]
    kernel = tf.tile((taps[:, None] * taps[None, :])[:, :, None, None], [1, 1, channels, 1])
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")


def grid_l1(sr, target, scale: int, sigma: float = GRID_SIGMA):
    """L1 between the sub-pixel grid patterns of SR and target: each of the scale x scale positions of the
    grid taken apart (an LR-sized image per position), its difference from the mean over positions, blurred
    (sigma in LR pixels). Texture is random from one grid cell to the next and averages out under the blur;
    stripes or a checkerboard tied to the grid (what a pixel-shuffle generator draws to please a
    discriminator) do not, so this asks for the target's grid pattern (none, for a photo) and nothing else."""
    def pattern(x):
        h, w, c = x.shape[1] // scale, x.shape[2] // scale, x.shape[3]
        phases = tf.reshape(tf.nn.space_to_depth(x, scale), [-1, h, w, scale * scale, c])
        phases -= tf.reduce_mean(phases, axis=3, keepdims=True)
        return gaussian_blur(tf.reshape(phases, [-1, h, w, scale * scale * c]), sigma)

    return tf.reduce_mean(tf.abs(pattern(sr) - pattern(target)))


def overshoot_l1(sr, target, window: int = OVERSHOOT_WINDOW):
    """How far SR leaves the range of the target's values around each pixel (per channel, a window x window
    neighbourhood): the halos and dark rims of ringing along edges. Texture within the target's local range
    costs nothing, whatever its phase."""
    high = tf.nn.max_pool2d(target, window, 1, "SAME")
    low = -tf.nn.max_pool2d(-target, window, 1, "SAME")
    return tf.reduce_mean(tf.nn.relu(sr - high) + tf.nn.relu(low - sr))


def lowfreq_l1(sr, target, sigma: float):
    """L1 between Gaussian-blurred SR and target. Texture the GAN draws averages out under the blur, while a
    halo along an edge, a colour cast or a brightness drift does not: this penalises only the latter."""
    return tf.reduce_mean(tf.abs(gaussian_blur(sr, sigma) - gaussian_blur(target, sigma)))


# luma carries texture; chroma should follow the photo
_CHROMA = tf.constant(CHROMA_ROWS, tf.float32)


def chroma_l1(sr, target):
    """L1 between the Cb/Cr planes of SR and target: against the colour fringes a GAN draws along strokes."""
    return tf.reduce_mean(tf.abs(tf.tensordot(sr - target, _CHROMA, axes=1)))
