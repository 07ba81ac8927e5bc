"""ESRGAN's stage-2 losses: relativistic average GAN, VGG19 perceptual loss, discriminator feature matching."""
from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from model.errors import ESRGANError

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
