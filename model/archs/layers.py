"""Small Keras layers shared by the architectures."""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="esrgan")
class ScaledResidual(keras.layers.Layer):
    """``residual * scale + identity``: the 0.2 residual scaling of ESRGAN's dense blocks."""

    def __init__(self, scale: float = 0.2, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        residual, identity = inputs
        return residual * self.scale + identity

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="esrgan")
class PixelUnshuffle(keras.layers.Layer):
    """Space-to-depth by ``factor``. TF orders channels (dy, dx, c); PyTorch orders (c, dy, dx):
    the checkpoint converter permutes conv_first's input channels accordingly."""

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return tf.nn.space_to_depth(x, self.factor)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="esrgan")
class PixelShuffle(keras.layers.Layer):
    """Depth-to-space by ``factor`` (sub-pixel convolution upsampling)."""

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return tf.nn.depth_to_space(x, self.factor)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def conv(filters: int, name: str, kernel: int = 3, stride: int = 1, bias: bool = True) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=bias, name=name)


def lrelu(name: str | None = None) -> keras.layers.LeakyReLU:
    return keras.layers.LeakyReLU(negative_slope=0.2, name=name)
